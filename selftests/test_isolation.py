"""The judged cannot touch the judge: every hostile implementation (selftests/impls/hostile*.py)
costs at most its own checks. Two correct drop-ins run beside them; their verdicts must be
identical to a run without the hostile ones, every hostile check must fail with what
happened, the files must be written and truthful, and the run must end in bounded time.
Real `pytest suites/` runs in subprocesses, as a user runs them."""

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from selftests import sweep

ROOT = Path(__file__).resolve().parents[1]
IMPLS = ROOT / "selftests" / "impls"
CORRECT = [f"{ROOT / 'examples' / 'my_label_smoothing.py'}:LabelSmoothedCE",
           f"{IMPLS / 'dropins.py'}:TargetDistributionCE"]
HOSTILE = {  # drop-in -> words its failed checks' messages must contain
    "HangsInC": "Timeout", "ExitsTheProcess": "exited with status 3",
    "Segfaults": "SIGSEGV", "KilledLikeOOM": "SIGKILL",
    "RaisesKeyboardInterrupt": "raised KeyboardInterrupt", "RaisesSystemExit": "raised SystemExit",
}
# A reference check and two Hypothesis invariants (one of them a shift: the invariants
# compare an implementation with itself, where a poisoned judge would not show).
SELECTION = "every_dtype_and_reduction or shifting_a_rows or forward_under_no_grad"
# --ls-timeout for these runs: HangsInC's record cuts it to 3 s for its own checks; a correct
# check under load never reaches it (a 3 s limit for all once failed a correct drop-in).
LIMIT_S = 60
BOUND_S = 180  # the whole hostile run must end within this


def suite(out: Path, *specs, extra=(), timeout=BOUND_S, env=None):
    args = [sys.executable, "-m", "pytest", str(ROOT / "suites"), f"--rootdir={ROOT}", "-c",
            str(ROOT / "pyproject.toml"), "-p", "no:cacheprovider", "-q", f"--ls-report-dir={out}",
            "--hypothesis-profile=ci", f"--ls-timeout={LIMIT_S}", "-k", SELECTION, *extra]
    for spec in specs:
        args += ["--ls-impl", spec]
    started = time.monotonic()
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})
    return proc, time.monotonic() - started


def verdicts(payload, impl):
    return {c["nodeid"].replace(impl, "IMPL"): c["outcome"] for c in payload["checks"]
            if c["impl"] == impl}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    clean_dir, hostile_dir = tmp_path_factory.mktemp("clean"), tmp_path_factory.mktemp("hostile")
    clean, _ = suite(clean_dir, *CORRECT)
    specs = CORRECT + [f"{IMPLS / 'hostile.py'}:{name}" for name in HOSTILE]
    specs += [f"{IMPLS / 'hostile.py'}:PoisonsGlobalState", f"{IMPLS / 'hostile_import.py'}:TwiceWrong"]
    hostile, seconds = suite(hostile_dir, *specs, env={"LS_FORGE_DIR": str(hostile_dir)})
    return (clean, clean_dir), (hostile, hostile_dir, seconds)


def test_correct_drop_ins_get_the_same_verdicts_beside_hostile_ones(runs):
    (clean, clean_dir), (hostile, hostile_dir, _) = runs
    assert clean.returncode == 0, clean.stdout[-3000:]
    before = json.loads((clean_dir / "results.json").read_text())
    after = json.loads((hostile_dir / "results.json").read_text())
    for spec in CORRECT:
        name = spec.rpartition(":")[2]
        assert verdicts(after, name) == verdicts(before, name), name
        assert set(verdicts(after, name).values()) <= {"passed", "skipped"}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_each_hostile_implementation_fails_its_own_checks_with_what_happened(runs, name):
    _, (hostile, hostile_dir, _) = runs
    payload = json.loads((hostile_dir / "results.json").read_text())
    checks = [c for c in payload["checks"] if c["impl"] == name and c["outcome"] != "skipped"]
    assert checks and all(c["outcome"] == "failed" for c in checks), [c["outcome"] for c in checks]
    assert any(HOSTILE[name] in c["message"] for c in checks), checks[0]["message"][:500]


