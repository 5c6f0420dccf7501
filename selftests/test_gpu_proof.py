"""scripts/gpu_proof.py (the one command that proves the CUDA paths on a GPU) and the
selection options it composes (lsuite/pytest_plugin/selection.py), tested without a GPU: the no-CUDA
branch and argument errors (one line, exit 2), the plan for one and two GPUs, what each
step's command collects, and the run itself on stub steps with the detection faked (the
summary, the merged files, the exit status, a step stopped at its budget).
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from lsuite.catalogs import peers
from scripts import gpu_proof

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "data"
RESULTS = DATA / "real_run_small.json"  # a results.json the stub steps hand in as theirs


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "scripts.gpu_proof", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def _collect(*args: str) -> list[str]:
    proc = subprocess.run([sys.executable, "-m", "pytest", *args, "--collect-only", "-q"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return [line for line in proc.stdout.splitlines() if "::" in line]


# ------------------------------------------------------------------ no GPU, bad arguments

@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA device")
def test_without_cuda_it_says_so_in_one_line_and_exits_2(tmp_path):
    out = tmp_path / "proof"
    proc = _cli(str(out))
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("gpu-proof: no CUDA device"), proc.stderr
    assert not out.exists()  # nothing was run, nothing written


def test_a_missing_output_directory_is_one_line_from_the_command_line():
    proc = _cli()
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        "gpu-proof: error: the following arguments are required: OUT_DIR "
        "(see python -m scripts.gpu_proof --help)"]


@pytest.mark.parametrize("args, says", [
    (["--plan", "--gpus", "0"], "--gpus takes a count of at least 1"),
    (["--gpus", "2"], "only plans, with --plan"),
    (["--budget", "10"], "--budget 10: at least"),
    (["--workers", "-1"], "--workers -1: 0 or more"),
    (["--only", "everything"], "invalid choice: 'everything'"),
    (["--budget", "soon"], "invalid float value: 'soon'"),
])
def test_argument_errors_are_one_line_and_exit_2(tmp_path, capsys, monkeypatch, args, says):
    monkeypatch.setattr(gpu_proof, "detect", lambda: pytest.fail("detected before the arguments"))
    assert gpu_proof.main([str(tmp_path / "out"), *args]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert len(captured.err.splitlines()) == 1 and says in captured.err, captured.err


def test_an_output_directory_with_files_in_it_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(gpu_proof, "detect", lambda: gpu_proof.Machine(1, ("Fake GPU",)))
    (tmp_path / "results.json").write_text("{}")
    assert gpu_proof.main([str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "is not a new or empty directory" in err


# ------------------------------------------------------------------ the plan

def _plan(tmp_path, gpus: int) -> dict[str, gpu_proof.Step]:
    return {step.name: step for step in gpu_proof.plan(tmp_path, gpus, workers=4)}


def test_the_plan_has_every_step_in_order(tmp_path, capsys):
    assert list(_plan(tmp_path, 1)) == list(gpu_proof.STEP_NAMES) == [
        "catalog", "device-assert", "device-assert-control", "benchmarks", "nccl", "triton"]
    assert gpu_proof.main([str(tmp_path), "--plan", "--gpus", "1"]) == 0
    printed = capsys.readouterr().out
    for i, name in enumerate(gpu_proof.STEP_NAMES, 1):
        assert re.search(rf"^{i}\. {name} \(share \d+ s\)", printed, re.M), printed
    assert not any(tmp_path.iterdir())  # --plan writes nothing


def test_every_step_runs_on_cuda_compiled_and_within_the_budget(tmp_path, monkeypatch):
    steps = _plan(tmp_path, 1).values()
    for step in steps:
        assert step.command[1:3] == ("-m", "pytest")
        assert step.command[step.command.index("--ls-device") + 1] == "cuda"
        assert not any("TRITON_INTERPRET" in arg for arg in step.command)
    assert sum(s.share_s for s in steps) + gpu_proof.RESERVE_S <= gpu_proof.BUDGET_S <= 8 * 60
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert "TRITON_INTERPRET" not in gpu_proof.step_env()


def test_one_gpu_runs_nccl_at_world_1_and_says_so(tmp_path):
    nccl = _plan(tmp_path, 1)["nccl"]
    assert {dict(need.where)["world"] for need in nccl.needs} == {1}
    assert "world 1 only" in nccl.title
    assert {dict(need.where)["impl"] for need in nccl.needs} >= {"example_vocab_parallel_ce"}


def test_two_gpus_run_nccl_at_worlds_1_and_2(tmp_path):
    nccl = _plan(tmp_path, 2)["nccl"]
    example = [dict(n.where) for n in nccl.needs if dict(n.where)["impl"] == "example_vocab_parallel_ce"]
    assert sorted(where["world"] for where in example) == [1, 2]
    assert "worlds 1 and 2" in nccl.title


# The ecosystem's Triton kernels and fused-linear losses (docs/catalogs.md), each compiled on CUDA.
TRITON_RECORDS = ["fla_cross_entropy", "fla_cross_entropy_tp", "fla_fused_linear_ce",
                             "flash_attn_cross_entropy", "flash_attn_cross_entropy_tp", "liger_cross_entropy",
                             "liger_fused_linear_ce", "liger_vocab_parallel_ce",
                             "liger_vocab_parallel_ce_partition", "te_2_18_0_parallel_ce",
                             "te_2_20_2_parallel_ce"]


def test_the_triton_step_names_the_triton_and_fused_linear_records(tmp_path):
    triton = _plan(tmp_path, 1)["triton"]
    named = [triton.command[i + 1] for i, arg in enumerate(triton.command) if arg == "--ls-record"]
    assert sorted(named) == TRITON_RECORDS
    for impl in (peers.by_name()[name] for name in named):
        must_run = any(dict(n.where) == {"impl": impl.name} for n in triton.needs)
        assert must_run == (not peers.missing(impl))  # an absent library: a note, not a need
        assert must_run or any(n.startswith(f"{impl.name}: skipped") for n in triton.notes)


def test_the_control_must_fail_and_stays_out_of_the_merge(tmp_path):
    control = _plan(tmp_path, 1)["device-assert-control"]
    assert control.expect == "fail" and not control.merge
    assert gpu_proof.CONTROL in control.command


def _step_ids(step: gpu_proof.Step) -> list[str]:
    """What the step's own command collects here (collection needs no GPU)."""
    args = list(step.command[3:])
    if "-n" in args:  # collection is the same without pytest-xdist, and faster here
        del args[args.index("-n"):args.index("-n") + 2]
    return _collect(*args)


