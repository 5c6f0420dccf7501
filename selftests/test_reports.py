"""The HTML report checked against the results it was rendered from.

Each test renders a results dict (built here, or a small file in selftests/data/), parses
the page with the stdlib html.parser into a small tree, and compares a section with the
numbers it must show: verdict counts, matrix cells, findings, escaping, self-containment,
the incomplete banner, regression lists, and the CLI's exit codes.
"""

from __future__ import annotations

import copy
import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

import reports
from reports import ResultsError, load_results, write_report

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "data"
SCRIPT = "<script>alert(1)</script>"
EVIL_IMPL = "<b>x</b>"

# ------------------------------------------------------------------ a tiny HTML tree

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"}


class Node:
    def __init__(self, tag: str, attrs: dict, parent: Node | None):
        self.tag, self.attrs, self.parent, self.children = tag, attrs, parent, []

    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def iter(self):
        for child in self.children:
            if isinstance(child, Node):
                yield child
                yield from child.iter()

    def find_all(self, tag: str | None = None, **attrs) -> list[Node]:
        attrs = {k.replace("_", "-"): v for k, v in attrs.items()}
        return [n for n in self.iter() if (tag is None or n.tag == tag)
                and all(n.attrs.get(k) == v for k, v in attrs.items())]

    def find(self, tag: str | None = None, **attrs) -> Node:
        found = self.find_all(tag, **attrs)
        assert found, f"no <{tag or '*'} {attrs}> in the page"
        return found[0]


