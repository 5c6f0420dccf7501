"""Every reader of results.json answers hostile input with a report or one line.

`python -m reports build|compare|merge` (run in-process through reports.__main__.main,
plus a few real subprocesses) must either write the report and exit 0, or exit 2 with
exactly one line on stderr and no file left behind; `reports.load_results` (what
--ls-baseline calls) must return a validated dict or raise a one-line ResultsError.
Inputs: arbitrary JSON values (Hypothesis `recursive`), and a real results.json
(selftests/data/real_run_small.json: 16 checks and the environment of a
`pytest suites/ -k every_dtype` run, with the 2 benchmarks and the gate record of a
benchmark run) with any field anywhere replaced by a drawn JSON value; plus the
hand-made hostile files (long integers, deep nesting, non-UTF-8, directories, ...).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lsresults
import reports
from lsresults import benchdiff, limits
from reports import ResultsError
from reports.__main__ import main

ROOT = Path(__file__).resolve().parents[1]
REAL = Path(__file__).resolve().parent / "data" / "real_run_small.json"
REAL_PAYLOAD = json.loads(REAL.read_text())
EXAMPLES = settings(max_examples=40, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

# field names the renderer reads, so drawn objects often look like (broken) real records
NAMES = ["impl", "check", "kind", "nodeid", "outcome", "params", "metrics", "message", "repro", "K", "N",
         "dtype", "device", "reduction", "eps", "layout", "ignore", "weight", "targets", "value_max_abs_err",
         "grad_max_abs_err", "value_budget", "baseline_value_abs_err", "name", "supports", "reductions",
         "known_defects", "checks", "kinds", "when", "reason", "example_target", "q", "target", "pad_index",
         "cuda", "available", "devices", "memory_bytes", "findings", "ratio_threshold", "n", "k", "pass",
         "median_s", "peak_over_logits", "ratio_to_builtin", "peak_bytes", "passed", "failed", "skipped",
         "xfailed", "error", "float32", "cpu", "suite_commit", "started"]
COMMON = (st.none() | st.booleans() | st.integers(min_value=-3, max_value=70000)
          | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=20) | st.sampled_from(NAMES))
EXTREME = (st.integers(min_value=-10 ** 400, max_value=10 ** 400) | st.integers(-2 ** 70, 2 ** 70)
           | st.sampled_from([10 ** limits.MAX_INT_DIGITS - 1, 10 ** limits.MAX_INT_DIGITS, 10 ** 308, 10 ** 309])
           | st.builds(lambda n: "x" * n, st.sampled_from([limits.MAX_STRING_CHARS, limits.MAX_STRING_CHARS + 1]))
           | st.floats(min_value=1e300) | st.floats(max_value=1e-300, min_value=0))
SCALARS = st.sampled_from([COMMON] * 6 + [EXTREME]).flatmap(lambda strategy: strategy)  # 1 in 7 extreme
JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.sampled_from(NAMES) | st.text(max_size=6), inner, max_size=5),
                    max_leaves=12)


def paths_of(value, prefix=()):
    """Every path (tuple of keys/indices) to a value inside `value`, the root included."""
    yield prefix
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in items:
        yield from paths_of(child, prefix + (key,))


REAL_PATHS = list(paths_of(REAL_PAYLOAD))


@st.composite
def mutated_real(draw) -> dict:
    """The real results with 1 to 3 values anywhere replaced by drawn JSON values."""
    doc = json.loads(json.dumps(REAL_PAYLOAD))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(REAL_PATHS))
        value = draw(JSON)
        if not path:
            return value
        holder = doc
        try:
            for key in path[:-1]:
                holder = holder[key]
            holder[path[-1]] = value
        except (KeyError, IndexError, TypeError):  # an earlier replacement removed the path
            continue
    return doc


def dump(value, path: Path) -> Path:
    path.write_text(json.dumps(value, allow_nan=True), encoding="utf-8")
    return path


def run(capsys, argv: list) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def assert_report_or_one_line(rc: int, out: str, err: str, written: list[Path], folder: Path) -> None:
    if rc == 0:
        assert err == "" and all(p.is_file() and p.stat().st_size > 0 for p in written), err
    else:
        assert rc == 2, (rc, err)
        assert len(err.splitlines()) == 1 and err.startswith("python -m reports: error: "), err
        assert "internal error" not in err and "Traceback" not in err, err
        assert not any(p.exists() for p in written), "a refused input must leave no report"
    assert not [p.name for p in folder.iterdir() if p.name.endswith(".tmp")], "temporary file left behind"


@pytest.fixture
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("readers")


def _clean(folder: Path) -> None:
    for p in folder.iterdir():
        if p.is_file():
            p.unlink()


# ------------------------------------------------------------------ properties


@EXAMPLES
@given(doc=st.one_of(JSON, mutated_real()))
def test_build_writes_a_report_or_exits_2_with_one_line(capsys, work, doc):
    _clean(work)
    src, out = dump(doc, work / "results.json"), work / "report.html"
    assert_report_or_one_line(*run(capsys, ["build", src, "-o", out]), [out], work)


@EXAMPLES
@given(doc=mutated_real(), position=st.sampled_from(["baseline", "results"]))
def test_compare_in_either_position_writes_a_report_or_exits_2(capsys, work, doc, position):
    _clean(work)
    bad = dump(doc, work / "bad.json")
    args = [bad, REAL] if position == "baseline" else [REAL, bad]
    out = work / "compare.html"
    assert_report_or_one_line(*run(capsys, ["compare", *args, "-o", out]), [out], work)


@settings(EXAMPLES, max_examples=25)
@given(doc=mutated_real())
def test_merge_with_a_damaged_input_writes_both_files_or_exits_2(capsys, work, doc):
    _clean(work)
    bad = dump(doc, work / "bad.json")
    out = work / "merged"
    rc, out_text, err = run(capsys, ["merge", REAL, bad, "-o", out, "--force"])
    assert_report_or_one_line(rc, out_text, err, [out / "results.json", out / "report.html"], work)
    if rc == 0:
        assert run(capsys, ["verify", out])[0] == 0
        for p in out.iterdir():
            p.unlink()


@settings(EXAMPLES, max_examples=150)
@given(doc=st.one_of(JSON, mutated_real()))
def test_load_results_returns_a_validated_dict_or_raises_one_line(work, doc):
    """What --ls-baseline and the benchmark gate read: a ResultsError or a dict the gate's
    benchmark matching (lsresults.benchdiff) takes without an exception."""
    src = dump(doc, work / "results.json")
    try:
        loaded = reports.load_results(src)
    except ResultsError as exc:
        assert "\n" not in str(exc) and str(src) in str(exc)
        return
    assert isinstance(loaded, dict) and loaded["schema"] in lsresults.load.READS
    benchdiff.diff(loaded.get("benchmarks") or [], REAL_PAYLOAD["benchmarks"], benchdiff.thresholds_of(loaded))


# ------------------------------------------------------------------ every field, every type

# fields whose JSON type lsresults.load checks (a wrong one is refused with one line)
CORE = {("schema",), ("complete",), ("environment",), ("checks",), ("benchmarks",), ("benchmark_gate",),
        ("checks", "*"), ("environment", "impls"), ("environment", "impls", "*"), ("benchmarks", "*")}
CORE |= {("checks", "*", key) for key in ("impl", "check", "kind", "nodeid", "outcome")}
WRONG = [None, True, -1, 10 ** 19, 1e308, -math.inf, math.nan, "", "<b>x</b>", [], [None], [1, "a", {}], {},
         {"a": [1]}]


def pattern(path: tuple) -> tuple:
    return tuple("*" if isinstance(key, int) else key for key in path)


def layer(doc: dict, depth: int, value) -> dict:
    """doc with every non-core value at this depth replaced by `value`."""
    doc = json.loads(json.dumps(doc))
    for path in [p for p in paths_of(doc) if len(p) == depth and pattern(p) not in CORE]:
        holder = doc
        for key in path[:-1]:
            holder = holder[key]
        holder[path[-1]] = json.loads(json.dumps(value, allow_nan=True))
    return doc


DEPTHS = range(1, 1 + max(len(p) for p in REAL_PATHS))


@pytest.fixture
def no_charts(monkeypatch):
    """The charts' inputs are numbers the properties above draw; here they only cost time."""
    from reports import charts

    monkeypatch.setattr(charts, "available", lambda: False)


