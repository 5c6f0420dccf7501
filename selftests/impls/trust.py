"""Drop-ins for the severity self-tests (selftests/test_trust.py): correct code written the
way users write it, which must pass the gate; and hostile text, which must not break the
files or the terminal."""

import os
from pathlib import Path

import torch
import torch.nn.functional as F

from selftests.impls.dropins import TargetDistributionCE


class Float64TorchWrapper(torch.nn.Module):
    """Correct: F.cross_entropy computed in float64, cast back. It validates nothing itself,
    so it accepts label_smoothing=-0.1 exactly as nn.CrossEntropyLoss does (a divergence)."""

    def __init__(self, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
        super().__init__()
        self.weight, self.ignore_index = weight, ignore_index
        self.reduction, self.label_smoothing = reduction, label_smoothing

    def forward(self, input, target):
        if self.label_smoothing > 1.0:
            raise ValueError("label_smoothing must be at most 1")
        weight = None if self.weight is None else self.weight.double()
        target = target.double() if target.is_floating_point() else target
        out = F.cross_entropy(input.double(), target, weight=weight, ignore_index=self.ignore_index,
                              reduction=self.reduction, label_smoothing=self.label_smoothing)
        return out.to(input.dtype)


class InfAtZeroWeight(TargetDistributionCE):
    """Correct, but a weighted mean whose total target weight is 0 returns +inf where the
    smoothing numerator is positive (x/0 as IEEE says), where PyTorch returns NaN."""

    def forward(self, input, target):
        out = super().forward(input, target)
        if self.reduction == "mean" and self.weight is not None:
            keep = target != self.ignore_index
            safe = target.masked_fill(~keep, 0)
            if float((self.weight[safe] * keep).sum()) == 0.0 and bool(keep.any()):
                return out.nan_to_num(nan=float("inf"))
        return out


class RaisesHostileText(TargetDistributionCE):
    """Its exception holds a lone surrogate, ANSI and NUL control characters, and a megabyte."""

    def forward(self, input, target):
        raise RuntimeError("\udcff bad \x1b[31mred\x1b[0m \x00 " + "x" * 1_000_000)


class ReplacesTheResultsFiles(TargetDistributionCE):
    """Correct, but on every call it replaces <LS_SABOTAGE_DIR>/results.json and report.html
    by directories (holding a file, so that nothing can remove them): the suite must still
    write every measured check somewhere and say where."""

    def forward(self, input, target):
        where = Path(os.environ["LS_SABOTAGE_DIR"])
        for name in ("results.json", "report.html"):
            if not (where / name).is_dir():
                (where / name).unlink(missing_ok=True)
                (where / name).mkdir(parents=True)
                (where / name / "keep").write_text("an implementation put this here")
        return super().forward(input, target)
