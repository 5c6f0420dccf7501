"""What the implementation's processes (a worker, lsuite/running/worker.py; a rank,
lsuite/running/distributed.py) share: how they are started, the record rebuilt in them, the
torch state restored after each call, the one way a request is answered, and the words for a
process that died."""

from __future__ import annotations

import multiprocessing
import signal
import traceback

from lsuite.catalogs import catalog, loading, peers, triton_here
from lsuite.running import causes
from lsuite.running.causes import Explained
from lsuite.running.runner import CheckFailed

MESSAGE_CHARS = 4000  # an implementation's exception text is cut to this (the cut is said)


def start_context():
    """The fork server the workers and CPU ranks share (spawn where there is none)."""
    methods = multiprocessing.get_all_start_methods()
    if "forkserver" in methods:
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["torch", "numpy", "lsuite.running.process"])
        return ctx
    return multiprocessing.get_context("spawn")


def cut(text: str) -> str:
    """An exception's text, cut to MESSAGE_CHARS (the cut is said)."""
    if len(text) <= MESSAGE_CHARS:
        return text
    return text[:MESSAGE_CHARS] + f"... [cut: {len(text) - MESSAGE_CHARS} more characters]"


def torch_flags():
    """(what, getter, setter) for each process-global torch setting restored after a call."""
    import torch

    return (("default dtype", torch.get_default_dtype, torch.set_default_dtype),
            ("grad mode", torch.is_grad_enabled, torch.set_grad_enabled),
            ("threads", torch.get_num_threads, torch.set_num_threads),
            ("deterministic algorithms", torch.are_deterministic_algorithms_enabled,
             torch.use_deterministic_algorithms),
            ("anomaly mode", torch.is_anomaly_enabled, torch.set_anomaly_enabled))


class TorchState:
    """Process-global torch state an implementation might change; restored after each call."""

    def __init__(self):
        import torch
        import torch.nn.functional as F

        self.flags = [(what, get, set_, get()) for what, get, set_ in torch_flags()]
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


def rebuild(ref: tuple[str, str]):
    """The implementation's record, rebuilt in this process: ("builtin", name) or ("spec", SPEC)."""
    origin, where = ref
    if origin == "builtin":
        return triton_here.as_run_here({**catalog.by_name(), **peers.by_name()}[where])
    return loading.load(where)


def answer(conn, call, state: TorchState, after=tuple) -> None:
    """One request of a worker or a rank: call(), then the torch state it changed restored,
    and the reply sent: ("ok", result) or ("failed", why), the changes, then after()'s
    fields (a rank's: whether its group is intact). A check's failure is its message;
    anything else escaping (SystemExit and KeyboardInterrupt too) is the implementation's."""
    try:
        reply = ("ok", call())
    except CheckFailed as exc:  # its causes travel with its text (lsuite/running/causes.py)
        reply = ("failed", Explained(cut(exc.what), exc.causes))
    except BaseException as exc:  # noqa: BLE001 - SystemExit/KeyboardInterrupt too
        where = traceback.format_exception_only(type(exc), exc)[-1].strip()
        reply = ("failed", Explained(cut(f"the implementation raised {where}"),
                                     [causes.raised(exc, "the implementation")]))
    changed = state.restore()
    try:
        conn.send(reply + (changed, *after()))
    except Exception as exc:  # an unpicklable result
        conn.send(("failed", cut(f"its result could not be sent back: {exc}"), changed, *after()))


def death(code: int | None) -> str:
    """What happened to a process that stopped answering, from its exit code."""
    if code is None:
        return "it stopped answering"
    if code < 0:
        try:
            return f"its process was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"its process was killed by signal {-code}"
    return f"its process exited with status {code}"