def test_each_steps_command_collects_exactly_its_cuda_checks(tmp_path):
    plan = _plan(tmp_path, 1)
    catalog = _step_ids(plan["catalog"])
    assert len(catalog) > 500 and all("-cuda-" in i for i in catalog)
    assert not any(i.startswith(("suites/test_benchmarks.py", "suites/test_vocab_parallel.py",
                                 *gpu_proof.TARGET_CHECKS)) for i in catalog)
    targets = _step_ids(plan["device-assert"])
    assert targets and all(i.startswith(gpu_proof.TARGET_CHECKS) and "-cuda-" in i for i in targets)
    control = _step_ids(plan["device-assert-control"])
    assert len(control) == 2 and all("ClampsOutOfRangeTargets-cuda" in i for i in control)
    bench = _step_ids(plan["benchmarks"])
    functions = [i.split("::")[1].split("[")[0] for i in bench]
    assert sorted(functions) == sorted(set(functions)) == [
        "test_fused_linear_speed_and_memory", "test_harness_overhead_of_a_no_op",
        "test_speed_and_memory", "test_vocab_parallel_speed_and_memory_per_rank"]
    assert all("cuda" in i and "forward_backward" in i for i in bench)
    nccl = _step_ids(plan["nccl"])
    assert nccl and all(i.startswith("suites/test_vocab_parallel.py") and "-cuda-" in i for i in nccl)
    triton = _step_ids(plan["triton"])
    assert triton and all(i.split("[")[1].split("-cuda")[0] in TRITON_RECORDS for i in triton)


# ------------------------------------------------------------------ the selection options

def test_ls_device_deselects_the_other_device():
    ids = _collect("suites/test_argument_errors.py", "--ls-device", "cpu")
    assert ids and all("-cpu-" in i for i in ids)
    every = _collect("suites/test_argument_errors.py")
    assert len(every) == 2 * len(ids)  # cpu and cuda cases of every record


def test_ls_bench_one_keeps_one_point_per_benchmark():
    ids = _collect("suites/test_benchmarks.py", "--ls-bench-one", "--ls-device", "cpu")
    functions = [i.split("::")[1].split("[")[0] for i in ids]
    assert sorted(functions) == sorted(set(functions))
    assert "test_reference_throughput" in functions  # the NumPy reference counts as cpu
    assert len(_collect("suites/test_benchmarks.py", "--ls-device", "cpu")) > len(ids)


