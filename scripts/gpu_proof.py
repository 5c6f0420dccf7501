"""gpu-proof: every CUDA path of the suite on a real GPU, as one command of at most 8 minutes.

    python -m scripts.gpu_proof OUT_DIR           # from the repository root, with the machine's torch
    python -m scripts.gpu_proof OUT_DIR --plan    # print the steps and their commands; run nothing

Each step is a pytest run of the suite narrowed by its own options (lsuite/pytest_plugin/selection.py:
--ls-device cuda, --ls-record, --ls-bench-one), in this order, each stopped at its budget
(Ctrl-C first, so the suite still writes its files marked incomplete; time a step leaves
unused passes to the later ones): the built-in catalog's CUDA checks; out-of-range targets
on CUDA, whose device-side assert must stay in its fresh interpreter (lsuite/checks/isolate.py), and
the same checks on a drop-in that clamps them, which must fail; one CUDA benchmark point of
each kind (CUDA events, the allocator's peak); the vocab-parallel records on NCCL at every
world the GPUs allow (1 and 2 on two GPUs); the Triton and fused-linear ecosystem records
compiled (TRITON_INTERPRET is removed from the steps' environment).

OUT_DIR (new or empty) receives a folder per step (results.json, report.html, pytest.log),
results.json and report.html merged from the steps (python -m reports merge; the control's
expected failures stay in its own folder), summary.txt, and steps.json (each step's command,
budget, wall time, outcome counts and verdict). Exit 0: every step passed; 1: a step failed
(a check failed, it ran past its budget or ran nothing it had to, the control passed); 2: no
CUDA device, or a usage error (one line). It installs nothing: a record whose library is
absent (liger-kernel, megatron-core) skips with the reason (unpacked wheels on PYTHONPATH).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.metadata
import importlib.util
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import torch

from lsuite.catalogs import catalog, peers
from scripts.gpu_proof_text import describe_plan, summary

PROG = "python -m scripts.gpu_proof"
ROOT = Path(__file__).resolve().parents[1]
OK, FAILED, UNUSABLE = 0, 1, 2  # exit statuses
BUDGET_S = 480  # the whole proof, merging and the summary included
RESERVE_S = 50  # kept for merging, the summary, and a stopped step's grace
MIN_STEP_S = 15  # a step with less time left is not started (it fails as "not run")
GRACE_S = 15  # after a step's Ctrl-C, how long it may take to write its files
MERGE_TIMEOUT_S = 60  # rendering the merged report takes seconds
WORKERS = 4  # pytest-xdist processes for the check steps (each starts one worker per record)
RAN = ("passed", "xfailed", "divergence")  # a check that ran on the device and was judged
HYPOTHESIS = ("--hypothesis-profile", "default", "--hypothesis-seed", "0")
ARGUMENTS = "suites/test_argument_errors.py::"
TARGET_CHECKS = (ARGUMENTS + "test_rejects_targets_at_or_above_the_class_count",
                 ARGUMENTS + "test_rejects_negative_targets_other_than_ignore_index")
CONTROL = "selftests/impls/dropins.py:ClampsOutOfRangeTargets"
# (entry kind, input) of every benchmark function of suites/test_benchmarks.py that has CUDA points
BENCH_KINDS = (("impl", "logits"), ("harness_overhead", "logits"), ("impl", "hidden_states"),
               ("impl", "vocab_parallel"))
STEP_NAMES = ("catalog", "device-assert", "device-assert-control", "benchmarks", "nccl", "triton")
STOPPED = ("ran past its budget and was stopped",
           "interrupted (Ctrl-C or SIGTERM): the later steps were not run")
PYTEST_EXITS = {1: "a check failed (pytest exit 1)", 2: "interrupted (pytest exit 2)",
                5: "no check was selected (pytest exit 5)"}  # others: see pytest.log


@dataclasses.dataclass(frozen=True)
class Need:
    """At least one check whose fields match `where` must have run on the device."""

    label: str
    where: tuple[tuple[str, object], ...] = ()


@dataclasses.dataclass(frozen=True)
class Step:
    name: str
    title: str
    command: tuple[str, ...]
    share_s: float  # of BUDGET_S - RESERVE_S
    expect: str = "pass"  # "fail": a control whose every check must fail
    needs: tuple[Need, ...] = ()
    bench_kinds: tuple[tuple[str, str], ...] = ()
    merge: bool = True  # into OUT_DIR's results.json
    notes: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class Machine:
    gpus: int
    names: tuple[str, ...] = ()
    reason: str | None = None  # why there is no GPU

    def describe(self) -> str:
        gpus = ", ".join(f"{name} x{self.names.count(name)}" for name in dict.fromkeys(self.names))
        return (f"{gpus or f'{self.gpus} GPU(s)'}; torch {torch.__version__}, CUDA {torch.version.cuda}, "
                f"triton {_version('triton') or 'absent'}")


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def detect() -> Machine:
    """The GPUs this process sees (none: the reason)."""
    if not torch.cuda.is_available():
        return Machine(0, reason=f"no CUDA device: torch.cuda.is_available() is False (torch "
                                 f"{torch.__version__}, built with CUDA {torch.version.cuda})")
    count = torch.cuda.device_count()
    return Machine(count, tuple(torch.cuda.get_device_name(i) for i in range(count)))


def triton_records() -> list:
    """The ecosystem's Triton and fused-linear records (the catalog's own run in `catalog`)."""
    return [impl for impl in peers.PEERS if impl.triton or impl.input == "hidden_states"]


def vocab_parallel_records() -> list:
    return [impl for impl in (*catalog.CATALOG, *peers.PEERS) if impl.input == "vocab_parallel"]


def _absent(impl) -> str:
    return (f"{impl.name}: skipped, {', '.join(peers.missing(impl))} not installed "
            f"(unpacked wheels on PYTHONPATH bring it)")


def pytest_command(report_dir: Path, *args: str, workers: int = 0) -> tuple[str, ...]:
    xdist = ("-n", str(workers)) if workers and importlib.util.find_spec("xdist") else ()
    return (sys.executable, "-m", "pytest", *args, "--ls-device", "cuda", "--ls-report-dir",
            str(report_dir), "-p", "no:cacheprovider", *HYPOTHESIS, *xdist)


def plan(out: Path, gpus: int, workers: int = WORKERS) -> list[Step]:
    """The steps, in order, for a machine with `gpus` GPUs, writing under `out`."""
    worlds = [w for w in (1, 2) if w <= gpus]
    nccl = [impl for impl in vocab_parallel_records() if not peers.missing(impl)]
    tri = triton_records()
    deselect = [arg for check in TARGET_CHECKS for arg in ("--deselect", check)]
    world_text = ("world 1 only (one GPU: the 2-rank check needs 2 GPUs and skips)" if gpus < 2
                  else "worlds 1 and 2")
    return [
        Step("catalog", "the built-in catalog's CUDA checks (every check but the benchmarks, the "
             "vocab-parallel and the out-of-range-target ones, which later steps run)",
             pytest_command(out / "catalog", "suites/", "--ignore=suites/test_benchmarks.py",
                            "--ignore=suites/test_vocab_parallel.py", *deselect, workers=workers),
             160, needs=(Need("a CUDA check of the built-in catalog"),)),
        Step("device-assert", "out-of-range targets on CUDA: the device-side assert trips in a "
             "fresh interpreter (lsuite/checks/isolate.py) and counts as the rejection",
             pytest_command(out / "device-assert", *TARGET_CHECKS, workers=workers),
             50, needs=(Need("an out-of-range target rejected on CUDA"),)),
        Step("device-assert-control", "the same checks on a drop-in that clamps out-of-range "
             "targets: every one must fail (the isolation does not pass everything)",
             pytest_command(out / "device-assert-control", *TARGET_CHECKS, "--ls-impl", CONTROL),
             20, expect="fail", merge=False),
        Step("benchmarks", "one CUDA benchmark point of each kind, forward+backward (CUDA events, "
             "the allocator's max_memory_allocated)",
             pytest_command(out / "benchmarks", "suites/test_benchmarks.py", "--benchmark-only",
                            "--ls-bench-one", "-k", "forward_backward"),
             50, bench_kinds=BENCH_KINDS),
        Step("nccl", f"the vocab-parallel records on NCCL rank groups at {world_text}",
             pytest_command(out / "nccl", "suites/test_vocab_parallel.py", "--ls-ecosystem",
                            *[a for impl in vocab_parallel_records() for a in ("--ls-record", impl.name)]),
             70, needs=tuple(Need(f"{impl.name} at world {w}", (("impl", impl.name), ("world", w)))
                             for impl in nccl for w in worlds),
             notes=tuple(_absent(impl) for impl in vocab_parallel_records() if peers.missing(impl))),
        Step("triton", "the Triton and fused-linear ecosystem records, compiled on CUDA",
             pytest_command(out / "triton", "suites/", "--ignore=suites/test_benchmarks.py",
                            "--ls-ecosystem", *[a for impl in tri for a in ("--ls-record", impl.name)],
                            workers=workers),
             80, needs=tuple(Need(f"{impl.name} compiled on CUDA", (("impl", impl.name),))
                             for impl in tri if not peers.missing(impl)),
             notes=tuple(_absent(impl) for impl in tri if peers.missing(impl))),
    ]


def _matches(check: dict, where) -> bool:
    return all(check.get(key, (check.get("params") or {}).get(key)) == value for key, value in where)


def judge(step: Step, rc: int | None, stopped: str | None, results: dict | None) -> list[str]:
    """What went wrong in a step (nothing: it passed); `stopped`: why it was stopped, if it was."""
    if rc is None:
        return ["not run: the budget was spent"]
    problems = [stopped] if stopped else []
    if results is None:
        return problems + [f"wrote no results.json ({PYTEST_EXITS.get(rc, f'exit {rc}')})"]
    checks = results.get("checks") or []
    counts = Counter(check.get("outcome") for check in checks)
    if step.expect == "fail":
        if rc != 1 or not checks or counts["failed"] != len(checks):
            problems.append(f"the control must fail every check (pytest exit 1), got exit {rc} "
                            f"and {dict(counts)}")
        return problems
    if rc != 0 and not stopped:
        problems.append(PYTEST_EXITS.get(rc, f"pytest exit {rc}: see pytest.log"))
    problems += [f"nothing ran for {need.label}" for need in step.needs
                 if not any(c.get("outcome") in RAN and _matches(c, need.where) for c in checks)]
    for kind, inputs in step.bench_kinds:
        entries = [b for b in results.get("benchmarks") or [] if b.get("device") == "cuda"
                   and b.get("kind") == kind and b.get("input", "logits") == inputs]
        if not any(b.get("timer") == "cuda_event" and b.get("peak_bytes") is not None for b in entries):
            problems.append(f"no CUDA benchmark entry ({kind}, {inputs}) timed with CUDA events "
                            "and with a peak memory")
    return problems


def _read(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):  # none written (the step died), or not JSON
        return None


def _stop(proc: subprocess.Popen, timed_out: bool) -> int:
    """Ctrl-C a step past its budget (the suite then writes its files), then kill whatever is
    left of its process group (workers, rank processes)."""
    if timed_out:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(GRACE_S)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    return proc.wait()


def step_env() -> dict[str, str]:
    """The steps' environment: this one without TRITON_INTERPRET (Triton compiles on CUDA)."""
    return {key: value for key, value in os.environ.items() if key != "TRITON_INTERPRET"}


