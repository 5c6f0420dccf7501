"""Deterministic mode: instructions per call, counted by Valgrind's callgrind.

Wall time on a shared CI runner moves with the neighbours; the number of instructions a
call executes does not (CodSpeed's approach). With `--ls-bench-measure instructions` every
benchmark point is counted instead of timed:

- one worker process per session, `python -m lsuite.benchmarking.instructions` under
  `valgrind --tool=callgrind --instr-atstart=no --collect-atstart=no`, with one torch
  thread (OMP_NUM_THREADS=1, torch.set_num_threads(1): valgrind serialises threads, and a
  thread pool's spinning would be counted) and PYTHONHASHSEED=0;
- the worker builds the point's workload exactly as timing mode does (lsuite.benchmarking.bench, which
  builds and calls through lsuite.running.runner), makes two warm-up calls, and switches
  instrumentation and collection on only around one call, through callgrind's client
  requests (CALLGRIND_START_INSTRUMENTATION / TOGGLE_COLLECT, compiled once from
  valgrind/callgrind.h into a small shared library); then dumps the counts
  (CALLGRIND_DUMP_STATS_AT), which the parent reads (`totals:` = Ir, instructions executed);
- the parent (lsuite.benchmarking.measuring.count) sends one point per request as a JSON line and gets the
  dump's path back.

What it cannot see: memory bandwidth and caches (a copy of the logits costs a few
instructions per 32 bytes but a full pass over memory: +2% in instructions, +15-30% in
time), threading and its scaling, the GPU (CUDA points are not counted: skip). Run time:
see docs/benchmarks.md.
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HELPER_C = """#include <valgrind/callgrind.h>
void ls_start(void) { CALLGRIND_START_INSTRUMENTATION; CALLGRIND_TOGGLE_COLLECT; }
void ls_stop(void) { CALLGRIND_TOGGLE_COLLECT; CALLGRIND_STOP_INSTRUMENTATION; }
void ls_dump(const char *label) { CALLGRIND_DUMP_STATS_AT(label); }
"""
HEADER = Path("/usr/include/valgrind/callgrind.h")
PREFIX = "LSCOUNT "  # the worker's replies on stdout; anything else there is ignored
ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}


def unavailable() -> str | None:
    """Why deterministic mode cannot run here (None: it can)."""
    if shutil.which("valgrind") is None:
        return "valgrind is not installed (Debian: apt-get install valgrind)"
    if not HEADER.exists():
        return f"{HEADER} is missing (Debian ships it in the valgrind package)"
    if shutil.which("cc") is None:
        return "no C compiler (cc) to build the callgrind client-request helper"
    return None


def helper(directory: Path) -> Path:
    """The shared library with the client requests, compiled into `directory`."""
    source, library = directory / "lscallgrind.c", directory / "lscallgrind.so"
    source.write_text(HELPER_C)
    subprocess.run(["cc", "-O2", "-shared", "-fPIC", "-o", str(library), str(source)],
                   check=True, capture_output=True, text=True)
    return library


def instructions_in(dump: Path) -> int:
    """Ir of one callgrind dump (its `totals:` line, or `summary:` when that is non-zero)."""
    totals = summary = 0
    for line in dump.read_text().splitlines():
        if line.startswith("totals:"):
            totals = int(line.split()[1])
        elif line.startswith("summary:"):
            summary = int(line.split()[1])
    return totals or summary


class Counter:
    """The session's callgrind worker: `count(point)` is the instructions of one call."""

    def __init__(self, specs: list[str]):
        reason = unavailable()
        if reason:
            raise RuntimeError(f"--ls-bench-measure instructions: {reason}")
        self.dir = Path(tempfile.mkdtemp(prefix="ls-callgrind-"))
        library = helper(self.dir)
        env = dict(os.environ, **ENV, LS_CALLGRIND_HELPER=str(library),
                   LS_CALLGRIND_OUT=str(self.dir / "callgrind.out"),
                   PYTHONPATH=os.pathsep.join(filter(None, (str(ROOT), os.environ.get("PYTHONPATH")))))
        command = ["valgrind", "--tool=callgrind", "--instr-atstart=no", "--collect-atstart=no",
                   "--dump-line=no", "--dump-instr=no", f"--log-file={self.dir / 'valgrind.log'}",
                   f"--callgrind-out-file={self.dir / 'callgrind.out'}.%p",
                   sys.executable, "-m", "lsuite.benchmarking.instructions", *specs]
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        text=True, env=env, cwd=ROOT)
        self.cache: dict[tuple, int] = {}

    def count(self, point) -> int:
        """Instructions of one call of point's workload (cached per point: deterministic)."""
        if point.device != "cpu":
            raise RuntimeError("instructions are counted on the CPU only")
        key = (point.impl.name, point.device, point.dtype, point.pass_, point.n, point.k, point.h,
               point.bias)
        if key not in self.cache:
            request = dict(zip(("impl", "device", "dtype", "pass", "n", "k", "h", "bias"), key,
                               strict=True))
            self.process.stdin.write(json.dumps(request) + "\n")
            self.process.stdin.flush()
            for line in self.process.stdout:
                if line.startswith(PREFIX):
                    reply = json.loads(line[len(PREFIX):])
                    break
            else:
                log = (self.dir / "valgrind.log").read_text()[-2000:]
                raise RuntimeError(f"the callgrind worker ended without an answer:\n{log}")
            if "error" in reply:
                raise RuntimeError(f"the callgrind worker failed on {key}: {reply['error']}")
            self.cache[key] = instructions_in(Path(reply["dump"]))
        return self.cache[key]

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.close()
            self.process.wait(timeout=120)
        shutil.rmtree(self.dir, ignore_errors=True)