def test_global_state_poisoning_stays_in_its_process(runs):
    """It computes correctly, so it passes; and it could not change the judge's yardstick."""
    _, (hostile, hostile_dir, _) = runs
    payload = json.loads((hostile_dir / "results.json").read_text())
    outcomes = {c["outcome"] for c in payload["checks"] if c["impl"] == "PoisonsGlobalState"}
    assert outcomes <= {"passed", "skipped"} and "passed" in outcomes


def test_an_import_that_patches_the_judge_changes_nothing_and_forges_nothing(runs):
    _, (hostile, hostile_dir, _) = runs
    payload = json.loads((hostile_dir / "results.json").read_text())
    twice = [c for c in payload["checks"] if c["impl"] == "TwiceWrong" and c["kind"] == "reference"
             and c["outcome"] != "skipped"]  # invariants compare it with itself: 2x is consistent
    assert twice and all(c["outcome"] == "failed" for c in twice)
    assert hostile.returncode == 1
    assert "all passed" not in (hostile_dir / "report.html").read_text()


def test_the_hostile_run_ends_in_bounded_time_and_writes_both_files(runs):
    _, (hostile, hostile_dir, seconds) = runs
    assert seconds < BOUND_S
    payload = json.loads((hostile_dir / "results.json").read_text())
    assert payload["complete"] is True and (hostile_dir / "report.html").stat().st_size > 0
    assert "INTERNALERROR" not in hostile.stdout + hostile.stderr
    # the hang was caught at its record's own limit (3 s), not at the run's 60 s
    (hung,) = [c for c in payload["checks"] if c["impl"] == "HangsInC" and "Timeout" in c["message"]]
    assert float(re.search(r"no answer within ([\d.]+) s", hung["message"]).group(1)) <= 3, hung["message"]


def test_a_module_that_exits_on_import_is_one_usage_error_line(tmp_path):
    proc, _ = suite(tmp_path, f"{IMPLS / 'hostile_exit.py'}:Loss", timeout=120)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("ERROR:")]
    assert proc.returncode == pytest.ExitCode.USAGE_ERROR, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert len(errors) == 1 and "SystemExit" in errors[0] and "hostile_exit.py" in errors[0], \
        proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr


def test_the_implementation_budget_stops_its_run_with_the_reason(tmp_path):
    proc, _ = suite(tmp_path, f"{IMPLS / 'hostile.py'}:SlowButCorrect",
                    extra=("--ls-impl-budget=2",), timeout=120)
    payload = json.loads((tmp_path / "results.json").read_text())
    ran = [c for c in payload["checks"] if c["outcome"] in ("passed", "failed")]
    cut = [c for c in ran if "budget of 2 s (--ls-impl-budget) is used up" in c["message"]]
    assert not any("Timeout" in c["message"] for c in ran), "a spent budget is not a hang"
    assert proc.returncode == 1 and cut and any(c["outcome"] == "passed" for c in ran)


