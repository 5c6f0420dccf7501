"""The vocab-parallel kind (docs/input-kinds.md): a loss called on each rank of a
torch.distributed group (lsuite/running/distributed.py: gloo on CPU, NCCL on CUDA) with that
rank's columns of the logits (the runner cuts them, the first K % world ranks one more) and
the global class-index targets. Every rank's value must be the whole vocabulary's reference
value; each rank's gradient is judged against its columns of the reference gradient. The
reference, the attainable anchor and PyTorch's yardstick are the logits kind's."""

from __future__ import annotations

import dataclasses

from lsuite.kinds.logits import LOGITS
from lsuite.running.runner import CallSpec


def why_not(impl, case) -> str | None:
    if case.world not in impl.worlds:
        return f"world size {case.world}"
    if case.K < case.world:
        return f"K = {case.K} < world {case.world}: a rank without classes"
    if case.K % case.world and not impl.uneven_shards:
        return f"K = {case.K} not divisible by world {case.world}"
    return None


VOCAB_PARALLEL = dataclasses.replace(
    LOGITS, name="vocab_parallel", serves=("vocab_parallel",), call=CallSpec(shard="logits"),
    ranks=True, axes=("world",), why_not=why_not, matrix=(("world", (2,)), ("K", (12,))),
    describe="one shard of the classes (N, K/world) per rank of a process group")
