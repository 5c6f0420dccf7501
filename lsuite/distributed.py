"""The distributed runner: a vocab-parallel record on `world` ranks of a real
torch.distributed process group (gloo on CPU, NCCL on CUDA), one process per rank.

Each check starts its ranks afresh from the judge's process (worker processes are daemonic
and cannot have children): on CPU from the fork server that lsuite/worker.py uses (torch
already imported, so a rank starts in tens of milliseconds; no thread or CUDA state is
inherited), on CUDA with "spawn" (CUDA cannot be forked), both through
torch.multiprocessing. The ranks meet at a TCPStore that this process serves on a port the
kernel picks (bound to port 0), so two pytest processes (`-n 2`) never share a port or a
rendezvous. Each rank rebuilds the record (the catalog by name, or its SPEC, like a worker),
initialises the group, runs `runner.run_shard` on its columns, and sends back its Outcome.

A rank that hangs (a collective that never completes) or dies fails the check, naming the
rank, within the check's time limit: this process kills every rank (SIGKILL), so the group
is gone, and the run goes on. When one rank fails, the others get FAILURE_GRACE_S to finish
before they are killed (they are usually waiting in a collective the failed rank never
joined).
"""

from __future__ import annotations

import datetime
import signal
import time
from dataclasses import dataclass

from .runner import CheckFailed, Context, Feed, Outcome

HOST = "127.0.0.1"
FAILURE_GRACE_S = 2.0  # after one rank failed, how long the others may take to answer
STORE_TIMEOUT_S = 60.0  # the rendezvous and the group's own collective timeout


def _context(device: str):
    import torch.multiprocessing as tmp

    if device == "cuda":
        return tmp.get_context("spawn")
    from .worker import _context as forkserver  # the fork server the workers share

    return forkserver()


def backend_for(device: str) -> str:
    return "nccl" if device == "cuda" else "gloo"


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


def rank_main(conn, ref, case, seed, feed, rank, world, port) -> None:
    """One rank (the process target): join the group, run the shard, reply, leave."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the judge's
    import torch
    import torch.distributed as dist

    from . import runner, worker

    timeout = datetime.timedelta(seconds=STORE_TIMEOUT_S)
    try:
        if case.device == "cuda":
            torch.cuda.set_device(rank)
        store = dist.TCPStore(HOST, port, world, False, timeout=timeout)
        dist.init_process_group(backend_for(case.device), store=store, rank=rank,
                                world_size=world, timeout=timeout)
        record = worker._record(ref)
        ctx = Context(impl=record, case=case, seed=seed)
        reply = ("ok", runner.run_shard(ctx, feed, rank, world, dist.group.WORLD))
    except CheckFailed as exc:
        reply = ("failed", worker._cut(exc.what))
    except BaseException as exc:  # noqa: BLE001 - the implementation's failure, as text
        reply = ("failed", worker._cut(f"it raised {type(exc).__name__}: {exc}"))
    try:
        conn.send(reply)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


@dataclass
class _Rank:
    process: object
    conn: object
    reply: tuple | None = None


def _limit(ctx: Context, default_s: float) -> float:
    return default_s if ctx.deadline is None else ctx.deadline - time.monotonic()


def run_ranks(ctx: Context, feed: Feed, world: int, limit_s: float = 60.0) -> list[Outcome]:
    """Every rank's Outcome (rank order); any rank's failure, hang or death is ctx.fail
    naming the rank. `feed.logits` holds every column: each rank cuts its own shard."""
    import torch.distributed as dist

    if why := unavailable(ctx.case.device, world):
        import pytest

        pytest.skip(f"{backend_for(ctx.case.device)} world {world}: {why}")
    impl = ctx.impl
    ref = ("builtin", impl.name) if impl.origin == "builtin" else ("spec", impl.origin)
    store = dist.TCPStore(HOST, 0, world + 1, True, timeout=datetime.timedelta(seconds=STORE_TIMEOUT_S),
                          wait_for_workers=False)  # port 0: the kernel picks a free one
    mp = _context(ctx.case.device)
    ranks = []
    try:
        for rank in range(world):
            parent, child = mp.Pipe()
            process = mp.Process(target=rank_main, name=f"ls-rank{rank}-{impl.name}",
                                 args=(child, ref, ctx.case, ctx.seed, feed, rank, world, store.port))
            process.start()
            child.close()
            ranks.append(_Rank(process, parent))
        _collect(ranks, time.monotonic() + _limit(ctx, limit_s))
    finally:
        for r in ranks:
            if r.process.is_alive():
                r.process.kill()
            r.process.join(5)
            r.conn.close()
        del store
    return _outcomes(ctx, ranks)


def _collect(ranks: list[_Rank], deadline: float) -> None:
    """Wait for every rank's reply until the deadline (shortened once one rank failed)."""
    while True:
        waiting = [r for r in ranks if r.reply is None]
        if not waiting or time.monotonic() >= deadline:
            return
        for r in waiting:
            if r.conn.poll(0.01):
                try:
                    r.reply = r.conn.recv()
                except (EOFError, OSError):
                    r.reply = ("died", None)
            elif not r.process.is_alive() and not r.conn.poll(0):
                r.reply = ("died", None)
            if r.reply is not None and r.reply[0] != "ok":
                deadline = min(deadline, time.monotonic() + FAILURE_GRACE_S)


def _outcomes(ctx: Context, ranks: list[_Rank]) -> list[Outcome]:
    from .worker import _death

    problems = []
    for rank, r in enumerate(ranks):
        if r.reply is None:
            problems.append(f"rank {rank}: Timeout: no answer in time (hung, e.g. in a collective); "
                            f"every rank was killed")
        elif r.reply[0] == "died":
            problems.append(f"rank {rank}: the implementation crashed: {_death(r.process.exitcode)}")
        elif r.reply[0] == "failed":
            problems.append(f"rank {rank}: {r.reply[1]}")
    if problems:
        raise ctx.fail(f"world {len(ranks)}: " + "; ".join(problems))
    return [r.reply[1] for r in ranks]
