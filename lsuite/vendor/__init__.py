"""Single files of libraries that cannot be installed here, vendored verbatim with their
licences (LICENSE.<library> beside each file): flash_attn_cross_entropy.py is flash-attn
2.8.3's flash_attn/ops/triton/cross_entropy.py (BSD 3-Clause). Imported only when a record
that needs them is built (they import Triton)."""