class TreeBuilder(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.root = self.current = Node("#root", {}, None)

    def handle_starttag(self, tag, attrs):
        node = Node(tag, {k: v or "" for k, v in attrs}, self.current)
        self.current.children.append(node)
        if tag not in VOID:
            self.current = node

    def handle_startendtag(self, tag, attrs):
        self.current.children.append(Node(tag, {k: v or "" for k, v in attrs}, self.current))

    def handle_endtag(self, tag):
        node = self.current
        while node is not None and node.tag != tag:
            node = node.parent
        if node is not None and node.parent is not None:
            self.current = node.parent

    def handle_data(self, data):
        self.current.children.append(data)


def parse(html: str) -> Node:
    builder = TreeBuilder()
    builder.feed(html)
    builder.close()
    return builder.root


# ------------------------------------------------------------------ fixture results

SUPPORTS_ALL = {"ignore_index": True, "weights": True, "prob_targets": True, "nd": True, "unbatched": True,
                "dtypes": ["float64", "float32", "bfloat16"], "devices": ["cpu", "cuda"],
                "eps_min": 0.0, "eps_max": 1.0}
NO_CUDA = "Skipped: no CUDA device: torch.cuda.is_available() is False"
BF16_FAILURE = f"value mismatch at row 3: out=0.51, but should be 0.5 (budget 1e-2)\n{SCRIPT}"
DEFECT = "known defect: the target is built in float32, so float64 logits get rounded smoothing mass"


# what the run records as each implementation's worked example (K=5, eps=0.1, class 1)
EXAMPLE_Q = {"inclusive": [0.02, 0.92, 0.02, 0.02, 0.02], "exclusive": [0.025, 0.9, 0.025, 0.025, 0.025]}


def example_target(q, error=None):
    return {"K": 5, "eps": 0.1, "target": 1, "pad_index": 0, "q": q, "error": error}


def impl_record(name, convention="inclusive", form="ce", **supports):
    return {"name": name, "description": f"{name} under test", "origin": "builtin", "convention": convention,
            "form": form, "input": "logits", "pad_index": None, "reductions": ["none", "sum", "mean"],
            "supports": {**SUPPORTS_ALL, **supports}, "known_defects": [],
            "example_target": example_target(EXAMPLE_Q.get(convention))}


def check(impl, outcome, *, name="value_and_gradient", tag="", message="", metrics=None, **params):
    params = {"device": "cpu", "dtype": "float32", "reduction": "mean", "K": 11, "N": 16, "eps": 0.1,
              "layout": "2d", "ignore": "none", "weight": "none", "targets": "index", **params}
    nodeid = (f"suites/test_conformance.py::test_{name}[{impl}-{params['device']}-{params['dtype']}"
              f"-{params['reduction']}-K{params['K']}{tag}]")
    return {"impl": impl, "check": name, "nodeid": nodeid, "outcome": outcome, "params": params,
            "metrics": metrics, "message": message, "repro": f"python -m pytest '{nodeid}'", "duration_s": 0.01}


def errs(value, grad, base_value=None, base_grad=None, budget=1e-5):
    return {"value_max_abs_err": value, "value_max_rel_err": None, "grad_max_abs_err": grad,
            "grad_max_rel_err": None, "value_budget": budget, "grad_budget": budget,
            "baseline_value_abs_err": base_value, "baseline_grad_abs_err": base_grad}


def make_results() -> dict:
    """good_ce conforms; bad_kernel fails bf16 (3 identical messages) and errors once;
    kl_known has a declared known defect and no weight support; ghost is undeclared."""
    kl = impl_record("kl_known", form="kl", weights=False)
    kl["known_defects"] = [{"checks": ["value_and_gradient"], "when": "float64", "reason": DEFECT}]
    checks = []
    for impl in ("good_ce", "bad_kernel", "kl_known"):
        for k in (2, 11, 128, 1000):
            checks.append(check(impl, "passed", K=k, metrics=errs(1e-9 * k, 1e-10 * k, 1e-9 * k, 1e-10 * k)))
        checks.append(check(impl, "skipped", device="cuda", message=NO_CUDA))
        checks.append(check(impl, "passed", dtype="bfloat16", tag="-nd", layout="nd", metrics=errs(1e-3, 1e-3, 1e-3, 1e-3, budget=1e-2)))
    for i in range(3):
        checks.append(check("bad_kernel", "failed", dtype="bfloat16", tag=f"-seed{i}", message=BF16_FAILURE,
                            metrics=errs(1e-2, 4e-3, 1e-3, 1e-3, budget=1e-2)))
    checks.append(check("bad_kernel", "error", name="ignored_targets", ignore="negative", message="RuntimeError: boom"))
    checks.append(check("good_ce", "passed", name="class_weights", weight="random", metrics=errs(0.0, 0.0, 0.0, 0.0)))
    checks.append(check("kl_known", "skipped", name="class_weights", weight="random",
                        message="Skipped: kl_known does not support class weights"))
    checks.append(check("kl_known", "xfailed", dtype="float64", message=DEFECT, metrics=errs(5e-8, 1e-9)))
    checks.append(check("ghost", "passed", name="value_and_gradient", metrics=None))
    return {"schema": 1, "complete": True,
            "environment": {"started": "2026-11-24T10:00:00+00:00", "finished": "2026-11-24T10:00:41+00:00",
                            "duration_s": 41.2, "suite_commit": "abc1234", "command": "python -m pytest suites/ -n 2",
                            "python": "3.11.7", "torch": "2.13.0+cpu", "numpy": "2.4.6", "scipy": "1.17.1",
                            "platform": "Linux-x86_64", "cpu": "Test CPU", "torch_threads": 2,
                            "cuda": {"available": False, "reason": "torch.cuda.is_available() is False", "devices": []},
                            "seed": 7, "hypothesis_profile": "ci", "hypothesis_seed": 1234, "workers": 2,
                            "future_field": {"unexpected": True},
                            "impls": [impl_record("good_ce"), impl_record("bad_kernel", convention="exclusive"), kl]},
            "checks": checks, "benchmarks": []}


def render(tmp_path, results, baseline=None, name="report.html") -> tuple[str, Node]:
    out = tmp_path / name
    write_report(results, out, baseline=baseline)
    html = out.read_text(encoding="utf-8")
    return html, parse(html)


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    """(html, tree) of make_results(), rendered once: tests only read it."""
    return render(tmp_path_factory.mktemp("page"), make_results())


def cells_of(tree: Node, impl: str) -> dict[str, Node]:
    row = tree.find("table", id="matrix-table").find("tr", data_impl=impl)
    return {td.attrs["data-feature"]: td for td in row.find_all("td")}


# ------------------------------------------------------------------ loading


@pytest.mark.parametrize("name, words", [
    ("does_not_exist.json", "no such file"),
    ("truncated_results.json", "not valid JSON"),
    ("schema3_results.json", "schema 3 is not supported"),
    ("no_schema_results.json", 'no "schema" field'),
])
def test_unusable_results_file_raises_one_line_error(name, words):
    with pytest.raises(ResultsError) as info:
        load_results(DATA / name)
    message = str(info.value)
    assert words in message and name in message and "\n" not in message, message


def test_minimal_results_render_every_section_without_optional_fields(tmp_path):
    html, tree = render(tmp_path, load_results(DATA / "minimal_results.json"))
    for section in ("run", "verdict", "matrix", "accuracy", "conventions", "findings"):
        assert tree.find("section", id=section)
    assert not tree.find_all("section", id="performance")
    assert tree.find(id="incomplete-banner"), "a results file that does not say complete must warn"


# ------------------------------------------------------------------ sections


def test_run_header_names_commit_versions_cuda_reason_seed_and_command(page):
    _, tree = page
    run = tree.find("section", id="run").text()
    for fact in ("abc1234", "2.13.0+cpu", "3.11.7", "2.4.6", "torch.cuda.is_available() is False",
                 "python -m pytest suites/ -n 2", "ci (seed 1234)", "41.20 s", "Test CPU",
                 "future_field", '{"unexpected": true}'):
        assert fact in run, fact
    assert "not available" in tree.find(id="cuda").text()


def test_verdict_counts_each_outcome_per_implementation(page):
    _, tree = page
    results = make_results()
    table = tree.find("table", id="verdict-table")
    for impl in ("good_ce", "bad_kernel", "kl_known", "ghost"):
        row = table.find("tr", data_impl=impl)
        outcomes = [c["outcome"] for c in results["checks"] if c["impl"] == impl]
        shown = {td.attrs["data-count"]: int(td.text()) for td in row.find_all("td") if "data-count" in td.attrs}
        assert shown == {"passed": outcomes.count("passed"),
                         "failed": sum(outcomes.count(o) for o in ("failed", "error", "xpassed")),
                         "xfailed": outcomes.count("xfailed"), "divergence": outcomes.count("divergence"),
                         "skipped": outcomes.count("skipped")}, impl
    verdicts = {r.attrs["data-impl"]: r.attrs["data-verdict"] for r in table.find_all("tr") if "data-impl" in r.attrs}
    known = sum(c["outcome"] == "xfailed" for c in results["checks"] if c["impl"] == "kl_known")
    assert verdicts == {"good_ce": "conforms", "bad_kernel": "fails",
                        "kl_known": f"conforms except {known} known defect{'s' if known > 1 else ''}",
                        "ghost": "conforms"}
    assert "undeclared" in table.find("tr", data_impl="ghost").text()


def test_xpassed_known_defect_makes_an_implementation_not_conform(tmp_path):
    results = make_results()
    for c in results["checks"]:
        if c["outcome"] == "xfailed":
            c["outcome"] = "xpassed"
    _, tree = render(tmp_path, results)
    assert tree.find("tr", data_impl="kl_known").attrs["data-verdict"] == "fails"
    assert tree.find("div", data_impl="kl_known").find_all("div", data_check="value_and_gradient")


def test_matrix_cells_follow_params_and_declared_support(page):
    _, tree = page
    good, bad, kl = (cells_of(tree, impl) for impl in ("good_ce", "bad_kernel", "kl_known"))
    assert good["dtype:float32"].attrs["data-state"] == "pass" and good["dtype:float32"].text() == "pass 5"
    assert bad["dtype:bfloat16"].attrs["data-state"] == "fail" and bad["dtype:bfloat16"].text() == "fail 3/4"
    assert "out=0.51, but should be 0.5" in bad["dtype:bfloat16"].attrs["title"]
    assert bad["ignore_index"].attrs["data-state"] == "fail"
    assert kl["weights"].attrs["data-state"] == "unsupported"
    assert "does not support class weights" in kl["weights"].attrs["title"]
    assert kl["dtype:float64"].attrs["data-state"] == "known"
    assert good["weights"].attrs["data-state"] == "pass" and good["nd"].attrs["data-state"] == "pass"
    assert good["device:cuda"].attrs["data-state"] == "skipped" and NO_CUDA in good["device:cuda"].attrs["title"]
    assert good["prob_targets"].attrs["data-state"] == "none"
    for cells in (good, bad, kl):  # colour is never the only signal
        assert all(td.text().strip() for td in cells.values())


def test_accuracy_table_shows_worst_error_and_ratio_to_pytorch(page):
    _, tree = page
    row = tree.find("table", id="accuracy-table").find("tr", data_impl="bad_kernel", data_dtype="bfloat16")
    cells = [td.text() for td in row.find_all("td")]
    assert cells[2] == "1.00e-02" and cells[4] == "10×"  # worst value error 1e-2 vs torch's 1e-3
    assert cells[5] == "4.00e-03" and cells[7] == "4×"
    assert cells[3] == cells[6] == cells[10] == "—"  # a file without attainable_* metrics still renders
    assert tree.find("figure", id="error-chart").find_all("svg")


def test_accuracy_table_shows_ratios_to_the_attainable_error_and_the_true_class_entry(tmp_path):
    results = make_results()
    metrics = {**errs(6e-3, 2e-4, 6e-3, 2e-4), "attainable_value_abs_err": 2e-3, "attainable_grad_abs_err": 1e-6,
               "true_grad_max_rel_err": 1.0, "baseline_true_grad_rel_err": 1.0,
               "attainable_true_grad_rel_err": 0.0058, "true_grad_attainable_ratio": 178.0}
    results["checks"].append(check("good_ce", "xfailed", name="confident_rows", dtype="float16", metrics=metrics))
    _, tree = render(tmp_path, results)
    row = tree.find("table", id="accuracy-table").find("tr", data_impl="good_ce", data_dtype="float16")
    cells = [td.text() for td in row.find_all("td")]
    assert cells[3] == "3×" and cells[4] == "1×" and cells[6] == "200×" and cells[7] == "1×"
    assert cells[8] == cells[9] == "1.00e+00" and cells[10] == "178×"


def test_conventions_show_the_worked_example_distributions(page):
    _, tree = page
    table = tree.find("table", id="conventions-table")
    q = {impl: [float(td.text()) for td in table.find("tr", data_impl=impl).find_all("td")[2:7]]
         for impl in ("good_ce", "bad_kernel")}
    assert q["good_ce"] == pytest.approx([0.02, 0.92, 0.02, 0.02, 0.02])
    assert q["bad_kernel"] == pytest.approx([0.025, 0.9, 0.025, 0.025, 0.025])
    coinciding = tree.find("ul", id="coinciding").text()
    assert "good_ce" in coinciding and "kl_known" in coinciding and "bad_kernel" not in coinciding
    assert "gradients coincide" in coinciding


def test_conventions_show_only_what_was_recorded(tmp_path):
    """q is read from the file, never recomputed: a recorded q is shown as recorded (even
    one unlike any convention), a null q with the run's reason, an old record as not recorded."""
    results = make_results()
    good, bad, kl = results["environment"]["impls"]
    good["example_target"]["q"] = [0.0, 1.0, 0.0, 0.0, 0.0]
    bad["example_target"] = example_target(None, "ValueError: exclusive not written yet")
    del kl["example_target"]
    _, tree = render(tmp_path, results)
    table = tree.find("table", id="conventions-table")
    rows = {impl: table.find("tr", data_impl=impl).find_all("td") for impl in ("good_ce", "bad_kernel", "kl_known")}
    assert [float(td.text()) for td in rows["good_ce"][2:7]] == [0, 1, 0, 0, 0] and rows["good_ce"][-1].text() == "recorded"
    for impl, why in (("bad_kernel", "exclusive not written yet"), ("kl_known", "before the worked example")):
        assert "not recorded" in rows[impl][2].text() and why in rows[impl][-1].text(), impl
    assert not tree.find_all("ul", id="coinciding")


def test_check_kind_decides_what_counts_in_a_verdict(tmp_path):
    """The recorded kind decides, whatever the name; the name heuristic only when no kind
    is recorded; a kind the report does not know counts like conformance."""
    results = make_results()
    results["checks"] += [
        dict(check("good_ce vs kl_known", "failed", name="same_targets", tag="-a", message="pair"), kind="equivalence"),
        dict(check("good_ce", "failed", name="equivalence_looking_name", tag="-b", message="own"), kind="conformance"),
        dict(check("kl_known", "failed", name="shift", tag="-c", message="new kind"), kind="some_future_kind"),
    ]
    _, tree = render(tmp_path, results)
    verdicts = {tr.attrs["data-impl"]: tr.attrs["data-verdict"]
                for tr in tree.find("table", id="verdict-table").find_all("tr") if "data-impl" in tr.attrs}
    assert "good_ce vs kl_known" not in verdicts
    assert verdicts["good_ce"] == verdicts["kl_known"] == "fails"
    listed = tree.find("table", id="equivalence-checks").text()
    assert "same_targets" in listed and "equivalence_looking_name" not in listed


def test_equivalence_checks_are_listed_apart_from_verdicts(tmp_path, page):
    assert not page[1].find_all("table", id="equivalence-checks")
    results = make_results()
    pair = check("good_ce vs kl_known", "failed", name="equivalence_kl_is_ce_minus_entropy", message="KL != CE - H",
                 metrics={"value_max_abs_diff": 3e-3, "value_budget": 1e-12, "grad_max_abs_diff": None})
    same = check("good_ce", "failed", name="equivalence_inclusive_is_exclusive", message="mass differs")
    results["checks"] += [pair, same]
    _, tree = render(tmp_path, results)
    table = tree.find("table", id="equivalence-checks").text()
    assert "KL != CE - H" in table and "value_max_abs_diff=0.003" in table and "grad_max_abs_diff" not in table
    assert not tree.find("table", id="verdict-table").find_all("tr", data_impl="good_ce vs kl_known")
    assert tree.find("tr", data_impl="good_ce").attrs["data-verdict"] == "conforms"
    assert "KL != CE - H" in tree.find("div", data_impl="good_ce vs kl_known").text()


def test_findings_group_identical_messages_and_keep_them_as_text(page):
    html, tree = page
    block = tree.find("div", data_impl="bad_kernel", **{"class": "impl-findings failures"})
    group = block.find("div", data_check="value_and_gradient")
    assert group.attrs["data-count"] == "3"
    assert group.find("pre").text() == BF16_FAILURE
    assert len(group.find("details").find_all("li")) == 3
    assert "python -m pytest 'suites/" in group.find("div", **{"class": "repro"}).text()
    assert "boom" in block.find("div", data_check="ignored_targets").text()
    known = tree.find("div", data_impl="kl_known", **{"class": "impl-findings known"})
    assert DEFECT in known.text() and DEFECT in tree.find("table", id="declared-defects").text()
    assert SCRIPT not in html and not tree.find_all("script")


def test_one_message_across_several_checks_is_one_finding(tmp_path):
    results = make_results()
    results["checks"] += [check("good_ce", "failed", name=name, tag=f"-{i}", message="AttributeError: no Spec")
                          for i, name in enumerate(["a_check", "b_check", "b_check"])]
    _, tree = render(tmp_path, results)
    groups = tree.find("div", data_impl="good_ce", **{"class": "impl-findings failures"}).find_all("div", data_count="3")
    assert len(groups) == 1 and groups[0].attrs["data-check"] == "b_check and 1 other checks"
    assert "a_check" in groups[0].find("div", **{"class": "finding-head"}).text()


def test_impl_name_with_markup_is_escaped_in_tables_and_charts(tmp_path):
    results = json.loads(json.dumps(make_results()).replace("good_ce", EVIL_IMPL))
    html, tree = render(tmp_path, results)
    assert EVIL_IMPL not in html and not tree.find_all("b")
    assert tree.find("table", id="verdict-table").find_all("tr", data_impl=EVIL_IMPL)
    svg = tree.find("figure", id="error-chart").find("svg")
    assert any(EVIL_IMPL in t.text() for t in svg.find_all("text")), "legend must show the name as text"


def test_page_is_self_contained(page):
    html, tree = page
    assert not re.search(r"https?://", html), "no URL at all, even inside SVG"
    assert not tree.find_all("script") and not tree.find_all("link") and not tree.find_all("img")
    assert "@import" not in html and not re.search(r"url\((?!#)", html), "only in-page url(#id) references"
    for node in tree.iter():
        for attr in ("src", "href", "xlink:href", "action"):
            assert node.attrs.get(attr, "#").startswith("#"), (node.tag, attr, node.attrs[attr])


def test_urls_in_messages_stay_plain_text(tmp_path):
    results = make_results()
    results["checks"][0].update(outcome="failed", message="see https://example.org/x")
    html, tree = render(tmp_path, results)
    assert "see https://example.org/x" in tree.find("section", id="findings").text()
    assert all(n.attrs.get("href", "#").startswith("#") for n in tree.iter())


def test_incomplete_run_shows_a_banner_and_complete_does_not(tmp_path, page):
    _, complete = page
    assert not complete.find_all(id="incomplete-banner")
    results = make_results()
    results["complete"] = False
    _, tree = render(tmp_path, results, name="partial.html")
    assert "Incomplete run" in tree.find(id="incomplete-banner").text()


def test_benchmarks_render_tables_and_chart_only_when_present(tmp_path, page):
    assert not page[1].find_all("section", id="performance")
    results = make_results()
    results["benchmarks"] = [
        {"impl": impl, "device": "cpu", "dtype": "float32", "pass": "forward+backward", "n": 4096, "k": k,
         "median_s": 0.01 * k / 1000, "iqr_s": 0.001, "rounds": 5, "peak_bytes": 1048576 * k,
         "peak_over_logits": 2.0, "roofline_fraction": 0.31, "ratio_to_builtin": r}
        for impl, r in (("good_ce", 1.0), ("bad_kernel", 1.5)) for k in (1000, 32000)]
    _, tree = render(tmp_path, results, name="bench.html")
    table = tree.find("table", id="bench-table")
    assert len(table.find_all("tr", data_impl="bad_kernel")) == 2
    assert "1.5×" in table.find("tr", data_impl="bad_kernel").text()
    assert tree.find("figure", id="bench-chart").find_all("svg")


# ------------------------------------------------------------------ regression


def test_compare_lists_new_failures_fixes_and_added_removed_checks(tmp_path):
    html, tree = render(tmp_path, load_results(DATA / "current_small.json"),
                        baseline=load_results(DATA / "baseline_small.json"))
    new = [tr.attrs["data-nodeid"] for tr in tree.find("table", id="new-failures").find_all("tr")
           if "data-nodeid" in tr.attrs]
    fixed = [tr.attrs["data-nodeid"] for tr in tree.find("table", id="fixes").find_all("tr")
             if "data-nodeid" in tr.attrs]
    assert new == ["suites/test_conformance.py::test_value[kernel_a-cpu-breaks]"]
    assert fixed == ["suites/test_conformance.py::test_value[kernel_a-cpu-mended]"]
    assert "kernel_a-cpu-new" in tree.find(id="checks-added").text()
    assert "kernel_a-cpu-dropped" in tree.find(id="checks-removed").text()
    assert "base123" in tree.find("section", id="regression").text()


def test_compare_flags_accuracy_drift_and_benchmark_changes_beyond_noise(tmp_path):
    baseline = make_results()
    baseline["benchmarks"] = [{"impl": "good_ce", "device": "cpu", "dtype": "float32", "pass": "forward",
                               "n": 8, "k": k, "median_s": 1.0, "ratio_to_builtin": 1.0} for k in (10, 20)]
    current = copy.deepcopy(baseline)
    current["benchmarks"][0]["ratio_to_builtin"] = 2.5  # +150%: beyond the gate's threshold
    current["benchmarks"][1]["ratio_to_builtin"] = 1.05  # +5%: noise
    drifted = next(c for c in current["checks"] if c["impl"] == "good_ce" and c["params"]["K"] == 2)
    drifted["metrics"]["value_max_abs_err"] = 5e-6  # 250x growth to half the budget of 1e-5
    tiny = next(c for c in current["checks"] if c["impl"] == "good_ce" and c["params"]["K"] == 11)
    tiny["metrics"]["grad_max_abs_err"] *= 50  # 50x growth, still under budget/10: noise
    _, tree = render(tmp_path, current, baseline=baseline)
    drift = [tr.attrs["data-nodeid"] for tr in tree.find("table", id="drift").find_all("tr") if "data-nodeid" in tr.attrs]
    assert drift == [drifted["nodeid"]]
    flags = [tr.attrs["data-flagged"] for tr in tree.find("table", id="bench-changes").find_all("tr")
             if "data-flagged" in tr.attrs]
    assert sorted(flags) == ["no", "yes"]
    flagged = tree.find("table", id="bench-flagged").find_all("tr", data_flagged="yes")
    assert len(flagged) == 1 and "+150.0%" in flagged[0].text()


def test_drift_without_a_budget_is_judged_against_the_unit_roundoff(tmp_path):
    """float32's unit roundoff is 2**-24 (5.96e-8), half its machine epsilon: 5x growth to
    5e-8 is rounding noise, to 1e-7 it is drift."""
    baseline = make_results()
    target = next(c for c in baseline["checks"] if c["impl"] == "good_ce" and c["params"]["K"] == 2)
    target["metrics"].update(value_max_abs_err=1e-8, value_budget=None, grad_max_abs_err=None)
    for after, flagged in ((5e-8, False), (1e-7, True)):
        current = copy.deepcopy(baseline)
        next(c for c in current["checks"] if c["nodeid"] == target["nodeid"])["metrics"]["value_max_abs_err"] = after
        _, tree = render(tmp_path, current, baseline=baseline, name=f"drift{after}.html")
        assert bool(tree.find("section", id="regression").find_all("table", id="drift")) is flagged, after


def bench_entry(k, ratio, peak, impl="good_ce"):
    return {"impl": impl, "device": "cpu", "dtype": "float32", "pass": "forward_backward", "n": 1024, "k": k,
            "median_s": 0.01 * ratio, "ratio_to_builtin": ratio, "peak_over_logits": peak}


def test_report_and_gate_agree_on_a_ratio_and_a_memory_regression(tmp_path):
    """The same pair of files, judged by the gate (lsuite.benchmarking.regression, as a gated run does) and
    rendered by the report: the same benchmarks are regressions, for the same reasons."""
    from lsuite.benchmarking import regression  # the test may import lsuite; reports/ never does

    baseline = make_results()
    baseline["benchmarks"] = [bench_entry(k, 1.5, 3.0) for k in (1000, 8192, 32000, 50257, 65536)]
    current = copy.deepcopy(baseline)
    slower, fatter, both, noise, faster = current["benchmarks"]
    slower["ratio_to_builtin"] = 3.2  # +113%: past +90% (no samples: the old rule)
    fatter["peak_over_logits"] = 4.0  # +1 logits' size: past +0.5
    both.update(ratio_to_builtin=4.0, peak_over_logits=6.0)
    noise.update(ratio_to_builtin=1.8, peak_over_logits=3.25)  # +20%, +0.25: within the thresholds
    faster["ratio_to_builtin"] = 0.5  # a speedup is never a regression
    findings = regression.regressions(current["benchmarks"], baseline["benchmarks"])
    current["benchmark_gate"] = regression.record(findings, "baseline/results.json")
    paths = tmp_path / "baseline.json", tmp_path / "current.json"
    for path, payload in zip(paths, (baseline, current), strict=True):
        path.write_text(json.dumps(payload))
    gate = {(f.key[-1], f.quantity) for f in regression.regressions(
        load_results(paths[1])["benchmarks"], load_results(paths[0])["benchmarks"])}
    assert gate == {(1000, "ratio_to_builtin"), (8192, "peak_over_logits"),
                    (32000, "ratio_to_builtin"), (32000, "peak_over_logits")}
    out = tmp_path / "cmp.html"
    assert run_cli("compare", *paths, "-o", out).returncode == 0
    tree = parse(out.read_text())
    rows = tree.find("table", id="bench-changes").find_all("tr", data_regressed="yes")
    report = set()
    for row in rows:
        cells = row.find_all("td")
        k = int(cells[5].text())
        report |= {(k, "ratio_to_builtin")} if "slower" in cells[-2].text() else set()
        report |= {(k, "peak_over_logits")} if "more memory" in cells[-2].text() else set()
    assert report == gate
    assert tree.find("li", data_kind="bench").text().startswith("4")
    assert "recorded 4 regressions" in tree.find(id="bench-rule").text()


def test_report_shows_the_interval_the_decision_and_why_for_sampled_benchmarks(tmp_path):
    """Entries with per-round ratios: baseline, current, the change with its interval, the
    decision, and the evidence (p, the smallest detectable slowdown), as the gate judged."""
    rng = np.random.default_rng(0)
    baseline = make_results()
    baseline["benchmarks"] = [dict(bench_entry(k, 2.0, 3.0), ratio_samples=list(2.0 * np.exp(rng.normal(0, 0.02, 12))))
                              for k in (1000, 8192)]
    current = copy.deepcopy(baseline)
    current["benchmarks"][0]["ratio_samples"] = list(4.2 * np.exp(rng.normal(0, 0.02, 12)))  # +110%
    current["benchmarks"][1]["ratio_samples"] = list(2.02 * np.exp(rng.normal(0, 0.02, 12)))  # +1%
    _, tree = render(tmp_path, current, baseline=baseline, name="sampled.html")
    (row,) = tree.find("table", id="bench-flagged").find_all("tr", data_regressed="yes")
    text = row.text()
    for words in ("slower: +", "[+", "p<", "could detect", "2×", "4.2×"):
        assert words in text, text
    calm = [r for r in tree.find("table", id="bench-changes").find_all("tr", data_regressed="no")]
    assert len(calm) == 1 and "within noise" in calm[0].text()


def test_report_judges_benchmarks_with_the_thresholds_the_run_recorded(tmp_path):
    baseline = make_results()
    baseline["benchmarks"] = [bench_entry(1000, 1.0, 2.0)]
    current = copy.deepcopy(baseline)
    current["benchmarks"][0]["ratio_to_builtin"] = 1.5  # +50%: within the default +90%
    _, old_file = render(tmp_path, current, baseline=baseline, name="old.html")
    assert not old_file.find_all("tr", data_regressed="yes")
    assert "defaults" in old_file.find(id="bench-rule").text()
    current["benchmark_gate"] = {"ratio_threshold": 0.3, "memory_threshold": 1.5, "findings": None}
    _, recorded = render(tmp_path, current, baseline=baseline, name="recorded.html")
    assert len(recorded.find_all("tr", data_regressed="yes")) == 2  # the flagged table and the full one
    assert "30%" in recorded.find(id="bench-rule").text()


@pytest.mark.parametrize("change, words", [
    ({"complete": "yes"}, '"complete" must be a JSON boolean, got string'),
    ({"environment": []}, '"environment" must be a JSON object, got array'),
    ({"benchmark_gate": [1]}, '"benchmark_gate" must be a JSON object, got array'),
    ({"benchmarks": [3]}, "benchmarks[0] must be a JSON object, got number"),
])
def test_wrongly_typed_core_fields_are_one_line_errors(change, words):
    with pytest.raises(ResultsError) as info:
        reports.validate({**make_results(), **change}, source="r.json")
    assert str(info.value).startswith(f"r.json: {words}") and "\n" not in str(info.value)


@pytest.mark.parametrize("field, value", [("outcome", 3), ("impl", ["a"]), ("kind", {"k": 1}), ("nodeid", 1.5)])
def test_wrongly_typed_check_fields_are_one_line_errors(field, value):
    results = make_results()
    results["checks"][2][field] = value
    with pytest.raises(ResultsError, match=rf"^results: checks\[2\]\.{field} must be a JSON string, got "):
        reports.validate(results)


def test_bad_baseline_raises_one_line_results_error(tmp_path):
    with pytest.raises(ResultsError, match=r"^baseline: schema 3 is not supported") as info:
        write_report(make_results(), tmp_path / "r.html", baseline={"schema": 3})
    assert "\n" not in str(info.value)
    assert not (tmp_path / "r.html").exists()


# ------------------------------------------------------------------ writing and the CLI


def test_failed_render_leaves_the_previous_report_and_no_temp_file(tmp_path):
    out = tmp_path / "report.html"
    write_report(make_results(), out)
    before = out.read_bytes()
    with pytest.raises(ResultsError):
        write_report({"schema": 1, "checks": {"not": "a list"}}, out)
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]