@pytest.mark.parametrize("depth", DEPTHS)
def test_any_type_in_any_non_core_field_still_renders(no_charts, depth):
    """Every field the loader does not type-check, at every depth, holding each JSON type
    in turn: the report renders, as results, as baseline, and both."""
    for value in WRONG:
        doc = layer(REAL_PAYLOAD, depth, value)
        reports.validate(doc)
        reports.render_html(doc)
        reports.render_html(REAL_PAYLOAD, baseline=doc)
        reports.render_html(doc, baseline=doc)


@pytest.mark.parametrize("field", sorted(CORE))
def test_a_wrong_type_in_a_core_field_is_one_line(field):
    for value in WRONG:
        doc = json.loads(json.dumps(REAL_PAYLOAD))
        matches = [p for p in paths_of(doc) if pattern(p) == field]
        for path in matches[:1]:
            holder = doc
            for key in path[:-1]:
                holder = holder[key]
            holder[path[-1]] = value
        try:
            reports.validate(doc)
        except ResultsError as exc:
            assert "\n" not in str(exc)
            continue
        reports.render_html(doc)  # null, or a type the field accepts


@settings(EXAMPLES, max_examples=15)
@given(data=st.data())
def test_extreme_numbers_in_the_charted_fields_render(data):
    """K, errors, budgets, times, memory and thresholds: NaN, infinities, 1e308, 5e-324,
    negative and 19-digit integers, in results and baseline (the charts drawn)."""
    number = (st.floats(allow_nan=True, allow_infinity=True) | st.integers(-10 ** 19, 10 ** 19)
              | st.sampled_from([0, 1, 2, 1e308, 5e-324, -0.0]))
    docs = []
    for _ in range(2):
        doc = json.loads(json.dumps(REAL_PAYLOAD))
        for check in doc["checks"]:
            check["params"]["K"] = data.draw(number)
            check["outcome"] = data.draw(st.sampled_from(["passed", "failed", "xfailed", "divergence"]))
            check["metrics"] = {key: data.draw(number) for key in ("value_max_abs_err", "grad_max_abs_err",
                                                                   "value_budget", "baseline_value_abs_err")}
        for entry in doc["benchmarks"]:
            for key in ("k", "n", "median_s", "peak_over_logits", "ratio_to_builtin", "peak_bytes", "rounds"):
                entry[key] = data.draw(number)
        doc["benchmark_gate"].update(ratio_threshold=data.draw(number), memory_threshold=data.draw(number))
        docs.append(doc)
    reports.render_html(docs[0], baseline=docs[1])


