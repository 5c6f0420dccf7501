"""What a check's record takes (its `input` kind) and which gradients the check judged:
the schema-2 fields of a check in results.json (docs/results-schema.md), and the same fields
derived from the metrics of a schema-1 file, which did not record them.

- `input`: the record's input kind ("logits", "log_probs", "hidden_states",
  "vocab_parallel"), from the implementation's record in environment.impls.
- `world`: the ranks a vocab-parallel check ran on (its case's `world`), else null.
- `gradients`: {name: {max_abs_err, max_rel_err, budget, baseline_abs_err,
  attainable_abs_err}} for every gradient the check judged against the reference:
  "logits" for the logits records; "hidden", "classifier", "bias" (dh, dW, db) for a
  hidden-states record; "rank0", "rank1", ... (each rank's shard of the logits gradient,
  with its "rank") for a vocab-parallel record, whose metrics also name the worst rank.

Plain standard library: lsuite/pytest_plugin/results.py writes these fields with `check_fields`, the
renderer reads them with `gradients_of` (which derives them for a schema-1 check).
"""

from __future__ import annotations

import re

LOGITS, LOG_PROBS, HIDDEN, VOCAB_PARALLEL = "logits", "log_probs", "hidden_states", "vocab_parallel"
LOGITS_INPUTS = (LOGITS, LOG_PROBS)  # both are judged on the logits' gradient
# the matrix and accuracy sections, in this order, and their titles
SECTIONS = ((LOGITS, "Logits records"),
            (HIDDEN, "Hidden-states records (fused linear cross-entropy)"),
            (VOCAB_PARALLEL, "Vocab-parallel records"))
# the names gradients go by in the report (docs/input-kinds.md)
LABELS = {"logits": "d logits", "hidden": "dh (hidden)", "classifier": "dW (classifier)",
          "bias": "db (bias)"}
# what a gradient's metrics are called in a check's metrics, after the prefix "grad" or
# "grad_<name>" (lsuite/checks/reference.py Judged.metrics)
FIELDS = ("max_abs_err", "max_rel_err", "budget", "baseline_abs_err", "attainable_abs_err")
_NAMED = re.compile(r"grad_([a-z0-9]+)_max_abs_err")
_RANK = re.compile(r"rank([0-9]+)")
# the backend lsuite/running/distributed.py starts a group with, per device
BACKENDS = {"cpu": "gloo", "cuda": "nccl"}


def section_of(input_kind: str) -> str:
    """The matrix/accuracy section an input kind belongs to (unknown kinds: logits)."""
    return input_kind if input_kind in (HIDDEN, VOCAB_PARALLEL) else LOGITS


def label(name: str, world=None) -> str:
    """A gradient's name in words: "dh (hidden)", "shard of rank 1 (world 2)"."""
    rank = _RANK.fullmatch(name)
    if rank:
        return f"shard of rank {rank.group(1)}" + (f" (world {world})" if world is not None else "")
    if name == "worst_rank":
        return "shard of the worst rank" + (f" (world {world})" if world is not None else "")
    return LABELS.get(name, name)


def _num(value):
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _entry(metrics: dict, prefix: str) -> dict:
    return {"max_abs_err": _num(metrics.get(f"{prefix}_max_abs_err")),
            "max_rel_err": _num(metrics.get(f"{prefix}_max_rel_err")),
            "budget": _num(metrics.get(f"{prefix}_budget")),
            "baseline_abs_err": _num(metrics.get(f"baseline_{prefix}_abs_err")),
            "attainable_abs_err": _num(metrics.get(f"attainable_{prefix}_abs_err")),
            "within": _flag(metrics.get(f"{prefix}_within"))}


def _flag(value) -> bool | None:
    """A recorded verdict of one gradient (True: within its budget), None when not recorded
    (schema 1, or a gradient whose check recorded no verdict for it)."""
    return value if isinstance(value, bool) else None