def test_atomic_writer_gives_a_normal_files_mode_and_cleans_up_on_failure(tmp_path):
    from lsresults.files import write_atomic

    old = os.umask(0o022)
    try:
        out = write_atomic(tmp_path / "sub" / "a.txt", "first")
        assert out.read_text() == "first" and out.stat().st_mode & 0o777 == 0o644
        os.umask(0o077)
        write_atomic(out, "second")
        assert out.stat().st_mode & 0o777 == 0o600, "the umask applies, as to any new file"
    finally:
        os.umask(old)
    with pytest.raises(UnicodeEncodeError):
        write_atomic(out, "half \udc80 written")  # a lone surrogate fails mid-write
    assert out.read_text() == "second" and [p.name for p in out.parent.iterdir()] == ["a.txt"]


def run_cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "reports", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("command", ["build", "compare"])
def test_cli_exits_2_with_one_line_on_a_malformed_file(tmp_path, command):
    bad = DATA / "truncated_results.json"
    args = [bad] if command == "build" else [bad, DATA / "current_small.json"]
    proc = run_cli(command, *args, "-o", tmp_path / "out.html")
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and "not valid JSON" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "out.html").exists()


def test_cli_compare_writes_a_report_with_the_regression_section(tmp_path):
    out = tmp_path / "cmp.html"
    proc = run_cli("compare", DATA / "baseline_small.json", DATA / "current_small.json", "-o", out)
    assert proc.returncode == 0, proc.stderr
    assert parse(out.read_text()).find("section", id="regression")


