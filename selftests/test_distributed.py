"""The distributed runner's persistent rank groups (lsuite/running/distributed.py) cannot be poisoned:
a rank that hangs in a collective or dies fails its check naming the rank and what happened,
within the time limit, and the record's later checks run on a fresh group and pass; torch
state a rank's record changed is restored between checks; two pytest processes at once
never collide. Each record of selftests/impls/beyond.py used here misbehaves on rank 1 in
float32 only, the second of the four dtypes of the check run. Real `pytest suites/` runs
in subprocesses, as a user runs them; each bounded in wall time (a hang guard, not a
timing assertion)."""

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BEYOND = ROOT / "selftests" / "impls" / "beyond.py"
EXAMPLE = ROOT / "examples" / "vocab_parallel_cross_entropy.py"
CHECK = "shards_value_and_gradient_in_every_dtype_and_reduction"
LIMIT_S = 15  # --ls-timeout: a hung check ends after this
BOUND_S = 300  # every run here must end within this
MISBEHAVING = {  # record -> words the float32 check's message must contain
    "VocabParallelRankSkipsAllReduce": ("rank 0: Timeout", "rank 1 answered", "every rank of the group was killed"),
    "VocabParallelRankExits": ("rank 1: the implementation crashed: its process exited with status 3",),
    "VocabParallelRankKilled": ("rank 1: the implementation crashed: its process was killed by SIGKILL",),
}


def command(out: Path, *specs, extra=()):
    args = [sys.executable, "-m", "pytest", str(ROOT / "suites" / "test_vocab_parallel.py"),
            f"--rootdir={ROOT}", "-c", str(ROOT / "pyproject.toml"), "-p", "no:cacheprovider", "-q",
            f"--ls-report-dir={out}", f"--ls-timeout={LIMIT_S}", "-k", f"{CHECK} and cpu and world2", *extra]
    for spec in specs:
        args += ["--ls-impl", spec]
    return args


def checks(out: Path, impl: str) -> dict:
    """The record's checks by dtype (and reduction other than mean), all at world 2 (the -k
    of `command`): a second world would overwrite them."""
    payload = json.loads((out / "results.json").read_text())
    assert {c["world"] for c in payload["checks"] if c["impl"] == impl} <= {2}
    return {c["params"]["dtype"] + ("" if c["params"]["reduction"] == "mean" else "-" + c["params"]["reduction"]): c
            for c in payload["checks"] if c["impl"] == impl}


@pytest.fixture(scope="module")
def misbehaving_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("misbehaving")
    specs = [f"{BEYOND}:{name}" for name in (*MISBEHAVING, "VocabParallelChangesTorchState")]
    started = time.monotonic()
    proc = subprocess.run(command(out, *specs), cwd=ROOT, capture_output=True, text=True,
                          timeout=BOUND_S)
    return proc, out, time.monotonic() - started


@pytest.mark.parametrize("name", sorted(MISBEHAVING))
def test_a_rank_that_hangs_or_dies_fails_its_check_naming_it_and_later_checks_pass(misbehaving_run, name):
    proc, out, _ = misbehaving_run
    found = checks(out, name)
    assert set(found) == {"float64", "float32", "bfloat16", "float16"}, proc.stdout[-3000:]
    assert found["float32"]["outcome"] == "failed", found["float32"]
    for words in MISBEHAVING[name]:
        assert words in found["float32"]["message"], found["float32"]["message"][:1000]
    # float64 ran on the group before; bfloat16 and float16 on the fresh one after
    assert {d: c["outcome"] for d, c in found.items() if d != "float32"} == \
        {"float64": "passed", "bfloat16": "passed", "float16": "passed"}


def test_a_hung_check_ends_within_its_time_limit(misbehaving_run):
    proc, out, seconds = misbehaving_run
    hung = checks(out, "VocabParallelRankSkipsAllReduce")["float32"]
    assert hung["duration_s"] < LIMIT_S + 10, hung["duration_s"]
    assert proc.returncode == 1, proc.stdout[-3000:]  # the failures, not an error of the run


def test_torch_state_a_rank_changed_is_restored_before_the_next_check(misbehaving_run):
    """The record raises if it finds the default dtype or F.softmax as its previous build left them."""
    _, out, _ = misbehaving_run
    found = checks(out, "VocabParallelChangesTorchState")
    assert len(found) == 4 and all(c["outcome"] == "passed" for c in found.values()), \
        {d: c["message"][:300] for d, c in found.items()}


def test_two_pytest_processes_at_once_never_collide(tmp_path):
    """Each serves its own TCPStore on a port the kernel picked: both pass every check."""
    outs = [tmp_path / "a", tmp_path / "b"]
    procs = [subprocess.Popen(command(out, f"{EXAMPLE}:VOCAB_PARALLEL_CE"), cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for out in outs]
    try:
        texts = [p.communicate(timeout=BOUND_S)[0] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for proc, text, out in zip(procs, texts, outs, strict=True):
        assert proc.returncode == 0, text[-3000:]
        found = checks(out, "example_vocab_parallel_ce")
        assert found and all(c["outcome"] == "passed" for c in found.values())


def test_vocab_parallel_benchmark_writes_one_entry_per_rank(tmp_path):
    """The benchmark's entries follow the shared contract: input, world, rank, baseline_path,
    logits_bytes of the whole N x K logits, a ratio to the builtin from paired rounds."""
    from lsuite.benchmarking import bench_parallel

    args = [sys.executable, "-m", "pytest", str(ROOT / "suites" / "test_benchmarks.py"),
            f"--rootdir={ROOT}", "-c", str(ROOT / "pyproject.toml"), "-p", "no:cacheprovider", "-q",
            f"--ls-report-dir={tmp_path}", "--benchmark-only", "-k", "vocab_parallel and forward-2-cpu",
            "--ls-impl", f"{EXAMPLE}:VOCAB_PARALLEL_CE"]
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=BOUND_S)
    assert proc.returncode == 0, proc.stdout[-3000:]
    entries = json.loads((tmp_path / "results.json").read_text())["benchmarks"]
    (n, k, dtype), = bench_parallel.SIZES["quick"]
    assert [(e["world"], e["rank"]) for e in entries] == [(2, 0), (2, 1)]
    for e in entries:
        assert (e["input"], e["kind"], e["impl"], e["pass"]) == \
            ("vocab_parallel", "impl", "example_vocab_parallel_ce", "forward")
        assert e["baseline_path"] == bench_parallel.BASELINE_PATH
        assert (e["n"], e["k"], e["dtype"], e["logits_bytes"]) == (n, k, dtype, n * k * 4)
        assert e["median_s"] > 0 and e["rounds"] >= 8 and e["ratio_to_builtin"] > 0
        assert 0 < e["peak_bytes"] and e["peak_over_logits"] == e["peak_bytes"] / e["logits_bytes"]
