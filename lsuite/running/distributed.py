"""The distributed runner: a vocab-parallel record on `world` ranks of a real
torch.distributed process group (gloo on CPU, NCCL on CUDA), one process per rank.

Groups are persistent: one group of rank processes per (implementation, world, device),
started on its first check and reused by that record's later checks at that world. Each
check sends every rank its case and feed; each rank runs `runner.run_rank` on its columns
and answers its Outcome. Ranks are started from the judge's process (worker processes are
daemonic and cannot have children): on CPU from the fork server that lsuite/running/worker.py uses
(torch already imported, so a rank starts in tens of milliseconds; no thread or CUDA state
is inherited), on CUDA with "spawn" (CUDA cannot be forked; each rank calls
torch.cuda.set_device(rank) before it joins the NCCL group). The ranks meet at a TCPStore
that this process serves on a port the kernel picks (bound to port 0), so two pytest
processes (`-n 2`) never share a port or a rendezvous.

What a rank's record cannot do to later checks:
- change process-global torch state (default dtype, grad mode, threads, deterministic and
  anomaly flags, functions of torch and torch.nn.functional): restored after every check,
  as in the workers (lsuite/running/worker.py _TorchState);
- hang (a collective another rank never joined) or die: the check fails within its time
  limit naming the rank and what happened, every rank of the group is killed (SIGKILL), and
  the record's next check starts a fresh group. After one rank failed, the others get
  FAILURE_GRACE_S to answer (they are usually waiting in a collective the failed rank never
  joined). Any check in which a rank did not answer "ok" ends its group: a later check never
  sees a group with a collective left pending;
- destroy the default process group: the group is restarted for the next check.

On CUDA only one group lives at a time (rank r of every group would use GPU r, and NCCL wants
each GPU used by one process: torch.distributed.init_process_group's documentation); each
rank binds its GPU with init_process_group's device_id, so a NCCL failure shows at the
group's start. At most MAX_LIVE_RANKS rank processes live at once (the least recently used groups are
closed first); every group is closed at the session's end (worker.Pool.close, and at exit).
"""

from __future__ import annotations

import atexit
import datetime
import signal
import threading
import time
from dataclasses import dataclass, field

from lsresults.inputs import BACKENDS
from lsuite.running import process
from lsuite.running.process import record_ref
from lsuite.running.runner import CheckFailed, Context, Feed, Outcome, run_rank

HOST = "127.0.0.1"
FAILURE_GRACE_S = 2.0  # after one rank failed, how long the others may take to answer
STORE_TIMEOUT_S = 60.0  # the rendezvous and the group's own collective timeout
MAX_LIVE_RANKS = 8  # rank processes kept alive across checks (world 1 + 2 + 4 fit)


def _context(device: str):
    import torch.multiprocessing as tmp

    if device == "cuda":
        return tmp.get_context("spawn")
    return process.start_context()  # the fork server the workers share


def backend_for(device: str) -> str:
    return BACKENDS["cuda" if device == "cuda" else "cpu"]


def unavailable(device: str, world: int) -> str | None:
    """Why `world` ranks cannot run on `device` here (None: they can)."""
    import torch
    import torch.distributed as dist

    if not dist.is_available():
        return "torch.distributed is not available in this torch build"
    if device == "cuda":
        if not dist.is_nccl_available():
            return "NCCL is not available in this torch build"
        if torch.cuda.device_count() < world:
            return f"world {world} needs {world} GPUs, {torch.cuda.device_count()} present"
    return None


# ------------------------------------------------------------------ the rank's side