def test_rendering_never_imports_torch_lsuite_or_reference(tmp_path):
    code = ("import sys, reports; r = reports.load_results(sys.argv[1]); "
            "reports.write_report(r, sys.argv[2], baseline=r); "
            "bad = [m for m in ('torch', 'lsuite', 'reference') if m in sys.modules]; "
            "assert not bad, f'{bad} imported'")
    proc = subprocess.run([sys.executable, "-c", code, str(DATA / "current_small.json"), str(tmp_path / "r.html")],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_two_thousand_checks_render_quickly_to_a_sane_size(tmp_path):
    results = make_results()
    template = results["checks"]
    results["checks"] = []
    for i in range(2000):
        c = copy.deepcopy(template[i % len(template)])
        c["nodeid"] += f"-{i}"
        results["checks"].append(c)
    start = time.perf_counter()
    html, tree = render(tmp_path, results)
    elapsed = time.perf_counter() - start
    assert elapsed < 5, f"rendering 2000 checks took {elapsed:.1f} s"
    assert len(html) < 1_500_000, f"{len(html)} bytes"
    assert len(tree.find("table", id="verdict-table").find_all("tr")) == 5  # aggregated, not per check


def test_results_with_nan_errors_and_null_metrics_render(tmp_path):
    results = make_results()
    results["checks"][0]["metrics"] = errs(math.nan, None)
    results["checks"][1]["metrics"] = None
    results["checks"][2]["params"] = None
    results["environment"]["cuda"] = None
    _, tree = render(tmp_path, results)
    assert "NaN" in tree.find("table", id="accuracy-table").find("tr", data_impl="good_ce").text()


def test_wrongly_typed_optional_fields_do_not_stop_the_report(tmp_path):
    results = make_results()
    results["environment"]["impls"][0].update(supports={"dtypes": "float32", "devices": None}, reductions="mean",
                                              known_defects=["not a dict"])
    results["checks"][0]["params"] = {"dtype": ["float32"], "K": "eleven", "reduction": {"x": 1}}
    results["checks"][1].update(metrics={"value_max_abs_err": "big"}, outcome="exploded", message=None, nodeid=None)
    results["environment"]["cuda"] = {"available": True, "devices": ["not a dict", {"name": "GPU0"}]}
    _, tree = render(tmp_path, results)
    assert tree.find("tr", data_impl="good_ce").attrs["data-verdict"] == "fails"  # unknown outcome
    assert "GPU0" in tree.find(id="cuda").text()


def test_browser_renders_the_report(tmp_path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        if os.environ.get("LS_REQUIRE_BROWSER"):  # set by .ci/run, which installs chromium
            pytest.fail("LS_REQUIRE_BROWSER is set but no chromium or chromium-browser is on PATH")
        pytest.skip("no chromium or chromium-browser on PATH: the headless screenshot check needs one")
    out = write_report(make_results(), tmp_path / "report.html")
    shot = tmp_path / "shot.png"
    proc = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                           "--no-first-run", f"--screenshot={shot}", "--window-size=1400,3000", out.as_uri()],
                          capture_output=True, text=True, timeout=60, env={**os.environ, "HOME": str(tmp_path)})
    assert shot.exists(), proc.stderr[-2000:]
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000, f"{len(png)} bytes"