# ------------------------------------------------------------------ hostile files

HOSTILE = {
    "int_400_digits": '{"schema": 1, "checks": [{"metrics": {"value_max_abs_err": 1' + "0" * 400 + '}}]}',
    "int_5000_digits": '{"schema": 1, "environment": {"seed": ' + "9" * 5000 + "}}",
    "deep_nesting": '{"schema": 1, "environment": {"x": ' + "[" * 100_000 + "]" * 100_000 + "}}",
    "nesting_past_the_limit": '{"schema": 1, "environment": {"x": ' + "[" * 40 + "]" * 40 + "}}",
    "lone_surrogate": '{"schema": 1, "checks": [{"impl": "a\\udc80", "outcome": "passed"}]}',
    "huge_string": '{"schema": 1, "environment": {"command": "' + "x" * (limits.MAX_STRING_CHARS + 1) + '"}}',
    "nan_schema": '{"schema": NaN}',
    "infinity_complete": '{"schema": 1, "complete": Infinity}',
    "array_top_level": "[1, 2]",
    "empty": "",
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
@pytest.mark.parametrize("command", ["build", "compare-baseline", "compare-results", "load"])
def test_hostile_files_get_one_line(capsys, tmp_path, name, command):
    bad = tmp_path / f"{name}.json"
    bad.write_text(HOSTILE[name], encoding="utf-8")
    if command == "load":
        with pytest.raises(ResultsError) as info:
            reports.load_results(bad)
        assert "\n" not in str(info.value) and name in str(info.value)
        return
    out = tmp_path / "out.html"
    args = {"build": ["build", bad], "compare-baseline": ["compare", bad, REAL],
            "compare-results": ["compare", REAL, bad]}[command]
    rc, text, err = run(capsys, [*args, "-o", out])
    assert rc == 2 and len(err.splitlines()) == 1 and "internal error" not in err, err
    assert not out.exists()


def test_nan_and_infinity_where_numbers_belong_render(capsys, tmp_path):
    doc = json.loads(json.dumps(REAL_PAYLOAD))
    doc["checks"][0]["metrics"]["value_max_abs_err"] = math.nan
    doc["checks"][0]["params"]["K"] = math.inf
    doc["benchmarks"][0]["ratio_to_builtin"] = -math.inf
    src, out = dump(doc, tmp_path / "results.json"), tmp_path / "report.html"
    rc, _, err = run(capsys, ["build", src, "-o", out])
    assert rc == 0, err
    assert "NaN" in out.read_text()


def test_limits_are_as_documented_and_a_legitimate_file_is_inside_them():
    readme = (ROOT / "docs" / "results-schema.md").read_text()
    for number in (f"{limits.MAX_FILE_BYTES // 2**20} MiB", f"{limits.MAX_DEPTH} levels",
                   f"{limits.MAX_INT_DIGITS} digits", f"{limits.MAX_STRING_CHARS:,} characters"):
        assert number in readme, f"docs/results-schema.md does not state the limit {number!r}"
    limits.check(REAL_PAYLOAD)


@pytest.mark.parametrize("what", ["non_utf8", "directory", "oversized", "fifo"])
def test_unreadable_inputs_are_one_line(capsys, tmp_path, what):
    bad = tmp_path / "results.json"
    if what == "non_utf8":
        bad.write_bytes(b'{"schema": 1, "environment": {"cpu": "\xff\xfe"}}')
    elif what == "directory":
        bad.mkdir()
    elif what == "oversized":
        with bad.open("wb") as handle:  # sparse: costs no disk
            handle.truncate(limits.MAX_FILE_BYTES + 1)
    else:
        os.mkfifo(bad)  # reading it would block forever
    with pytest.raises(ResultsError) as info:
        reports.load_results(bad)
    assert "\n" not in str(info.value)
    rc, _, err = run(capsys, ["build", bad, "-o", tmp_path / "out.html"])
    assert rc == 2 and len(err.splitlines()) == 1, err


# ------------------------------------------------------------------ unwritable outputs


def test_a_directory_in_the_reports_place_is_exit_2_and_leaves_no_temporary(capsys, tmp_path):
    (tmp_path / "report.html").mkdir()
    rc, _, err = run(capsys, ["build", REAL, "-o", tmp_path / "report.html"])
    assert rc == 2 and len(err.splitlines()) == 1 and "report.html" in err, err
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]