def test_ls_record_narrows_the_records_and_results_json(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "suites/test_argument_errors.py::test_rejects_smoothing_above_one",
         "--ls-record", "seed000_ce", "--ls-record", "seed002_bce", "--ls-device", "cpu",
         "--ls-report-dir", str(tmp_path), "-p", "no:cacheprovider"],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:]
    results = json.loads((tmp_path / "results.json").read_text())
    assert [impl["name"] for impl in results["environment"]["impls"]] == ["seed000_ce", "seed002_bce"]
    assert {(c["impl"], c["params"]["device"]) for c in results["checks"]} <= {
        ("seed000_ce", "cpu"), ("seed002_bce", "cpu")}
    assert results["checks"]


def test_an_unknown_ls_record_is_one_line_naming_the_records():
    proc = subprocess.run([sys.executable, "-m", "pytest", "suites/test_argument_errors.py",
                           "--ls-record", "no_such", "--collect-only", "-q"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 4
    errors = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and "--ls-record no_such: no such record under test (records: seed000_ce" in errors[0]


# ------------------------------------------------------------------ judging a step

def _results(*outcomes: str, **fields) -> dict:
    return {"checks": [dict({"outcome": o, "impl": "r", "world": 1, "nodeid": f"t{i}"}, **fields)
                       for i, o in enumerate(outcomes)], "benchmarks": []}


def test_judge_fails_a_failed_check_a_missing_need_and_a_control_that_passed():
    need = gpu_proof.Step("s", "t", (), 1, needs=(gpu_proof.Need("r at world 2", (("impl", "r"), ("world", 2))),))
    assert gpu_proof.judge(need, 0, None, _results("passed", world=2)) == []
    assert gpu_proof.judge(need, 0, None, _results("passed")) == ["nothing ran for r at world 2"]
    assert gpu_proof.judge(need, 0, None, _results("skipped", world=2)) == ["nothing ran for r at world 2"]
    assert "a check failed" in gpu_proof.judge(need, 1, None, _results("passed", world=2))[0]
    assert gpu_proof.judge(need, None, None, None) == ["not run: the budget was spent"]
    assert "wrote no results.json" in gpu_proof.judge(need, 0, None, None)[0]
    control = gpu_proof.Step("c", "t", (), 1, expect="fail")
    assert gpu_proof.judge(control, 1, None, _results("failed", "failed")) == []
    assert gpu_proof.judge(control, 1, None, _results("failed", "passed"))
    assert gpu_proof.judge(control, 0, None, _results())


def test_judge_wants_cuda_event_timing_and_a_peak_for_every_benchmark_kind():
    step = gpu_proof.Step("b", "t", (), 1, bench_kinds=gpu_proof.BENCH_KINDS)
    good = [{"kind": k, "device": "cuda", "timer": "cuda_event", "peak_bytes": 1}
            | ({} if i == "logits" else {"input": i}) for k, i in gpu_proof.BENCH_KINDS]
    assert gpu_proof.judge(step, 0, None, {"checks": [], "benchmarks": good}) == []
    for broken in ({"timer": "perf_counter"}, {"peak_bytes": None}, {"device": "cpu"}):
        entries = [dict(good[0], **broken), *good[1:]]
        assert len(gpu_proof.judge(step, 0, None, {"checks": [], "benchmarks": entries})) == 1


# ------------------------------------------------------------------ the run, on stub steps

def _stub(out: Path, name: str, code: str = "pass", exit_status: int = 0, share: float = 10) -> gpu_proof.Step:
    """A step that hands in RESULTS as its results.json, runs `code`, and exits."""
    folder = out / name
    script = (f"import shutil, sys; shutil.copy({str(RESULTS)!r}, {str(folder / 'results.json')!r}); "
              f"{code}; sys.exit({exit_status})")
    return gpu_proof.Step(name, f"stub {name}", (sys.executable, "-c", script), share)


@pytest.fixture
def fake_gpu(monkeypatch):
    monkeypatch.setattr(gpu_proof, "detect", lambda: gpu_proof.Machine(1, ("Fake GPU",)))


def test_a_failed_step_fails_the_run_and_the_summary_says_which(tmp_path, fake_gpu, monkeypatch, capsys):
    out = tmp_path / "proof"
    monkeypatch.setattr(gpu_proof, "plan", lambda o, gpus, workers: [
        _stub(o, "passes"), _stub(o, "fails", exit_status=1)])
    assert gpu_proof.main([str(out)]) == 1
    summary = (out / "summary.txt").read_text()
    assert capsys.readouterr().out.endswith(summary)  # printed too
    assert summary.startswith("gpu-proof: FAILED: 2 steps in ")
    assert re.search(r"^\[passed\] passes \([\d.]+ s of [\d.]+ s\)", summary, re.M)
    assert re.search(r"^\[FAILED\] fails .*\n    what: stub fails\n    problem: a check failed "
                     r"\(pytest exit 1\)", summary, re.M)
    steps = json.loads((out / "steps.json").read_text())
    assert [s["status"] for s in steps["steps"]] == ["passed", "FAILED"] and not steps["passed"]
    assert all(s["wall_s"] > 0 for s in steps["steps"])
    assert (out / "results.json").is_file() and (out / "report.html").is_file()


def test_passing_steps_pass_the_run_without_triton_interpret(tmp_path, fake_gpu, monkeypatch):
    out = tmp_path / "proof"
    seen = tmp_path / "seen.txt"
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    code = f"import os; open({str(seen)!r}, 'w').write(repr(os.environ.get('TRITON_INTERPRET')))"
    monkeypatch.setattr(gpu_proof, "plan", lambda o, gpus, workers: [_stub(o, "one", code), _stub(o, "two")])
    assert gpu_proof.main([str(out)]) == 0
    assert seen.read_text() == "None"
    assert (out / "summary.txt").read_text().startswith("gpu-proof: PASSED: 2 steps in ")
    merged = json.loads((out / "results.json").read_text())
    assert len(merged["environment"]["merged_from"]) == 2


def test_a_step_past_its_budget_is_stopped_with_its_children(tmp_path, fake_gpu, monkeypatch):
    out = tmp_path / "proof"
    pid_file = tmp_path / "child.pid"
    monkeypatch.setattr(gpu_proof, "RESERVE_S", 1)
    monkeypatch.setattr(gpu_proof, "MIN_STEP_S", 1)
    monkeypatch.setattr(gpu_proof, "GRACE_S", 2)
    hang = (f"import subprocess, time; child = subprocess.Popen(['sleep', '300']); "
            f"open({str(pid_file)!r}, 'w').write(str(child.pid)); time.sleep(300)")
    monkeypatch.setattr(gpu_proof, "plan", lambda o, gpus, workers: [_stub(o, "hangs", hang)])
    started = time.monotonic()
    assert gpu_proof.main([str(out), "--budget", "4"]) == 1
    assert time.monotonic() - started < 60
    record = json.loads((out / "steps.json").read_text())["steps"][0]
    assert record["timed_out"] and record["problems"][0] == "ran past its budget and was stopped"
    child = Path(f"/proc/{pid_file.read_text()}/stat")
    assert not child.exists() or child.read_text().split()[2] == "Z"  # killed with its group


def test_sigterm_stops_the_running_step_and_still_writes_the_summary(tmp_path, fake_gpu, monkeypatch):
    out = tmp_path / "proof"
    seen = []
    # a step that ignores the Ctrl-C (started from a background shell, SIGINT ignored) is
    # killed after the grace: 2 s here, not 15
    monkeypatch.setattr(gpu_proof, "GRACE_S", 2)
    previous = signal.signal(signal.SIGTERM, lambda *_: seen.append("ours"))  # not a KeyboardInterrupt
    terminate = "import os, signal, time; os.kill(os.getppid(), signal.SIGTERM); time.sleep(60)"
    monkeypatch.setattr(gpu_proof, "plan", lambda o, gpus, workers: [_stub(o, "stopped", terminate),
                                                                   _stub(o, "later")])
    try:
        started = time.monotonic()
        assert gpu_proof.main([str(out)]) == 1
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert time.monotonic() - started < 50 and not seen
    steps = json.loads((out / "steps.json").read_text())["steps"]
    assert [(s["name"], s["interrupted"]) for s in steps] == [("stopped", True)]
    assert "interrupted (Ctrl-C or SIGTERM)" in (out / "summary.txt").read_text()
    assert (out / "results.json").is_file()  # what the stopped step wrote is merged