def run_step(step: Step, folder: Path, budget_s: float) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    record = {"name": step.name, "title": step.title, "command": shlex.join(step.command),
              "budget_s": round(budget_s, 1), "wall_s": 0.0, "rc": None, "timed_out": False,
              "interrupted": False}
    rc, timed_out = None, False
    if budget_s >= MIN_STEP_S:
        started = time.monotonic()
        with (folder / "pytest.log").open("w") as log:
            proc = subprocess.Popen(step.command, cwd=ROOT, env=step_env(), stdout=log,
                                    stderr=subprocess.STDOUT, start_new_session=True)
            try:
                proc.wait(budget_s)
            except subprocess.TimeoutExpired:
                timed_out = True
            except KeyboardInterrupt:  # Ctrl-C or SIGTERM: stop the step, keep what it wrote
                record["interrupted"] = True
            rc = _stop(proc, timed_out or record["interrupted"])
        record.update(wall_s=round(time.monotonic() - started, 2), rc=rc, timed_out=timed_out)
    results = _read(folder / "results.json") if rc is not None else None
    checks = (results or {}).get("checks") or []
    skipped = Counter(c.get("message", "")[:160] for c in checks if c.get("outcome") == "skipped")
    record.update(
        counts=dict(Counter(c.get("outcome") for c in checks)),
        benchmarks=len((results or {}).get("benchmarks") or []),
        problems=judge(step, rc, STOPPED[bool(record["interrupted"])] if timed_out or
                       record["interrupted"] else None, results), notes=list(step.notes),
        skip_reasons=[f"{n} x {why}" for why, n in skipped.most_common(3)],
        not_passing=[] if step.expect == "fail" else [
            c.get("nodeid") for c in checks if c.get("outcome") not in (*RAN, "skipped")][:5],
        results=str(folder / "results.json") if results is not None else None)
    record["status"] = "passed" if not record["problems"] else "FAILED"
    return record