def test_an_unwritable_folder_is_exit_2_and_leaves_no_temporary(capsys, tmp_path, monkeypatch):
    folder = tmp_path / "ro"
    folder.mkdir()
    if os.geteuid() != 0:  # root writes anywhere: then the refusal is simulated below
        folder.chmod(0o500)
    else:
        real_open = os.open

        def refuse(path, *args, **kwargs):
            if str(path).startswith(str(folder)):
                raise PermissionError(13, "Permission denied", str(path))
            return real_open(path, *args, **kwargs)

        monkeypatch.setattr(os, "open", refuse)
    try:
        rc, _, err = run(capsys, ["build", REAL, "-o", folder / "report.html"])
    finally:
        folder.chmod(0o700)
    assert rc == 2 and len(err.splitlines()) == 1 and "Permission denied" in err, err
    assert list(folder.iterdir()) == []


def test_a_file_where_the_folder_should_be_is_exit_2(capsys, tmp_path):
    (tmp_path / "file").write_text("x")
    rc, _, err = run(capsys, ["build", REAL, "-o", tmp_path / "file" / "report.html"])
    assert rc == 2 and len(err.splitlines()) == 1, err


# ------------------------------------------------------------------ real processes


def cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "reports", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("name", ["int_5000_digits", "deep_nesting"])
def test_subprocess_exits_2_with_one_line_on_hostile_files(tmp_path, name):
    bad = tmp_path / "results.json"
    bad.write_text(HOSTILE[name])
    proc = cli("build", bad, "-o", tmp_path / "out.html")
    assert proc.returncode == 2 and len(proc.stderr.splitlines()) == 1, proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "out.html").exists()


def test_subprocess_usage_error_is_one_line():
    proc = cli("build")
    assert proc.returncode == 2 and len(proc.stderr.splitlines()) == 1, proc.stderr


