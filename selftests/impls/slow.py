"""Benchmark mutants: correct implementations that are slower or fatter in ways seen in the
field, each an `Impl` named "candidate" like the unmutated `BASELINE`, so that a run of a
mutant matches a baseline run of the original entry for entry
(selftests/test_benchmarks.py: the gate must flag every one, and nothing on the same
commit). Each computes exactly what BASELINE computes (nn.CrossEntropyLoss's inclusive
label smoothing, mean over rows); only the cost differs.
"""

import torch.nn.functional as F

from lsuite import Impl


def _baseline(cfg):
    """The fused path: one log_softmax, one gather, no N x K temporary of its own."""
    return lambda logits, target: F.cross_entropy(logits, target, label_smoothing=cfg.eps)


def _extra_clone(cfg):
    """A defensive `clone()` of the logits before the loss: one more N x K read and write,
    and one more logits-sized buffer alive for the whole call."""
    return lambda logits, target: F.cross_entropy(logits.clone(), target, label_smoothing=cfg.eps)


def _second_log_softmax(cfg):
    """log-probabilities fed to cross_entropy, which takes log_softmax again (idempotent on
    log-probabilities, so the value is right): a second pass and a second N x K output."""
    return lambda logits, target: F.cross_entropy(F.log_softmax(logits, dim=1), target,
                                                  label_smoothing=cfg.eps)


def _float64(cfg):
    """Computed in float64 and cast back: two casts of the logits, double-width passes."""
    return lambda logits, target: F.cross_entropy(logits.double(), target,
                                                  label_smoothing=cfg.eps).to(logits.dtype)


def _one_hot(cfg):
    """The smoothed target materialised as an N x K one-hot (int64, then the logits' dtype)
    and fed as probabilities: the same value as class indices without weights."""
    def loss(logits, target):
        k = logits.shape[1]
        q = F.one_hot(target, k).to(logits.dtype) * (1 - cfg.eps) + cfg.eps / k
        return F.cross_entropy(logits, q)
    return loss


_CLAIMS = dict(convention="inclusive", form="ce", reductions=("mean",), default_ignore_index=None,
               ignore_index=False, weights=False, nd=False, dtypes=("float32", "bfloat16", "float64"))

BASELINE = Impl(name="candidate", build=_baseline, **_CLAIMS)
EXTRA_CLONE = Impl(name="candidate", build=_extra_clone, **_CLAIMS)
SECOND_LOG_SOFTMAX = Impl(name="candidate", build=_second_log_softmax, **_CLAIMS)
FLOAT64 = Impl(name="candidate", build=_float64, **_CLAIMS)
ONE_HOT = Impl(name="candidate", build=_one_hot, **_CLAIMS)
MUTANTS = {"EXTRA_CLONE": EXTRA_CLONE, "SECOND_LOG_SOFTMAX": SECOND_LOG_SOFTMAX,
           "FLOAT64": FLOAT64, "ONE_HOT": ONE_HOT}


# ------------------------------------------------------- fused linear (hidden states)
# The example's chunked fused linear cross-entropy, and a "fused" record that is not: it
# forms the whole N x K logits with F.linear and calls nn.CrossEntropyLoss, so its
# peak_over_logits is at least 1 and the memory gate flags it against a baseline run of
# the example under the same name.


def _materialised_linear(cfg):
    def loss(hidden, classifier, target, bias=None):
        return F.cross_entropy(F.linear(hidden, classifier, bias), target, label_smoothing=cfg.eps)
    return loss


def _chunked_linear():
    import dataclasses

    from examples.fused_linear_cross_entropy import FUSED_LINEAR_CE

    return dataclasses.replace(FUSED_LINEAR_CE, name="fused_candidate", origin="builtin")


LINEAR_CHUNKED = _chunked_linear()
LINEAR_MATERIALISED = Impl(name="fused_candidate", build=_materialised_linear, input="hidden_states",
                           convention="inclusive", form="ce", nd=False, unbatched=False,
                           reductions=("mean",), default_ignore_index=None, ignore_index=False,
                           weights=False, description="F.linear + cross_entropy: the logits held")