def derive_gradients(metrics: dict, input_kind: str | None) -> dict[str, dict]:
    """The judged gradients and their metrics, from a check's flat metrics (schema 1 and 2
    record the same metric names); a gradient with no number recorded is left out."""
    if not isinstance(metrics, dict):
        return {}
    out: dict[str, dict] = {}
    for key in metrics:
        found = _NAMED.fullmatch(str(key))
        if found:
            out[found.group(1)] = _entry(metrics, f"grad_{found.group(1)}")
    if "grad_max_abs_err" in metrics:  # the logits' gradient, or a vocab-parallel worst rank
        plain = _entry(metrics, "grad")
        if input_kind == VOCAB_PARALLEL:
            if not any(_RANK.fullmatch(n) for n in out):  # schema 1: only the worst rank
                out["worst_rank"] = plain
        elif input_kind != HIDDEN:
            out["logits"] = plain
    for name, entry in out.items():
        rank = _RANK.fullmatch(name)
        if rank:
            entry["rank"] = int(rank.group(1))
    return {n: e for n, e in out.items() if any(e[f] is not None for f in FIELDS)}


def input_kinds(environment) -> dict[str, str]:
    """Implementation name -> its record's input kind, from environment.impls."""
    impls = environment.get("impls") if isinstance(environment, dict) else None
    out = {}
    for record in impls if isinstance(impls, list) else ():
        if isinstance(record, dict) and isinstance(record.get("name"), str):
            kind = record.get("input")
            out.setdefault(record["name"], kind if isinstance(kind, str) and kind else LOGITS)
    return out


def input_of(check: dict, kinds: dict[str, str]) -> str:
    """A check's input kind: the recorded one (schema 2), else its record's, else logits."""
    kind = check.get("input")
    if isinstance(kind, str) and kind:
        return kind
    return kinds.get(str(check.get("impl")), LOGITS)


def world_of(check: dict, kinds: dict[str, str]) -> int | None:
    """The world size a vocab-parallel check ran on (schema 2 `world`, else its params')."""
    if input_of(check, kinds) != VOCAB_PARALLEL:
        return None
    world = _num(check.get("world"))
    if world is None:
        params = check.get("params")
        world = _num(params.get("world")) if isinstance(params, dict) else None
    return int(world) if world is not None and world == world and abs(world) < 2 ** 31 else None


def gradients_of(check: dict, kinds: dict[str, str]) -> dict[str, dict]:
    """The gradients a check judged: the recorded `gradients` (schema 2) where they are an
    object of objects, else derived from its metrics."""
    recorded = check.get("gradients")
    if isinstance(recorded, dict) and all(isinstance(v, dict) for v in recorded.values()):
        return {str(n): {f: _num(e.get(f)) for f in FIELDS} | {"within": _flag(e.get("within"))}
                | ({"rank": e["rank"]} if _num(e.get("rank")) is not None else {})
                for n, e in recorded.items()}
    metrics = check.get("metrics")
    return derive_gradients(metrics if isinstance(metrics, dict) else {}, input_of(check, kinds))


def check_fields(check: dict, kinds: dict[str, str]) -> dict:
    """The schema-2 fields of a check (lsuite/pytest_plugin/results.py adds them to every check):
    `gradients` from the check's recorded judgement (`judged`: {output: {...}}, the value
    and each gradient by name), else derived from the metrics of a check that recorded none."""
    kind = input_of(check, kinds)
    judged = check.get("judged")
    if isinstance(judged, dict) and all(isinstance(v, dict) for v in judged.values()):
        gradients = {str(n): {f: _num(e.get(f)) for f in FIELDS} | {"within": _flag(e.get("within"))}
                     | ({"rank": int(e["rank"])} if _num(e.get("rank")) is not None else {})
                     for n, e in judged.items() if n != "value"}
    else:
        metrics = check.get("metrics")
        gradients = derive_gradients(metrics if isinstance(metrics, dict) else {}, kind)
    return {"input": kind, "world": world_of(check, kinds), "gradients": gradients}
