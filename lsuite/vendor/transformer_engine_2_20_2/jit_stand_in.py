"""Not TransformerEngine's code: a stand-in for the one name the vendored pytorch_cross_entropy.py
imports from `transformer_engine.pytorch.jit`, whose module imports TE's ONNX export and utils
modules (and through them its CUDA core). TE 2.20.2's `no_torch_dynamo(recursive=True, when=None)`
returns `torch._dynamo.disable(f, recursive=recursive)` except during ONNX export; here it is that
call, with `when` (unused by the cross-entropy file) refused. It decorates only
`_parallel_cross_entropy_overwrite_input`, the `overwrite_input=True` path, which the suite's
records do not take."""

from __future__ import annotations


def no_torch_dynamo(recursive=True, when=None):
    if when is not None:
        raise NotImplementedError("the stand-in no_torch_dynamo takes no `when`")

    def decorator(f):
        import torch._dynamo

        return torch._dynamo.disable(f, recursive=recursive)

    return decorator
