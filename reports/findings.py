"""Findings: failing and known-defect checks grouped by message, skip reasons, and the
equivalence checks' table (with the small formatters their templates use).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass

from lsresults.text import MESSAGE_CHARS  # a failure message longer than this is cut (with a note)

from .analysis import first_line, impl_of, is_equivalence, num, outcome_of, text

NODEIDS_SHOWN = 200  # per findings group: beyond this the list says "and N more"


@dataclass
class Finding:
    """Checks of one implementation that share one message (across check names)."""

    impl: str
    checks: Counter  # check name -> how many of this group's checks it has
    outcomes: Counter
    message: str
    truncated: bool
    repro: str  # of the group's first check
    nodeids: list[str]

    @property
    def count(self) -> int:
        return sum(self.outcomes.values())

    @property
    def check(self) -> str:
        """The check name when the group has one, else the most common one plus a count."""
        (name, _), *rest = self.checks.most_common()
        return name if not rest else f"{name} and {len(rest)} other checks"

    @property
    def shown_nodeids(self) -> list[str]:
        return self.nodeids[:NODEIDS_SHOWN]

    @property
    def hidden(self) -> int:
        return max(0, len(self.nodeids) - NODEIDS_SHOWN)


def findings(results: dict, outcomes: frozenset[str]) -> dict[str, list[Finding]]:
    """impl -> groups of its checks with the given outcomes that share one message.

    Grouping by message alone (not check name) is deliberate: one broken code path
    typically fails dozens of checks of several kinds with the same message.
    """
    groups: dict[tuple[str, str], Finding] = {}
    for c in results.get("checks") or ():
        outcome = outcome_of(c)
        if outcome not in outcomes:
            continue
        message = _without_repro(text(c.get("message")), text(c.get("repro"))).strip() \
            or f"({outcome}, no message recorded)"
        key = (impl_of(c), message)
        if key not in groups:
            cut = len(message) > MESSAGE_CHARS
            groups[key] = Finding(key[0], Counter(), Counter(), message[:MESSAGE_CHARS], cut,
                                  text(c.get("repro")), [])
        groups[key].checks[text(c.get("check")) or "(no check name)"] += 1
        groups[key].outcomes[outcome] += 1
        groups[key].nodeids.append(text(c.get("nodeid")))
    out: dict[str, list[Finding]] = defaultdict(list)
    for finding in groups.values():
        out[finding.impl].append(finding)
    for items in out.values():
        items.sort(key=lambda f: -f.count)
    return dict(out)


def _without_repro(message: str, repro: str) -> str:
    """The message without its check's own repro line: shown once, beside it."""
    if not repro:
        return message
    return "\n".join(line for line in message.splitlines() if line.strip() != f"repro: {repro}")


def skip_reasons(results: dict) -> dict[str, list[tuple[str, int]]]:
    """impl -> [(first line of skip reason, count)], most common first."""
    counts: dict[str, Counter] = defaultdict(Counter)
    for c in results.get("checks") or ():
        if outcome_of(c) == "skipped":
            counts[impl_of(c)][first_line(c.get("message")) or "(no reason recorded)"] += 1
    return {impl: c.most_common() for impl, c in counts.items()}


def equivalence_checks(results: dict) -> list[dict]:
    checks = [c for c in results.get("checks") or () if is_equivalence(c)]
    return sorted(checks, key=lambda c: (text(c.get("check")), text(c.get("nodeid"))))


def measured(metrics: dict) -> str:
    """The numeric entries of a metrics dict, compactly (null ones left out)."""
    parts = []
    for key, value in metrics.items():
        value = num(value)
        if value is not None:
            parts.append(f"{key}={value:.3g}")
    return ", ".join(parts)


def params_summary(params: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in params.items())