def test_the_page_never_scrolls_sideways_at_1400_px(tmp_path):
    """A table wider than the window (many records with long claims) scrolls inside itself:
    the page's own width stays the window's, as the browser lays it out."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        if os.environ.get("LS_REQUIRE_BROWSER"):  # set by .ci/run, which installs chromium
            pytest.fail("LS_REQUIRE_BROWSER is set but no chromium or chromium-browser is on PATH")
        pytest.skip("no chromium or chromium-browser on PATH: the layout check needs one")
    results = make_results()
    for n in range(12):  # a catalog's worth of records, each with every kind of outcome
        name = f"library_{n}_vocab_parallel_cross_entropy_partition_mode"
        results["environment"]["impls"].append(impl_record(name, convention="padding_excluded"))
        for outcome in ("passed", "failed", "xfailed", "divergence", "skipped"):
            results["checks"].append(check(name, outcome, message=DEFECT, metrics=errs(1e-9, 1e-10)))
    out = write_report(results, tmp_path / "report.html")
    probe = tmp_path / "probe.html"
    probe.write_text(out.read_text().replace("</body>", "<script>document.title = 'W=' + "
                                             "document.documentElement.scrollWidth;</script></body>"))
    proc = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                           "--window-size=1400,900", "--dump-dom", probe.as_uri()],
                          capture_output=True, text=True, timeout=60, env={**os.environ, "HOME": str(tmp_path)})
    width = re.search(r"<title>W=(\d+)</title>", proc.stdout)
    assert width, proc.stderr[-2000:]
    assert int(width.group(1)) <= 1400


def test_package_interface_round_trips_a_results_file(tmp_path):
    """What lsuite and users call: write_report renders a payload, load_results reads the
    payload back validated, and a broken file is a ResultsError (one line)."""
    payload = make_results()
    path = tmp_path / "results.json"
    path.write_text(json.dumps(payload))
    loaded = reports.load_results(path)
    assert loaded["checks"] == payload["checks"]
    html = reports.write_report(loaded, tmp_path / "report.html").read_text()
    assert payload["checks"][0]["impl"] in html
    path.write_text("{not json")
    with pytest.raises(reports.ResultsError) as info:
        reports.load_results(path)
    assert "\n" not in str(info.value)


# ------------------------------------------- schema 2: hidden-states and vocab-parallel records

NEW_KINDS = ("example_fused_linear_ce", "example_vocab_parallel_ce")


def section_cells(tree: Node, table_id: str, impl: str) -> dict[str, Node]:
    row = tree.find("table", id=table_id).find("tr", data_impl=impl)
    return {td.attrs["data-feature"]: td for td in row.find_all("td")}


def gradient_rows(tree: Node) -> dict[tuple, list[str]]:
    table = tree.find("table", id="gradient-accuracy-table")
    return {(r.attrs["data-impl"], r.attrs["data-dtype"], r.attrs["data-gradient"], r.attrs.get("data-world")):
            [td.text() for td in r.find_all("td")] for r in table.find_all("tr") if "data-impl" in r.attrs}


@pytest.mark.parametrize("name, schema", [("real_run_small.json", 1), ("schema1_new_kinds.json", 1),
                                          ("schema2_new_kinds.json", 2)])
def test_schema_1_and_2_files_of_real_runs_render(tmp_path, name, schema):
    """Real runs: a schema-1 file of logits records, a schema-1 and a schema-2 file of the
    hidden-states and vocab-parallel examples (pytest suites/test_fused_linear.py
    suites/test_vocab_parallel.py, trimmed to one check per impl/check/dtype/device/world)."""
    results = load_results(DATA / name)
    assert results["schema"] == schema
    _, tree = render(tmp_path, results)
    tables = {t.attrs.get("id") for t in tree.find_all("table")}
    new = any(c["impl"] in NEW_KINDS for c in results["checks"])
    assert {"matrix-hidden_states", "matrix-vocab_parallel", "gradient-accuracy-table"} <= tables if new else \
        not tables & {"matrix-hidden_states", "matrix-vocab_parallel", "gradient-accuracy-table"}
    logits = tree.find("table", id="matrix-table")
    assert not any(logits.find_all("tr", data_impl=impl) for impl in NEW_KINDS)  # not mixed into logits columns


@pytest.mark.parametrize("name", ["schema1_new_kinds.json", "schema2_new_kinds.json"])
def test_each_kind_has_its_own_matrix_with_a_column_per_judged_gradient(tmp_path, name):
    results = load_results(DATA / name)
    _, tree = render(tmp_path, results)
    fused = section_cells(tree, "matrix-hidden_states", "example_fused_linear_ce")
    for key in ("gradient:hidden", "gradient:classifier", "gradient:bias", "bias", "dtype:bfloat16"):
        assert fused[key].attrs["data-state"] == "pass", key
    assert "gradient:logits" not in fused
    vp = section_cells(tree, "matrix-vocab_parallel", "example_vocab_parallel_ce")
    assert all(vp[f"world:{w}"].attrs["data-state"] == "pass" for w in (1, 2, 4))
    assert vp["device:cuda"].attrs["data-state"] == "skipped"
    # schema 2 records each rank's shard gradient; schema 1 recorded only the worst rank's
    ranks = {k for k in vp if k.startswith("gradient:")}
    expected = {f"gradient:rank{r}" for r in range(4)} if results["schema"] == 2 else {"gradient:worst_rank"}
    assert ranks == expected


def test_accuracy_per_gradient_shows_the_worst_error_of_each_gradient_and_rank(tmp_path):
    results = load_results(DATA / "schema2_new_kinds.json")
    _, tree = render(tmp_path, results)
    rows = gradient_rows(tree)
    for gradient in ("hidden", "classifier", "bias"):
        checks = [c for c in results["checks"] if c["impl"] == NEW_KINDS[0] and c["outcome"] == "passed"
                  and c["params"]["dtype"] == "bfloat16" and gradient in c["gradients"]]
        worst = max(c["gradients"][gradient]["max_abs_err"] for c in checks)
        worst_rel = max(c["gradients"][gradient]["max_rel_err"] for c in checks)
        cells = rows[NEW_KINDS[0], "bfloat16", gradient, None]
        assert cells[2] == {"hidden": "dh (hidden)", "classifier": "dW (classifier)", "bias": "db (bias)"}[gradient]
        assert cells[3] == str(len(checks)) and cells[4] == f"{worst:.2e}" and cells[5] == f"{worst_rel:.2e}"
        assert cells[6] == f"{worst_rel / 2 ** -8:.3g}"  # relative error in units of bfloat16's u
    shards = {(g, w) for (impl, dtype, g, w) in rows if impl == NEW_KINDS[1] and dtype == "float64"}
    assert {("rank0", "2"), ("rank1", "2"), ("rank3", "4")} <= shards
    assert rows[NEW_KINDS[1], "float64", "rank3", "4"][2] == "shard of rank 3 (world 4)"


def test_a_gradient_over_its_budget_fails_its_own_column_only(tmp_path):
    """A failed check shows "pass" in the column of a gradient only where the check's own
    verdict on that gradient was "within" (schema 2's `within`): an error under the budget
    proves nothing (a wrong-shaped or NaN gradient measures 0 over its finite elements), and
    a check without verdicts (schema 1) fails every gradient column it has."""
    results = load_results(DATA / "schema2_new_kinds.json")
    fused = next(c for c in results["checks"] if c["impl"] == NEW_KINDS[0] and c["outcome"] == "passed"
                 and c["params"]["dtype"] == "float32" and "bias" in c["gradients"])
    fused.update(outcome="failed", message="grad_classifier: max abs error 1.00e+00 over the budget")
    fused["gradients"]["classifier"]["max_abs_err"] = 10 * fused["gradients"]["classifier"]["budget"]
    for name in ("hidden", "bias", "classifier"):
        fused["gradients"][name]["within"] = name != "classifier"
    vp = next(c for c in results["checks"] if c["impl"] == NEW_KINDS[1] and c["outcome"] == "passed"
              and c["world"] == 2 and c["gradients"])
    vp.update(outcome="failed", message="rank 1 of 2: grad: actual shape (3,) vs expected (4, 6)")
    vp["gradients"]["rank1"].update(max_abs_err=0.0, within=False)  # nothing finite to compare
    vp["gradients"]["rank0"]["within"] = True
    unjudged = next(c for c in results["checks"] if c["impl"] == NEW_KINDS[0] and c["outcome"] == "passed"
                    and c["params"]["dtype"] == "float64" and "bias" in c["gradients"])
    unjudged.update(outcome="failed", message="value: NaN where the reference is finite")
    for entry in unjudged["gradients"].values():
        entry.pop("within", None)
    _, tree = render(tmp_path, results)
    cells = section_cells(tree, "matrix-hidden_states", NEW_KINDS[0])
    assert cells["gradient:classifier"].attrs["data-state"] == "fail"
    assert "over the budget" in cells["gradient:classifier"].attrs["title"]
    assert cells["gradient:hidden"].attrs["data-state"] == cells["gradient:bias"].attrs["data-state"] == "fail"
    assert "NaN where the reference is finite" in cells["gradient:hidden"].attrs["title"]
    assert cells["dtype:float32"].attrs["data-state"] == "fail"
    cells = section_cells(tree, "matrix-vocab_parallel", NEW_KINDS[1])
    assert cells["gradient:rank1"].attrs["data-state"] == "fail"
    assert cells["gradient:rank0"].attrs["data-state"] == "pass"
    unjudged.update(outcome="passed", message="")
    _, tree = render(tmp_path, results)
    cells = section_cells(tree, "matrix-hidden_states", NEW_KINDS[0])
    assert cells["gradient:hidden"].attrs["data-state"] == cells["gradient:bias"].attrs["data-state"] == "pass"
    assert cells["gradient:classifier"].attrs["data-state"] == "fail"
    row = gradient_rows(tree)[NEW_KINDS[0], "float32", "classifier", None]
    assert row[-1] == "10"
    assert "bad" in tree.find("tr", data_impl=NEW_KINDS[0], data_dtype="float32",
                              data_gradient="classifier").find("td", data_metric="budget-used").attrs["class"]


def test_world_sizes_say_what_ran_and_why_the_rest_was_skipped(tmp_path):
    results = load_results(DATA / "schema2_new_kinds.json")
    skipped = next(c for c in results["checks"] if c["impl"] == NEW_KINDS[1] and c["outcome"] == "passed"
                   and c["world"] == 4)
    results["checks"].append(dict(skipped, nodeid=skipped["nodeid"] + "-gpu", outcome="skipped", world=4,
                                  params=dict(skipped["params"], device="cuda"),
                                  message="Skipped: nccl world 4: needs 4 GPUs, found 1"))
    _, tree = render(tmp_path, results)
    table = tree.find("table", data_impl=NEW_KINDS[1])
    ran = {(r.attrs["data-device"], r.attrs["data-world"]): r for r in table.find_all("tr") if "data-world" in r.attrs}
    assert set(ran) == {(d, w) for d in ("cpu", "cuda") for w in ("1", "2", "4")}
    for world in ("1", "2", "4"):
        assert ran["cpu", world].attrs["data-state"] == "pass"
        assert int(ran["cpu", world].find_all("td")[3].text()) > 0
        assert ran["cuda", world].attrs["data-state"] == "skipped"
    assert "cpu (gloo)" in ran["cpu", "2"].text() and "cuda (nccl)" in ran["cuda", "2"].text()
    assert "nccl world 4: needs 4 GPUs" in ran["cuda", "4"].find("td", **{"class": "small reason"}).text()
    assert "no CUDA device" in ran["cuda", "2"].text()


def test_the_collector_writes_schema_2_fields_for_every_input_kind():
    from types import SimpleNamespace

    from lsuite.pytest_plugin import results as lresults

    impls = [{"name": "ce", "input": "logits"}, {"name": "fused", "input": "hidden_states"},
             {"name": "vp", "input": "vocab_parallel"}]
    collector = lresults.Collector({"impls": impls})
    metrics = {"ce": {"grad_max_abs_err": 1e-7, "grad_budget": 1e-6},
               "fused": {"grad_hidden_max_abs_err": 1e-7, "grad_classifier_max_abs_err": 2e-7,
                         "grad_classifier_budget": 1e-6, "grad_classifier_within": False},
               "vp": {"grad_max_abs_err": 3e-7, "grad_rank0_max_abs_err": 1e-7, "grad_rank1_max_abs_err": 3e-7,
                      "grad_worst_rank": 1, "world": 2}}
    for impl, m in metrics.items():
        collector.add(SimpleNamespace(
            when="call", passed=True, skipped=False, failed=False, duration=0.1, nodeid=f"t::{impl}",
            user_properties=[(lresults.PROPERTY, {"impl": impl, "check": "c", "kind": "conformance",
                                                  "params": {"world": 2, "dtype": "float32"}}),
                             (lresults.METRICS, m)]))
    payload = lresults.Collector.payload(collector, complete=True)
    assert payload["schema"] == lresults.SCHEMA == reports.SCHEMA == 2
    by = {c["impl"]: c for c in payload["checks"]}
    assert [by[i]["input"] for i in ("ce", "fused", "vp")] == ["logits", "hidden_states", "vocab_parallel"]
    assert [by[i]["world"] for i in ("ce", "fused", "vp")] == [None, None, 2]
    assert set(by["ce"]["gradients"]) == {"logits"} and by["ce"]["gradients"]["logits"]["budget"] == 1e-6
    assert set(by["fused"]["gradients"]) == {"hidden", "classifier"}
    assert by["fused"]["gradients"]["classifier"] == {"max_abs_err": 2e-7, "max_rel_err": None, "budget": 1e-6,
                                                      "baseline_abs_err": None, "attainable_abs_err": None,
                                                      "within": False}
    assert by["fused"]["gradients"]["hidden"]["within"] is None  # no verdict recorded
    assert set(by["vp"]["gradients"]) == {"rank0", "rank1"} and by["vp"]["gradients"]["rank1"]["rank"] == 1
    reports.validate(json.loads(json.dumps(payload, default=str)))