def _impls(specs: list[str]) -> dict:
    """The implementations the parent session could name: its specs, the catalog, the no-op."""
    from lsuite.benchmarking import bench
    from lsuite.catalogs import catalog, loading

    impls = {**catalog.by_name(), bench.NOOP.name: bench.NOOP,
             bench.LINEAR_BUILTIN.name: bench.LINEAR_BUILTIN}
    specs = specs + [s.strip() for s in os.environ.get("LS_IMPL", "").split(",") if s.strip()]
    taken: set[str] = set()
    for spec in specs:
        impl = loading.load(spec, taken)
        taken.add(impl.name)
        impls[impl.name] = impl
    return impls


def serve(specs: list[str]) -> None:
    """The worker (under valgrind): one JSON point per stdin line, one LSCOUNT reply each."""
    import torch

    from lsuite.benchmarking import bench, timing

    torch.set_num_threads(1)
    lib = ctypes.CDLL(os.environ["LS_CALLGRIND_HELPER"])
    impls = _impls(specs)
    dumps = 0  # callgrind numbers its dumps 1, 2, ... after the pid
    for line in sys.stdin:
        request = json.loads(line)
        try:
            point = bench.Point(impls[request["impl"]], request["device"], request["dtype"],
                                request["pass"], request["n"], request["k"], request.get("h", 0),
                                request.get("bias", False))
            work = bench.workload(point.impl, point)
            for _ in range(2):  # allocator, lazy initialisation, dispatch caches
                args, kwargs = timing.call_args(work.setup)
                work.run(*args, **kwargs)
            args, kwargs = timing.call_args(work.setup)
            lib.ls_start()
            work.run(*args, **kwargs)
            lib.ls_stop()
            lib.ls_dump(json.dumps(request).encode())
            dumps += 1
            reply = {"dump": f"{os.environ['LS_CALLGRIND_OUT']}.{os.getpid()}.{dumps}"}
        except Exception as exc:  # reported to the parent, which fails the benchmark
            reply = {"error": f"{type(exc).__name__}: {exc}"}
        print(PREFIX + json.dumps(reply), flush=True)


if __name__ == "__main__":
    serve(sys.argv[1:])
