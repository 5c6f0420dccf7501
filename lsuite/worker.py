"""The implementation under test runs here, in a process of its own; the judge never does.

One worker process per implementation (per pytest process), started from a fork server
that has already imported torch (multiprocessing's "forkserver" context: a start costs tens
of milliseconds, and no thread or CUDA state is inherited; "spawn" where there is no fork
server). The parent sends the case and the NumPy inputs; the worker rebuilds the
implementation's record (the catalog by name, or the SPEC it was loaded from), calls it
through the runner, and sends back NumPy outputs or the failure's text. The reference, the
budgets, the comparisons and the writing of results stay in the parent (lsuite/plugin.py),
where the implementation's code never runs.

What the worker cannot do to the run, and what the parent does instead:
- hang, even in a C loop that never checks for signals: the parent waits at most the
  check's remaining time, then kills the worker (SIGKILL) and fails the check; the
  implementation's later checks fail at once with "not run: it hung in <check>";
- die (os._exit, a segfault, the OOM killer): the check fails with the exit status, and the
  next call starts a fresh worker;
- raise KeyboardInterrupt or SystemExit: that call's failure, like any exception; the
  worker ignores SIGINT, so only the parent handles Ctrl-C (and kills the workers);
- change global torch state (default dtype, grad mode, threads, deterministic and anomaly
  flags, functions of torch and torch.nn.functional): restored after every call, and in
  any case confined to its own process.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

from . import causes
from .causes import Explained
from .runner import CheckFailed, Context

MESSAGE_CHARS = 4000  # an implementation's exception text is cut to this (the cut is said)
START_TIMEOUT_S = 120.0  # a fresh worker importing the implementation's module


def _context():
    methods = multiprocessing.get_all_start_methods()
    if "forkserver" in methods:
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["torch", "numpy", "lsuite.worker"])
        return ctx
    return multiprocessing.get_context("spawn")


def _cut(text: str) -> str:
    if len(text) <= MESSAGE_CHARS:
        return text
    return text[:MESSAGE_CHARS] + f"... [cut: {len(text) - MESSAGE_CHARS} more characters]"


# ------------------------------------------------------------------ the worker's side

def _torch_flags():
    """(what, getter, setter) for each process-global torch setting restored after a call."""
    import torch

    return (("default dtype", torch.get_default_dtype, torch.set_default_dtype),
            ("grad mode", torch.is_grad_enabled, torch.set_grad_enabled),
            ("threads", torch.get_num_threads, torch.set_num_threads),
            ("deterministic algorithms", torch.are_deterministic_algorithms_enabled,
             torch.use_deterministic_algorithms),
            ("anomaly mode", torch.is_anomaly_enabled, torch.set_anomaly_enabled))


class _TorchState:
    """Process-global torch state an implementation might change; restored after each call."""

    def __init__(self):
        import torch
        import torch.nn.functional as F

        self.flags = [(what, get, set_, get()) for what, get, set_ in _torch_flags()]
        self.namespaces = {module: dict(vars(module)) for module in (torch, F, torch.Tensor)}

    def restore(self) -> list[str]:
        changed = []
        for what, get, set_, value in self.flags:
            if get() != value:
                changed.append(what)
                set_(value)
        for module, saved in self.namespaces.items():
            for name, value in saved.items():
                if vars(module).get(name) is not value:
                    changed.append(f"{getattr(module, '__name__', module)}.{name}")
                    try:
                        setattr(module, name, value)
                    except (AttributeError, TypeError):
                        pass
        return changed


def record_ref(impl) -> tuple[str, str]:
    """How another process rebuilds a record: the catalog by name, or the SPEC it came from."""
    return ("builtin", impl.name) if impl.origin == "builtin" else ("spec", impl.origin)


def _record(ref: tuple[str, str]):
    """The implementation's record, rebuilt in this process: ("builtin", name) or ("spec", SPEC)."""
    from . import catalog, loading, peers

    origin, where = ref
    if origin == "builtin":
        return peers.as_run_here({**catalog.by_name(), **peers.by_name()}[where])
    return loading.load(where)


def _describe(record) -> dict:
    """The record as data for the parent: every field but `build`; known defects with their
    predicates' text (the parent asks this process to evaluate them: "when")."""
    import dataclasses

    fields = {f.name: getattr(record, f.name) for f in dataclasses.fields(record)
              if f.name not in ("build", "known_defects", "rejects_with")}
    fields["known_defects"] = [{"reason": d.reason, "checks": tuple(d.checks),
                                "kinds": tuple(d.kinds), "when": None if d.when is None else d.when_text}
                               for d in record.known_defects]
    return fields


