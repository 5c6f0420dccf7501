"""Build functions made of fields: `construct` maps the suite's BuildConfig onto a loss
class's own keyword names, and `dropin` makes the whole record of an nn.CrossEntropyLoss
drop-in with whatever else it claims, so a record needs no closure:

    from lsuite import Impl, construct
    Impl(name="my_ls", build=construct(LabelSmoothingCE, eps="smoothing", reduction=None), ...)

Both are frozen dataclasses (picklable when the factory is importable), not closures.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lsuite.record.records import BuildConfig, Impl

DROP_IN_KWARGS = ("label_smoothing", "weight", "ignore_index", "reduction")


class SpecError(ValueError):
    """A SPEC that cannot be turned into a record; the message is one line."""


def accepted_kwargs(factory, spec: str = "") -> tuple[str, ...]:
    """The drop-in keyword arguments the factory's signature names. A signature with
    **kwargs says nothing about which of them it honours (a wrapper may swallow weight=):
    that needs a record, not a guess."""
    try:
        params = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return DROP_IN_KWARGS  # builtins without a signature: assume the full interface
    if any(p.kind is p.VAR_KEYWORD for p in params):
        raise SpecError(
            f"--ls-impl {spec!r}: its signature takes **kwargs, so which of "
            f"{', '.join(DROP_IN_KWARGS)} it honours is unknown; name them in the signature or "
            "write an lsuite.Impl record (docs/plugging-in.md)")
    names = {p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}
    return tuple(k for k in DROP_IN_KWARGS if k in names)


@dataclass(frozen=True)
class construct:  # noqa: N801 - used like a function: build=construct(Loss, eps="smoothing")
    """A build function made of fields: ``build(cfg)`` calls ``factory(**kwargs)`` with
    ``kwargs = {keyword: getattr(cfg, field)}`` and moves the result to ``cfg.device`` if it
    has ``.to``.

    factory: the loss class or a function returning ``loss_fn(input, target)``.
    eps, reduction, weight, ignore_index, num_classes: the factory's keyword for that field
    of BuildConfig, or None to never pass it. weight and ignore_index are passed only when the
    check passes them (otherwise the factory's defaults hold). Example:
    ``construct(SmoothedCE, eps="smoothing", reduction=None, ignore_index="pad_id")``.
    """

    factory: Callable[..., Any]
    eps: str | None = "label_smoothing"
    reduction: str | None = "reduction"
    weight: str | None = "weight"
    ignore_index: str | None = "ignore_index"
    num_classes: str | None = None

    def __call__(self, cfg: BuildConfig):
        kwargs = {}
        for field_name in ("eps", "reduction", "num_classes", "weight", "ignore_index"):
            keyword, value = getattr(self, field_name), getattr(cfg, field_name)
            if keyword is not None and value is not None:
                kwargs[keyword] = value
        made = self.factory(**kwargs)
        return made.to(cfg.device) if hasattr(made, "to") else made


def dropin(factory, *, name: str | None = None, accepted: tuple[str, ...] | None = None,
           **claims) -> Impl:
    """The record of an nn.CrossEntropyLoss drop-in (PyTorch's semantics, docs/specification.md §4) for
    the keyword arguments its signature accepts (`accepted` overrides that), with `claims`
    (any other Impl field: class_dim, nd, mutates_input, computes_in, ...) on top."""
    accepted = accepted_kwargs(factory, getattr(factory, "__name__", "")) if accepted is None else accepted
    if "label_smoothing" not in accepted:
        raise ValueError(f"{factory!r}: a drop-in must accept the keyword argument label_smoothing=")
    build = construct(factory, **{k: (k if k in accepted else None) for k in DROP_IN_KWARGS
                                  if k != "label_smoothing"})
    fields = dict(
        name=name or getattr(factory, "__name__", "dropin"), build=build, convention="inclusive",
        form="ce", description=f"drop-in for nn.CrossEntropyLoss accepting {', '.join(accepted)}",
        reductions=("none", "sum", "mean") if "reduction" in accepted else ("mean",),
        ignore_index="ignore_index" in accepted, weights="weight" in accepted,
        validates_arguments=True)
    return Impl(**(fields | claims))
