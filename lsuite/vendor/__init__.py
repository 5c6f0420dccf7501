"""Single files of libraries that cannot be installed here, vendored verbatim with their
licences (LICENSE.<library> beside each file): flash_attn_cross_entropy.py is flash-attn
2.8.3's flash_attn/ops/triton/cross_entropy.py (BSD 3-Clause); transformer_engine_2_20_2/ and
transformer_engine_2_18_0/ hold TransformerEngine's Triton cross-entropy at those versions, three
files each with their import lines pointed at their siblings (Apache 2.0; each package's
docstring names the files). Imported only when a record that needs them is built (they import
Triton)."""
