"""Calling a record of any input kind: in its worker (one process) or on every rank of its
group (lsuite/running/distributed.py), as its kind's topology says; and the outputs of the
ranks put together as one call's (the sharded leaf's gradient columns side by side)."""

from __future__ import annotations

import numpy as np

from lsuite.inputs.cases import shard_bounds
from lsuite.kinds import Kind, grad_name
from lsuite.running import distributed
from lsuite.running.runner import Context, Feed, Outcome, run


def outcomes(ctx: Context, kind: Kind, feed: Feed, world: int | None = None) -> list[Outcome]:
    """One Outcome per process: [the call's] for a local kind, every rank's in rank order for
    a ranks kind (at `world`, default the case's)."""
    if kind.ranks:
        return distributed.run_ranks(ctx, feed, ctx.case.world if world is None else world)
    return [run(ctx, feed)]


def merged(kind: Kind, results: list[Outcome]) -> dict[str, np.ndarray]:
    """{"value": rank 0's value, grad_name(leaf): the gradient of the whole leaf}; a sharded
    leaf's gradient is its ranks' columns side by side."""
    first = results[0]
    out = {"value": np.asarray(first.value)}
    for name in first.grads:
        if kind.call.shard == name and len(results) > 1:
            out[grad_name(name)] = np.concatenate([r.grads[name] for r in results], axis=1)
        else:
            out[grad_name(name)] = first.grads[name]
    return out


def columns(kind: Kind, name: str, K: int, rank: int, world: int) -> slice | None:
    """The columns of output `name` a rank answers for (None: all of it)."""
    if kind.call.shard != name or world == 1:
        return None
    lo, hi = shard_bounds(K, world)[rank]
    return slice(lo, hi)
