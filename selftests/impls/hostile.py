"""Implementations that attack the run rather than compute a wrong number: each must cost
at most its own checks (selftests/test_isolation.py). They compute a correct loss where
they return at all, so any failure they get is for what they did to the process."""

import ctypes
import os
import re
import signal

import torch
import torch.nn.functional as F

from lsuite import dropin
from selftests.impls.dropins import TargetDistributionCE


class _HangingCE(TargetDistributionCE):
    """A C loop that never checks for signals (catastrophic regex backtracking holds the GIL)."""

    def forward(self, input, target):
        re.match(r"(a+)+$", "a" * 64 + "b")
        return super().forward(input, target)


# Its checks get 1/20 of --ls-timeout (3 s of test_isolation.py's 60): the hang, which never
# ends, is caught at a short limit, while the drop-ins beside it keep a limit that no load
# makes a correct check reach.
HangsInC = dropin(_HangingCE, name="HangsInC", time_factor=0.05)


class ExitsTheProcess(TargetDistributionCE):
    def forward(self, input, target):
        os._exit(3)


class Segfaults(TargetDistributionCE):
    def forward(self, input, target):
        ctypes.string_at(0)


class KilledLikeOOM(TargetDistributionCE):
    """What the kernel's OOM killer does: SIGKILL to the process."""

    def forward(self, input, target):
        os.kill(os.getpid(), signal.SIGKILL)


class RaisesKeyboardInterrupt(TargetDistributionCE):
    def forward(self, input, target):
        raise KeyboardInterrupt


class RaisesSystemExit(TargetDistributionCE):
    def forward(self, input, target):
        raise SystemExit(0)


_ORIGINAL_LOG_SOFTMAX = F.log_softmax
_ORIGINAL_CROSS_ENTROPY = F.cross_entropy


def _wrong_log_softmax(input, dim=None, *args, **kwargs):
    return _ORIGINAL_LOG_SOFTMAX(input, dim, *args, **kwargs) * 2


def _wrong_cross_entropy(*args, **kwargs):
    return _ORIGINAL_CROSS_ENTROPY(*args, **kwargs) * 1.03


class PoisonsGlobalState(TargetDistributionCE):
    """A correct loss that, on the way out, changes torch's global state and patches
    F.log_softmax and F.cross_entropy (which the judge's own yardstick uses)."""

    def forward(self, input, target):
        out = super().forward(input, target)
        torch.set_default_dtype(torch.float64)
        torch.set_num_threads(1)
        torch.use_deterministic_algorithms(True)
        torch.set_anomaly_enabled(True)
        F.log_softmax = _wrong_log_softmax
        F.cross_entropy = _wrong_cross_entropy
        return out


class SlowButCorrect(TargetDistributionCE):
    """Correct, and 0.3 s per call: --ls-impl-budget cuts its run short."""

    def forward(self, input, target):
        import time

        time.sleep(0.3)
        return super().forward(input, target)