def rank_main(conn, ref, device, rank, world, port) -> None:
    """One rank (the process target): join the group once, then one check per message
    (function, case, seed, args) -> (status, payload, changed torch state, group intact),
    until the judge sends None or closes the pipe."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the judge's
    import torch
    import torch.distributed as dist

    timeout = datetime.timedelta(seconds=STORE_TIMEOUT_S)
    state = process.TorchState()  # before the record's module is imported, as in a worker
    record, setup_error = None, None
    try:
        if device == "cuda":
            torch.cuda.set_device(rank)  # before NCCL: each rank its own GPU
        store = dist.TCPStore(HOST, port, world + 1, False, timeout=timeout)
        bound = {"device_id": torch.device("cuda", rank)} if device == "cuda" else {}
        dist.init_process_group(backend_for(device), store=store, rank=rank, world_size=world,
                                timeout=timeout, **bound)  # NCCL: formed now, errors here
        record = process.rebuild(ref)
    except BaseException as exc:  # noqa: BLE001 - every check of this group reports it
        setup_error = process.cut(f"joining the group or loading the record failed: "
                                  f"{type(exc).__name__}: {exc}")
    try:
        while True:
            try:
                message = conn.recv()
            except (EOFError, OSError):
                return
            if message is None:
                return
            function, case, seed, args = message

            def check(function=function, case=case, seed=seed, args=args):
                if setup_error is not None:
                    raise CheckFailed(setup_error)
                ctx = Context(impl=record, case=case, seed=seed)
                return function(ctx, *args, rank, world, dist.group.WORLD)

            process.answer(conn, check, state, after=lambda: (dist.is_initialized(),))
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


# ------------------------------------------------------------------ the judge's side

@dataclass
class _Rank:
    process: object
    conn: object
    reply: tuple | None = None


@dataclass
class _Group:
    store: object
    ranks: list[_Rank]
    used: float = field(default_factory=time.monotonic)

    def alive(self) -> bool:
        return all(r.process.is_alive() for r in self.ranks)

    def close(self, gently: bool = False) -> None:
        """Kill every rank (gently: ask them to leave first, then kill what is left)."""
        if gently:
            for r in self.ranks:
                try:
                    r.conn.send(None)
                except (OSError, ValueError):
                    pass
            for r in self.ranks:
                r.process.join(2)
        for r in self.ranks:
            if r.process.is_alive():
                r.process.kill()
        for r in self.ranks:
            r.process.join(5)
            r.conn.close()
        self.store = None


_GROUPS: dict[tuple, _Group] = {}  # (record ref, world, device) -> its live group
_AT_EXIT = []


def close_groups() -> None:
    """Close every live group (the session's end)."""
    while _GROUPS:
        _GROUPS.popitem()[1].close(gently=True)


def _close(key: tuple) -> None:
    group = _GROUPS.pop(key, None)
    if group is not None:
        group.close()


def _group(key: tuple) -> tuple[_Group, bool]:
    """The live group for key, or a freshly started one (second: whether it is fresh)."""
    import torch.distributed as dist

    group = _GROUPS.get(key)
    if group is not None and group.alive():
        group.used = time.monotonic()
        return group, False
    _close(key)
    ref, world, device = key
    if device == "cuda":  # NCCL wants each GPU used by one process only (init_process_group's
        for other in [k for k in _GROUPS if k[2] == "cuda"]:  # documentation): one CUDA group
            _GROUPS.pop(other).close(gently=True)
    live = sum(len(g.ranks) for g in _GROUPS.values())
    for old in sorted(_GROUPS, key=lambda k: _GROUPS[k].used):  # least recently used first
        if live + world <= MAX_LIVE_RANKS:
            break
        live -= len(_GROUPS[old].ranks)
        _GROUPS.pop(old).close(gently=True)
    if not _AT_EXIT:
        _AT_EXIT.append(atexit.register(close_groups))
    store = dist.TCPStore(HOST, 0, world + 1, True, timeout=datetime.timedelta(seconds=STORE_TIMEOUT_S),
                          wait_for_workers=False)  # port 0: the kernel picks a free one
    mp = _context(device)
    ranks = []
    try:
        for rank in range(world):
            parent, child = mp.Pipe()
            process = mp.Process(target=rank_main, name=f"ls-rank{rank}of{world}-{ref[1]}",
                                 args=(child, ref, device, rank, world, store.port), daemon=True)
            process.start()
            child.close()
            ranks.append(_Rank(process, parent))
    except BaseException:
        _Group(store, ranks).close()
        raise
    _GROUPS[key] = group = _Group(store, ranks)
    return group, True


def _limit(ctx: Context, default_s: float) -> float:
    return default_s if ctx.deadline is None else ctx.deadline - time.monotonic()


def run_ranks(ctx: Context, feed: Feed, world: int, limit_s: float = 60.0) -> list[Outcome]:
    """Every rank's Outcome (rank order); any rank's failure, hang or death is ctx.fail
    naming the rank. `feed.logits` holds every column: each rank cuts its own shard."""
    return call_ranks(ctx, world, run_rank, (feed,), limit_s)


def call_ranks(ctx: Context, world: int, function, args: tuple, limit_s: float = 60.0) -> list:
    """`function(ctx, *args, rank, world, group)` on every rank of the record's group for
    `world` (rank order). `function` is a module-level function, sent by reference:
    runner.run_rank for the checks, bench_parallel.measure_rank for the benchmarks."""
    if why := unavailable(ctx.case.device, world):
        import pytest

        pytest.skip(f"{backend_for(ctx.case.device)} world {world}: {why}")
    if ctx.pool is not None and ctx.pool.interrupted is not None:
        ctx.pool.interrupted()
    key = (record_ref(ctx.impl), world, ctx.case.device)
    group, _ = _group(key)
    deadline = time.monotonic() + _limit(ctx, limit_s)
    keep = False
    try:
        for r in group.ranks:
            r.reply = None
        message = (function, ctx.case, ctx.seed, args)
        for r in group.ranks:  # a rank that never reads must not block the judge
            threading.Thread(target=_send, args=(r, message), daemon=True).start()
        _collect(group.ranks, deadline)
        keep = all(r.reply is not None and r.reply[0] == "ok" and r.reply[3] for r in group.ranks)
    finally:
        if not keep:  # a failed, hung or dead rank (or a Ctrl-C): no later check sees this group
            _close(key)
    if ctx.pool is not None:
        changed = [c for r in group.ranks if r.reply and len(r.reply) > 2 for c in r.reply[2]]
        if changed:
            seen = ctx.pool.restored.setdefault(ctx.impl.name, [])
            seen += [c for c in dict.fromkeys(changed) if c not in seen]
    return _outcomes(ctx, group.ranks)


def _send(r: _Rank, message) -> None:
    try:
        r.conn.send(message)
    except Exception:  # noqa: BLE001 - the rank is gone, or its pipe was closed under this
        pass           # thread by _close (a TypeError inside Connection): _collect sees it


def _collect(ranks: list[_Rank], deadline: float) -> None:
    """Wait for every rank's reply until the deadline (shortened once one rank failed)."""
    from multiprocessing.connection import wait

    while True:
        waiting = [r for r in ranks if r.reply is None]
        left = deadline - time.monotonic()
        if not waiting or left <= 0:
            return
        ready = set(wait([r.conn for r in waiting] + [r.process.sentinel for r in waiting], left))
        for r in waiting:
            if r.conn in ready or (r.process.sentinel in ready and r.conn.poll(0)):
                try:
                    r.reply = r.conn.recv()
                except (EOFError, OSError):
                    r.reply = ("died", None)
            elif r.process.sentinel in ready:
                r.reply = ("died", None)
            if r.reply is not None and r.reply[0] != "ok":
                deadline = min(deadline, time.monotonic() + FAILURE_GRACE_S)


def _outcomes(ctx: Context, ranks: list[_Rank]) -> list:
    problems = []
    for rank, r in enumerate(ranks):
        if r.reply is None:
            problems.append(f"rank {rank}: Timeout: no answer in time (hung, e.g. in a collective "
                            f"another rank never joined)")
        elif r.reply[0] == "died":
            r.process.join(5)
            problems.append(f"rank {rank}: the implementation crashed: {process.death(r.process.exitcode)}")
        elif r.reply[0] == "failed":
            problems.append(f"rank {rank}: {r.reply[1]}")
    if problems:
        answered = [str(rank) for rank, r in enumerate(ranks) if r.reply and r.reply[0] == "ok"]
        if answered:
            problems.append(f"rank{'s' * (len(answered) > 1)} {', '.join(answered)} answered")
        raise ctx.fail(f"world {len(ranks)}: " + "; ".join(problems)
                       + "; every rank of the group was killed (its next check starts a fresh one)")
    return [r.reply[1] for r in ranks]
