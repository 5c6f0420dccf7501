"""The text scripts/gpu_proof.py prints: the plan (--plan) and the run's summary.txt."""

from __future__ import annotations

import shlex
from pathlib import Path


def summary(machine, records: list[dict], merge_problems: list[str], wall_s: float,
            budget_s: float, out: Path, passed: bool) -> str:
    lines = [f"gpu-proof: {'PASSED' if passed else 'FAILED'}: {len(records)} steps in "
             f"{wall_s:.0f} s (budget {budget_s:.0f} s) on {machine.describe()}"]
    for r in records:
        counts = ", ".join(f"{k} {v}" for k, v in sorted(r["counts"].items())) or "no checks"
        bench = f", {r['benchmarks']} benchmark entries" if r["benchmarks"] else ""
        lines.append(f"[{r['status']}] {r['name']} ({r['wall_s']} s of {r['budget_s']} s): "
                     f"{counts}{bench}")
        lines += ([f"    what: {r['title']}"] + [f"    problem: {p}" for p in r["problems"]] + [f"    note: {n}" for n in r["notes"]]
                  + [f"    skipped: {s}" for s in r["skip_reasons"]]
                  + [f"    not passing: {n}" for n in r["not_passing"]])
    lines += [f"[FAILED] merge: {p}" for p in merge_problems]
    if not merge_problems:
        lines.append(f"merged: {out / 'results.json'}, {out / 'report.html'} (each step's own in "
                     f"its folder, with pytest.log)")
    return "\n".join(lines) + "\n"


def describe_plan(machine, steps: list, budget_s: float) -> str:
    lines = [f"gpu-proof plan for {machine.gpus} GPU(s): {len(steps)} steps in order, "
             f"{budget_s:.0f} s in all (TRITON_INTERPRET removed from their environment)"]
    for i, step in enumerate(steps, 1):
        expect = "every check must fail" if step.expect == "fail" else "no check may fail"
        needs = "; ".join([n.label for n in step.needs]
                          + [f"a CUDA benchmark entry ({k}, {i_})" for k, i_ in step.bench_kinds])
        lines += [f"{i}. {step.name} (share {step.share_s:.0f} s): {step.title}",
                  f"   {shlex.join(step.command)}",
                  f"   passes when: {expect}" + (f"; must run: {needs}" if needs else "")]
        lines += [f"   note: {note}" for note in step.notes]
    return "\n".join(lines) + "\n"
