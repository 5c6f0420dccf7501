"""Interpreted Triton typed as compiled Triton (issue 24).

Compiled Triton passes a Python float kernel argument as an fp32 scalar
(`triton.runtime.jit.mangle_type(0.9) == "fp32"`), so `half_tensor * float_arg` promotes to
fp32 (language/semantic.py, computation_type_impl rule 3). Triton 3.9's interpreter
(TRITON_INTERPRET=1) hands the kernel the Python float itself (`_implicit_cvt` converts
ints, bools and tensors, not floats), which the scalar rule keeps out of the promotion: the
product stays bfloat16/float16, and in bfloat16 it is not even the rounded product (a probe
kernel gave 12.875 x 0.9 = 8.8e-06). Every half-precision kernel that scales its input by a
float argument then fails under the interpreter for the interpreter's sake.

`follow_compiled_typing()` makes the interpreter convert a non-constexpr float argument to
an fp32 scalar, as compiled code has it. It is applied in the process that runs an
implementation (lsuite/running/runner.py) once Triton's interpreter is loaded, and changes nothing
else: a kernel's own half-precision stores (the Liger-Kernel PR #1268 in-place bfloat16
gradient) are computed as before and still fail. Left as the interpreter has it, and said
here: its float32 -> bfloat16 casts truncate (compiled: round to nearest even), at most one
bfloat16 ulp more than a compiled kernel's rounding.
"""

from __future__ import annotations

import os
import sys

NOTE = ("Triton interpreter typed as compiled Triton: a float kernel argument is an fp32 scalar "
        "(lsuite/catalogs/triton_typing.py); this touches the bfloat16/float16 checks of Triton kernels")
_INTERPRETER = "triton.runtime.interpreter"


def follow_compiled_typing() -> bool:
    """Patch the loaded interpreter (idempotent); False when it is not in use or not loaded."""
    module = sys.modules.get(_INTERPRETER)
    if os.environ.get("TRITON_INTERPRET") != "1" or module is None:
        return False
    original = getattr(module, "_implicit_cvt", None)
    if original is None or getattr(original, "ls_compiled_typing", False):
        return original is not None
    language, jit = sys.modules["triton.language"], sys.modules["triton.runtime.jit"]
    numpy = sys.modules["numpy"]

    def implicit_cvt(arg):
        if isinstance(arg, float):
            ty = language.str_to_ty(jit.mangle_type(arg), None)
            return language.tensor(module.TensorHandle(numpy.array([arg], dtype=numpy.float32), ty), ty)
        return original(arg)

    implicit_cvt.ls_compiled_typing = True
    module._implicit_cvt = implicit_cvt
    return True
