"""The implementation under test runs here, in a process of its own; the judge never does.

One worker process per implementation (per pytest process), started from a fork server
that has already imported torch (multiprocessing's "forkserver" context: a start costs tens
of milliseconds, and no thread or CUDA state is inherited; "spawn" where there is no fork
server). The parent sends the case and the NumPy inputs; the worker rebuilds the
implementation's record (the catalog by name, or the SPEC it was loaded from), calls it
through the runner, and sends back NumPy outputs or the failure's text. The reference, the
budgets, the comparisons and the writing of results stay in the parent (lsuite/pytest_plugin/plugin.py),
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

import os
import signal
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from lsuite.catalogs.loading import SpecError
from lsuite.running import causes, distributed
from lsuite.running.process import TorchState, answer, death, rebuild, record_ref, start_context
from lsuite.running.runner import Context

START_TIMEOUT_S = 120.0  # a fresh worker importing the implementation's module


# ------------------------------------------------------------------ the worker's side

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
    records: dict[tuple, Any] = {}
    state = TorchState()
    while True:
        try:
            op, ref, payload = conn.recv()
        except (EOFError, OSError):
            return

        def serve_one(op=op, ref=ref, payload=payload):
            if ref not in records:
                records[ref] = rebuild(ref)
            record = records[ref]
            if op == "describe":
                return _describe(record)
            if op == "when":
                index, case = payload
                return bool(record.known_defects[index].when(case))
            function, case, seed, args = payload
            return function(Context(impl=record, case=case, seed=seed), *args)

        answer(conn, serve_one, state)


def main(conn) -> None:  # the process target (importable by the fork server)
    try:
        _serve(conn)
    finally:
        sys.stdout.flush()


# ------------------------------------------------------------------ the parent's side

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
        mp = start_context()
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
        for key in list(self.handles):
            self.kill(key)
        distributed.close_groups()  # the vocab-parallel ranks, started by the judge

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
        reply, ready = self._request(spec, ("describe", ("spec", spec), None), START_TIMEOUT_S)
        if reply is None:
            code = self._exit_code(spec)
            self.kill(spec)
            what = f"did not load within {START_TIMEOUT_S:g} s" if not ready else death(code)
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

    def call(self, ctx: Context, function, *args):
        """`function(ctx, *args)` in the implementation's worker (a module-level function,
        sent by reference); its failures as ctx.fail."""
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
        raise ctx.fail(f"the implementation crashed: {death(code)} (a fresh process runs its "
                       f"next check)", causes=[causes.part("crashed", "call", death(code))])


def describe_context() -> str:
    return f"{start_context().get_start_method()} (pid {os.getpid()} is the judge)"