def run(steps: list[Step], out: Path, budget_s: float) -> list[dict]:
    """Each step in turn; a step's budget is what is left less the later steps' shares."""
    scale = (budget_s - RESERVE_S) / (BUDGET_S - RESERVE_S)
    deadline = time.monotonic() + budget_s - RESERVE_S
    records = []
    for i, step in enumerate(steps):
        later = sum(s.share_s for s in steps[i + 1:]) * scale
        budget = max(0.0, deadline - time.monotonic() - later)
        print(f"gpu-proof: [{i + 1}/{len(steps)}] {step.name} (budget {budget:.0f} s) ...", flush=True)
        records.append(run_step(step, out / step.name, budget))
        print(f"gpu-proof: {step.name}: {records[-1]['status']} in {records[-1]['wall_s']} s", flush=True)
        if records[-1]["interrupted"]:
            break
    return records


def merge(records: list[dict], steps: list[Step], out: Path) -> list[str]:
    """OUT_DIR/results.json and report.html from the steps' (python -m reports merge)."""
    merged = {s.name for s in steps if s.merge}
    inputs = [r["results"] for r in records if r["results"] and r["name"] in merged]
    if not inputs:
        return ["no step wrote a results.json to merge"]
    if len(inputs) == 1:  # `reports merge` wants two or more: the one is copied and rendered
        shutil.copyfile(inputs[0], out / "results.json")
    command = (["merge", *inputs, "-o", str(out)] if len(inputs) > 1
               else ["build", str(out / "results.json")])
    proc = subprocess.run([sys.executable, "-m", "reports", *command],
                          cwd=ROOT, capture_output=True, text=True, timeout=MERGE_TIMEOUT_S)
    return [] if proc.returncode == 0 else [f"merging failed: {proc.stderr.strip()[-300:]}"]