def _serve(conn) -> None:
    """The worker's loop: one request, one reply, until the parent closes the pipe."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    from . import rejection, runner

    functions = {"run": runner.run_local, "attempt": rejection.attempt_local}
    records: dict[tuple, Any] = {}
    state = _TorchState()
    while True:
        try:
            op, ref, payload = conn.recv()
        except (EOFError, OSError):
            return

        def serve_one(op=op, ref=ref, payload=payload):
            if ref not in records:
                records[ref] = _record(ref)
            record = records[ref]
            if op == "describe":
                return _describe(record)
            if op == "when":
                index, case = payload
                return bool(record.known_defects[index].when(case))
            function, case, seed, args = payload
            return functions[function](Context(impl=record, case=case, seed=seed), *args)

        answer(conn, serve_one, state)


def answer(conn, call, state: _TorchState, after=tuple) -> None:
    """One request of a worker or a rank: call(), then the torch state it changed restored,
    and the reply sent: ("ok", result) or ("failed", why), the changes, then after()'s
    fields (a rank's: whether its group is intact). A check's failure is its message;
    anything else escaping (SystemExit and KeyboardInterrupt too) is the implementation's."""
    try:
        reply = ("ok", call())
    except CheckFailed as exc:  # its causes travel with its text (lsuite/causes.py)
        reply = ("failed", Explained(_cut(exc.what), exc.causes))
    except BaseException as exc:  # noqa: BLE001 - SystemExit/KeyboardInterrupt too
        where = traceback.format_exception_only(type(exc), exc)[-1].strip()
        reply = ("failed", Explained(_cut(f"the implementation raised {where}"),
                                     [causes.raised(exc, "the implementation")]))
    changed = state.restore()
    try:
        conn.send(reply + (changed, *after()))
    except Exception as exc:  # an unpicklable result
        conn.send(("failed", _cut(f"its result could not be sent back: {exc}"), changed, *after()))


def main(conn) -> None:  # the process target (importable by the fork server)
    try:
        _serve(conn)
    finally:
        sys.stdout.flush()


# ------------------------------------------------------------------ the parent's side

def _death(code: int | None) -> str:
    if code is None:
        return "it stopped answering"
    if code < 0:
        try:
            return f"its process was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"its process was killed by signal {-code}"
    return f"its process exited with status {code}"


@dataclass
class _Handle:
    process: Any
    conn: Any


@dataclass
class Pool:
    """The parent's workers, one per implementation, started on first use."""

    limit_s: float = 60.0  # per-check limit (--ls-timeout)
    impl_budget_s: float | None = None  # per-implementation limit (--ls-impl-budget)
    handles: dict[str, _Handle] = field(default_factory=dict)
    hung: dict[str, str] = field(default_factory=dict)  # impl name -> the check it hung in
    spent: dict[str, float] = field(default_factory=dict)  # impl name -> seconds in calls
    restored: dict[str, list[str]] = field(default_factory=dict)  # impl -> state it changed
    interrupted: Any = None  # called before each call: raises KeyboardInterrupt after a Ctrl-C

    def _handle(self, key: str) -> _Handle:
        handle = self.handles.get(key)
        if handle is not None and handle.process.is_alive():
            return handle
        mp = _context()
        parent, child = mp.Pipe()
        process = mp.Process(target=main, args=(child,), daemon=True, name=f"ls-impl-{key}")
        process.start()
        child.close()
        self.handles[key] = handle = _Handle(process, parent)
        return handle

    def kill(self, key: str) -> None:
        handle = self.handles.pop(key, None)
        if handle is None:
            return
        if handle.process.is_alive():
            handle.process.kill()
        handle.process.join(5)
        handle.conn.close()

    def close(self) -> None:
        from .distributed import close_groups  # the vocab-parallel ranks, started by the judge

        for key in list(self.handles):
            self.kill(key)
        close_groups()

    def _request(self, key: str, message: tuple, wait: float):
        """(reply or None, whether the worker answered or died before `wait` ran out)."""
        handle = self._handle(key)
        try:
            handle.conn.send(message)
            ready = handle.conn.poll(wait)
            return (handle.conn.recv() if ready else None), ready
        except (EOFError, OSError, BrokenPipeError):
            return None, True

    def describe(self, spec: str) -> dict:
        """Load SPEC in its worker and return its record as data; SpecError on failure."""
        from .loading import SpecError

        reply, ready = self._request(spec, ("describe", ("spec", spec), None), START_TIMEOUT_S)
        if reply is None:
            code = self._exit_code(spec)
            self.kill(spec)
            what = f"did not load within {START_TIMEOUT_S:g} s" if not ready else _death(code)
            raise SpecError(f"--ls-impl {spec!r}: loading it in its own process failed: {what}")
        status, payload, _ = reply
        if status == "failed":
            payload = payload.removeprefix("the implementation raised SpecError: ")
            if not payload.startswith("--ls-impl"):
                payload = f"--ls-impl {spec!r}: loading it in its own process: {payload}"
            raise SpecError(payload)
        return payload

    def when(self, spec: str, index: int, case) -> bool:
        """Evaluate the record's known defect `index` predicate on `case` in its worker."""
        reply, _ = self._request(spec, ("when", ("spec", spec), (index, case)), START_TIMEOUT_S)
        if reply is None or reply[0] != "ok":
            self.kill(spec)
            detail = "its process died" if reply is None else reply[1]
            raise RuntimeError(f"--ls-impl {spec!r}: evaluating a known defect's predicate failed: "
                               f"{detail}")
        return reply[1]

    def _exit_code(self, key: str) -> int | None:
        handle = self.handles.get(key)
        if handle is None:
            return None
        handle.process.join(5)
        return handle.process.exitcode

    def call(self, ctx: Context, function: str, *args):
        """`function(ctx, *args)` in the implementation's worker; its failures as ctx.fail."""
        if self.interrupted is not None:
            self.interrupted()
        impl = ctx.impl
        if impl.name in self.hung:
            raise ctx.fail(f"not run: it hung in {self.hung[impl.name]}",
                           causes=[causes.part("not_run", "after a hang", "not run: it hung in an earlier check")])
        spent = self.spent.get(impl.name, 0.0)
        if self.impl_budget_s is not None and spent >= self.impl_budget_s:
            raise ctx.fail(f"not run: the implementation's budget of {self.impl_budget_s:g} s "
                           f"(--ls-impl-budget) is used up",
                           causes=[causes.part("not_run", "time or budget", "its time or budget was used up")])
        limit = self.limit_s * impl.time_factor
        wait = limit if ctx.deadline is None else ctx.deadline - time.monotonic()
        budget_binds = self.impl_budget_s is not None and self.impl_budget_s - spent < wait
        if budget_binds:
            wait = self.impl_budget_s - spent
        if wait <= 0:
            raise ctx.fail(f"not run: the check's time limit of {limit:g} s is used up",
                           causes=[causes.part("not_run", "time or budget", "its time or budget was used up")])
        key = impl.name if impl.origin == "builtin" else impl.origin
        ref = record_ref(impl)
        started = time.monotonic()
        try:
            reply, ready = self._request(key, ("call", ref, (function, ctx.case, ctx.seed, args)), wait)
        finally:
            self.spent[impl.name] = spent + time.monotonic() - started
        if reply is None and not ready and budget_binds:
            self.kill(key)
            raise ctx.fail(f"not run to its end: the implementation's budget of "
                           f"{self.impl_budget_s:g} s (--ls-impl-budget) is used up",
                           causes=[causes.part("not_run", "time or budget", "its time or budget was used up")])
        if reply is None:
            return self._lost(ctx, key, ready, wait)
        status, payload, changed = reply
        if changed:
            self.restored.setdefault(impl.name, [])
            self.restored[impl.name] += [c for c in changed if c not in self.restored[impl.name]]
        if status == "failed":
            raise ctx.fail(payload)
        return payload

    def _lost(self, ctx: Context, key: str, ready: bool, wait: float):
        if not ready:  # timed out: kill it, whatever it is doing (no signal needs answering)
            self.kill(key)
            self.hung[ctx.impl.name] = ctx.check or "a check"
            raise ctx.fail(f"Timeout: no answer within {wait:.3g} s; its process was killed "
                           f"(its remaining checks are not run)",
                           causes=[causes.part("timeout", "call", "no answer within the time limit")])
        code = self._exit_code(key)
        self.kill(key)
        raise ctx.fail(f"the implementation crashed: {_death(code)} (a fresh process runs its "
                       f"next check)", causes=[causes.part("crashed", "call", _death(code))])


def describe_context() -> str:
    return f"{_context().get_start_method()} (pid {os.getpid()} is the judge)"