def _interactive() -> None:
    """SIGINT as a terminal leaves it: a run started in the background (nohup, `cmd &` in a
    script) inherits SIGINT ignored, and its Ctrl-C would prove nothing."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _interrupted_run(out: Path, delay: float, marker: str) -> tuple[int, str]:
    """A run of one correct drop-in, SIGINT `delay` seconds after collection ended. Its
    processes (the run, its fork server, workers) carry `marker` in their environment."""
    args = [sys.executable, "-m", "pytest", str(ROOT / "suites" / "test_conformance.py"),
            str(ROOT / "suites" / "test_invariants.py"), f"--rootdir={ROOT}", "-c", str(ROOT / "pyproject.toml"), "-p", "no:cacheprovider",
            f"--ls-report-dir={out}", "--ls-impl", CORRECT[1]]
    key, _, value = marker.partition("=")
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, preexec_fn=_interactive, env={**os.environ, key: value})
    seen = []
    for line in proc.stdout:  # the session has started once pytest says what it collected
        seen.append(line)
        if line.startswith("collected"):
            break
    time.sleep(delay)
    proc.send_signal(signal.SIGINT)
    try:
        rest, _ = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail(f"one Ctrl-C did not stop the run within 30 s (delay {delay:.2f} s)")
    return proc.returncode, "".join(seen) + rest


def test_ctrl_c_at_random_moments_stops_the_run_and_keeps_what_was_measured(tmp_path):
    """Real SIGINTs at random moments of a session (20 with LS_SELFTEST_SWEEP=1, else the
    first 8 of the same 20): each stops it promptly with pytest's interrupted status, kills
    the workers, and leaves results.json marked incomplete beside a report holding what was
    measured, also when the KeyboardInterrupt lands where Python swallows it (a
    garbage-collector callback). (A Ctrl-C while Python is still importing pytest's
    plugins, before the session, ends the interpreter the usual way: nothing was measured.)"""
    rng = random.Random(20)
    marker = f"LS_SELFTEST_CTRL_C={os.getpid()}-{time.monotonic_ns()}"
    trials = 20 if sweep.SWEEP else 8
    interrupted = 0
    for trial in range(trials):
        out = tmp_path / f"t{trial}"
        code, output = _interrupted_run(out, rng.uniform(0.0, 4.0), marker)
        assert "INTERNALERROR" not in output, output[-2000:]
        if code in (0, -signal.SIGINT) and " passed" in output.splitlines()[-1]:
            # the run ended before the signal landed (at exit, Python's default handler)
            assert json.loads((out / "results.json").read_text())["complete"] is True
            continue
        if code != pytest.ExitCode.INTERRUPTED:
            out.mkdir(parents=True, exist_ok=True)
            (out / "pytest.log").write_text(output)  # whole: an assertion message is cut short
            pytest.fail(f"trial {trial}: exit {code}, not pytest's interrupted status; its output: "
                        f"{out / 'pytest.log'}\n{output[-3000:]}", pytrace=False)
        payload = json.loads((out / "results.json").read_text())
        assert payload["complete"] is False, trial
        assert "Incomplete run" in (out / "report.html").read_text()
        interrupted += 1
    assert interrupted >= trials // 2, \
        f"only {interrupted} of {trials} runs were still going when their Ctrl-C came"
    deadline = time.monotonic() + 10  # a fork server exits once its last client has gone
    while _started_by(marker) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not _started_by(marker), f"processes of the runs left running: {_started_by(marker)}"


def _started_by(marker: str) -> list[str]:
    """The live processes whose environment holds `marker` (what the runs started)."""
    pids = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if marker.encode() in environ.read_bytes().split(b"\0"):
                pids.append(environ.parent.name)
        except OSError:  # gone meanwhile, or not ours to read
            continue
    return pids


LINELESS = """
import sys, types

def test_interrupted_where_python_has_no_line_number():
    # what a Ctrl-C landing on an instruction without a line number (the cleanup of an
    # exception handler) leaves in the traceback: an entry whose tb_lineno is None
    raise KeyboardInterrupt().with_traceback(types.TracebackType(None, sys._getframe(), 10**6, -1))
"""


def test_a_ctrl_c_where_python_has_no_line_number_is_still_an_interrupted_run(pytester, monkeypatch):
    """pytest's report of such a KeyboardInterrupt fails (a TypeError, exit status 1); the
    plugin unlinks the entry first (lsuite/pytest_plugin/outputs.py)."""
    pytester.makepyfile(test_lineless=LINELESS)
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    result = pytester.runpytest_subprocess("-p", "lsuite.pytest_plugin.plugin", "-p", "no:cacheprovider")
    text = result.stdout.str() + result.stderr.str()
    assert result.ret == pytest.ExitCode.INTERRUPTED, text[-3000:]
    assert "TypeError" not in text and "KeyboardInterrupt" in result.stdout.str(), text[-3000:]