# ------------------------------------------------------------------ merge


def shard(tmp_path: Path, name: str, checks: list[dict], **env) -> Path:
    doc = json.loads(json.dumps(REAL_PAYLOAD))
    doc["checks"] = checks
    doc["environment"].update(env)
    folder = tmp_path / name
    folder.mkdir()
    return dump(doc, folder / "results.json")


def test_merge_of_one_commit_keeps_every_check_and_writes_a_verified_report(capsys, tmp_path):
    checks = REAL_PAYLOAD["checks"]
    a = shard(tmp_path, "cpu", checks[:10], cuda={"available": False, "reason": "no GPU"}, workers=2)
    b = shard(tmp_path, "gpu", checks[10:], cuda={"available": True}, workers=1)
    rc, out, err = run(capsys, ["merge", a, b, "-o", tmp_path / "merged"])
    assert rc == 0, err
    merged = reports.load_results(tmp_path / "merged" / "results.json")
    assert [c["nodeid"] for c in merged["checks"]] == [c["nodeid"] for c in checks]
    assert merged["complete"] is True and merged["environment"]["merge"]["forced"] is False
    sources = merged["environment"]["merged_from"]
    assert [(s["path"], s["cuda_available"], s["workers"], s["checks"]) for s in sources] == [
        (str(a), False, 2, 10), (str(b), True, 1, len(checks) - 10)]
    assert merged["environment"]["suite_commit"] == REAL_PAYLOAD["environment"]["suite_commit"]
    assert len(merged["benchmarks"]) == len(REAL_PAYLOAD["benchmarks"])  # same keys: later kept
    assert merged["environment"]["merge"]["replaced_benchmarks"] == len(REAL_PAYLOAD["benchmarks"])
    assert run(capsys, ["verify", tmp_path / "merged"])[0] == 0


def test_merge_refuses_different_commits_unless_forced(capsys, tmp_path):
    a = shard(tmp_path, "a", REAL_PAYLOAD["checks"], suite_commit="aaaa")
    b = shard(tmp_path, "b", REAL_PAYLOAD["checks"], suite_commit="bbbb")
    rc, _, err = run(capsys, ["merge", a, b, "-o", tmp_path / "m"])
    assert rc == 2 and len(err.splitlines()) == 1 and "suite_commit" in err and "--force" in err, err
    assert not (tmp_path / "m").exists()
    rc, out, err = run(capsys, ["merge", a, b, "-o", tmp_path / "m", "--force"])
    assert rc == 0, err
    info = reports.load_results(tmp_path / "m" / "results.json")["environment"]["merge"]
    assert info["forced"] is True
    assert info["differences"] == [{"field": "environment.suite_commit", "values": ["aaaa", "bbbb"]}]
    assert "forced" in out


def test_merge_keeps_the_worst_outcome_of_an_overlapping_nodeid_and_says_so(capsys, tmp_path):
    base = dict(REAL_PAYLOAD["checks"][0], outcome="passed", message="")
    outcomes = {"a": "skipped", "b": "failed", "c": "passed"}
    paths = [shard(tmp_path, name, [dict(base, outcome=o, message=f"from {name}")], complete=True)
             for name, o in outcomes.items()]
    rc, out, err = run(capsys, ["merge", *paths, "-o", tmp_path / "m"])
    assert rc == 0, err
    assert "1 check was in several inputs" in out
    merged = reports.load_results(tmp_path / "m" / "results.json")
    (check,) = merged["checks"]
    assert (check["outcome"], check["message"]) == ("failed", "from b")
    assert check["merged_outcomes"] == [{"input": i, "outcome": o} for i, o in enumerate(outcomes.values())]
    assert merged["verdicts"][check["impl"]] == "fails"
    assert merged["environment"]["merge"]["overlapping_checks"] == 1


def test_merge_is_incomplete_when_one_input_is(capsys, tmp_path):
    a = shard(tmp_path, "a", REAL_PAYLOAD["checks"][:3])
    doc = json.loads(a.read_text())
    doc["complete"] = False
    b = dump(doc, tmp_path / "b.json")
    assert run(capsys, ["merge", a, b, "-o", tmp_path / "m"])[0] == 0
    assert reports.load_results(tmp_path / "m" / "results.json")["complete"] is False


