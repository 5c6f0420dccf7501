"""TransformerEngine 2.20.2's Triton cross-entropy (`transformer_engine.pytorch.parallel_cross_entropy`),
vendored from its PyPI wheel with its Apache-2.0 licence (LICENSE.transformer-engine): the
package's import loads its CUDA core. Three files, renamed by their place in the package:
common_triton_cross_entropy.py is transformer_engine/common/triton/cross_entropy.py (the
kernels), pytorch_triton_cross_entropy.py is transformer_engine/pytorch/triton/cross_entropy.py
(their launches), pytorch_cross_entropy.py is transformer_engine/pytorch/cross_entropy.py (the
autograd function and `parallel_cross_entropy`); each says in its first comment lines which
import lines were pointed at these siblings, the only change to TE's code.
(jit_stand_in.py is the suite's stand-in for the one decorator pytorch_cross_entropy.py
imports from TE's jit.py.)"""