class UsageError(Exception):  # a bad command line: one line on stderr, exit 2
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse's own would print the usage, several lines
        raise UsageError(f"{message} (see {PROG} --help)")


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = _Parser(prog=PROG, description="\n\n".join(__doc__.split("\n\n")[:2]),
                     formatter_class=argparse.RawDescriptionHelpFormatter,
                     epilog="Steps: " + ", ".join(STEP_NAMES) + ". Exit 0: every step passed; 1: a "
                            "step failed; 2: no CUDA device or a usage error.")
    parser.add_argument("out", metavar="OUT_DIR", help="new or empty directory for every file written")
    parser.add_argument("--plan", action="store_true",
                        help="print the steps, their commands and budgets; run nothing (default: off)")
    parser.add_argument("--gpus", type=int, metavar="N",
                        help="with --plan: plan for N GPUs instead of those found (default: found)")
    parser.add_argument("--budget", type=float, default=BUDGET_S, metavar="SECONDS",
                        help=f"the whole run's time, shared by the steps (default: {BUDGET_S})")
    parser.add_argument("--workers", type=int, default=WORKERS, metavar="N",
                        help=f"pytest-xdist processes of the check steps, 0 for none (default: {WORKERS})")
    parser.add_argument("--only", action="append", choices=STEP_NAMES, metavar="STEP",
                        help="run only this step, repeatable, e.g. to rerun a failed one (default: all)")
    args = parser.parse_args(argv)
    if args.gpus is not None and (not args.plan or args.gpus < 1):
        raise UsageError(f"--gpus takes a count of at least 1 and only plans, with --plan (see {PROG} --help)")
    if args.budget < RESERVE_S + MIN_STEP_S:
        raise UsageError(f"--budget {args.budget:g}: at least {RESERVE_S + MIN_STEP_S} seconds")
    if args.workers < 0:
        raise UsageError(f"--workers {args.workers}: 0 or more")
    out = Path(args.out)
    if not args.plan and (out.is_file() or (out.is_dir() and any(out.iterdir()))):
        raise UsageError(f"{out} is not a new or empty directory: give another, so that no old "
                         "result is mistaken for this run's")
    return args


def main(argv: list[str] | None = None) -> int:
    try:
        args = parse(argv)
    except UsageError as exc:
        print(f"gpu-proof: error: {exc}", file=sys.stderr)
        return UNUSABLE
    machine = detect() if args.gpus is None else Machine(args.gpus)
    if machine.gpus == 0:
        print(f"gpu-proof: {machine.reason}; nothing was run (needs a CUDA GPU; "
              f"--plan --gpus N shows what it would run)", file=sys.stderr)
        return UNUSABLE
    out = Path(args.out).resolve()
    steps = [s for s in plan(out, machine.gpus, args.workers) if not args.only or s.name in args.only]
    if args.plan:
        print(describe_plan(machine, steps, args.budget), end="")
        return OK
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)  # SIGTERM as Ctrl-C
    try:
        records = run(steps, out, args.budget)
    finally:
        signal.signal(signal.SIGTERM, previous)
    merge_problems = merge(records, steps, out)
    passed = all(r["status"] == "passed" for r in records) and not merge_problems
    text = summary(machine, records, merge_problems, time.monotonic() - started, args.budget, out,
                   passed)
    (out / "summary.txt").write_text(text)
    (out / "steps.json").write_text(json.dumps(
        {"machine": dataclasses.asdict(machine), "budget_s": args.budget, "steps": records,
         "merge_problems": merge_problems, "passed": passed}, indent=1))
    print(text, end="")
    return OK if passed else FAILED


if __name__ == "__main__":
    sys.exit(main())