def test_merge_rules_match_the_readme():
    from reports.merge import WORST_LAST

    assert " < ".join(WORST_LAST) in " ".join((ROOT / "docs" / "report.md").read_text().split())


# ------------------------------------------------------------------ verify


def test_verify_accepts_a_fresh_report_and_rejects_a_rewritten_results_file(capsys, tmp_path):
    from lsresults.files import write_results

    digest = write_results(REAL_PAYLOAD, tmp_path / "results.json")
    reports.write_report(REAL_PAYLOAD, tmp_path / "report.html", results_sha256=digest)
    html = (tmp_path / "report.html").read_text()
    assert f'<meta name="ls-results-sha256" content="{digest}">' in html
    rc, out, err = run(capsys, ["verify", tmp_path])
    assert rc == 0 and digest in out, err
    assert run(capsys, ["verify", tmp_path / "results.json", tmp_path / "report.html"])[0] == 0
    tampered = (tmp_path / "results.json").read_text().replace('"passed"', '"failed"', 1)
    (tmp_path / "results.json").write_text(tampered)
    rc, _, err = run(capsys, ["verify", tmp_path])
    assert rc == 2 and len(err.splitlines()) == 1 and "changed after the report" in err, err


def test_build_records_the_digest_of_the_file_it_read(capsys, tmp_path):
    import hashlib

    rc, _, err = run(capsys, ["build", REAL, "-o", tmp_path / "report.html"])
    assert rc == 0, err
    assert hashlib.sha256(REAL.read_bytes()).hexdigest() in (tmp_path / "report.html").read_text()
    assert run(capsys, ["verify", REAL, tmp_path / "report.html"])[0] == 0


@pytest.mark.parametrize("case", ["no_digest", "missing_report", "not_a_dir", "results_is_dir"])
def test_verify_failures_are_one_line(capsys, tmp_path, case):
    reports.write_report(REAL_PAYLOAD, tmp_path / "report.html")  # no digest recorded
    (tmp_path / "results.json").write_bytes(REAL.read_bytes())
    args = {"no_digest": [tmp_path], "missing_report": [REAL, tmp_path / "nope.html"],
            "not_a_dir": [REAL], "results_is_dir": [tmp_path, tmp_path / "report.html"]}[case]
    rc, _, err = run(capsys, ["verify", *args])
    assert rc == 2 and len(err.splitlines()) == 1 and "internal error" not in err, err


def test_write_results_returns_the_sha256_of_the_bytes_written(tmp_path):
    import hashlib

    from lsresults.files import write_results

    digest = write_results({**REAL_PAYLOAD, "x": math.nan}, tmp_path / "r.json")
    assert digest == hashlib.sha256((tmp_path / "r.json").read_bytes()).hexdigest()
    assert "NaN" in (tmp_path / "r.json").read_text()


def test_merge_of_schema_1_runs_writes_schema_2_with_each_checks_input_and_gradients(capsys, tmp_path):
    """A schema-1 file (the logits records' real run, and one of the fused-linear and
    vocab-parallel examples) merges into schema 2: every check gains input, world and
    the gradients derived from its metrics."""
    kinds = json.loads((REAL.parent / "schema1_new_kinds.json").read_text())
    assert REAL_PAYLOAD["schema"] == kinds["schema"] == 1
    a = shard(tmp_path, "a", REAL_PAYLOAD["checks"])
    b = shard(tmp_path, "b", kinds["checks"], impls=kinds["environment"]["impls"])
    rc, _, err = run(capsys, ["merge", a, b, "-o", tmp_path / "merged"])
    assert rc == 0, err
    merged = reports.load_results(tmp_path / "merged" / "results.json")
    assert merged["schema"] == reports.SCHEMA == 2
    by_input = {}
    for check in merged["checks"]:
        by_input.setdefault(check["input"], []).append(check)
    assert set(by_input) == {"logits", "hidden_states", "vocab_parallel"}
    measured = [c for c in by_input["hidden_states"] if c["outcome"] == "passed" and c["gradients"]]
    assert measured and all({"hidden", "classifier"} <= set(c["gradients"]) for c in measured)
    assert all(c["world"] in (1, 2, 4) for c in by_input["vocab_parallel"])
    assert any("worst_rank" in c["gradients"] for c in by_input["vocab_parallel"])
    assert any("logits" in c["gradients"] for c in by_input["logits"])
