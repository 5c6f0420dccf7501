"""The ecosystem records' adapters where the suite's checks cannot see them: Megatron's
tensor-parallel state, built once per process and group and rebuilt when the group changes
(a rank process may build records for several checks), and its loss at world 1 against the
exclusive convention its docstring derives (the vocab-parallel checks run world 2 and 4,
where its local-shard smoothing is a declared defect); TransformerEngine's argument validation,
run on CPU tensors as on CUDA ones bar the device check."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = r"""
import numpy as np, torch, torch.distributed as dist
from lsuite.catalogs import peers

def group():
    store = dist.TCPStore("127.0.0.1", 0, 1, True)  # port 0: the kernel picks one
    dist.init_process_group("gloo", store=store, rank=0, world_size=1)
    return dist.group.WORLD

first = group()
peers.megatron_tensor_parallel(1, 0, first)
ps = peers._megatron("megatron.core.parallel_state")
built = ps.get_tensor_model_parallel_group()
peers.megatron_tensor_parallel(1, 0, first)
print("kept", ps.get_tensor_model_parallel_group() is built)
dist.destroy_process_group()
second = group()
peers.megatron_tensor_parallel(1, 0, second)
print("rebuilt", ps.get_tensor_model_parallel_group() is not built)

K, eps = 12, 0.1
z = np.random.default_rng(0).normal(size=(4, K)); y = np.array([0, 3, 7, 11])
logp = z - np.log(np.exp(z - z.max(1, keepdims=True)).sum(1, keepdims=True)) - z.max(1, keepdims=True)
q = np.full(z.shape, eps / (K - 1)); q[np.arange(4), y] = 1 - eps
cfg = type("Cfg", (), dict(world=1, rank=0, group=second, eps=eps))()
loss = peers.MegatronVocabParallelCE(cfg)(torch.tensor(z), torch.tensor(y))
print("exclusive", float(np.abs(loss.double().numpy() + (q * logp).sum(1)).max()))
dist.destroy_process_group()
"""


@pytest.mark.skipif(importlib.util.find_spec("megatron") is None, reason="megatron-core not installed")
def test_megatron_parallel_state_is_kept_per_group_and_rebuilt_for_a_new_one():
    proc = subprocess.run([sys.executable, "-W", "ignore", "-c", SCRIPT], cwd=ROOT,
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = dict(line.split(" ", 1) for line in proc.stdout.splitlines())
    assert lines["kept"] == "True", "a second build on the same group rebuilt Megatron's state"
    assert lines["rebuilt"] == "True", "a build on a new default group kept the stale state"
    assert float(lines["exclusive"]) < 1e-6  # float32 arithmetic on a float64 input


TE_SCRIPT = r"""
import contextlib, os
os.environ["TRITON_INTERPRET"] = "1"
import numpy as np, torch
from lsuite.catalogs import peers_te
from lsuite.record.records import BuildConfig

z = np.random.default_rng(0).standard_normal((3, 12)) * 3; y = np.array([0, 5, 11])
module = peers_te.te_module("2.20.2")
x, t = torch.tensor(z, dtype=torch.float32).unsqueeze(1), torch.tensor(y).unsqueeze(1)
for what, args in (("cuda", (x, t, 0.1)), ("eps", (x, t, 1.5)), ("dtype", (x.double(), t, 0.1))):
    try:
        with peers_te.cuda_check_passes_on_cpu(module, x.device) if what != "cuda" else contextlib.nullcontext():
            module.parallel_cross_entropy(*args)
        print(what, "accepted")
    except (ValueError, TypeError) as error:
        print(what, str(error).replace(" ", "_"))
print("restored", torch.zeros(1).is_cuda)
for version in peers_te.VENDORED:
    cfg = BuildConfig(eps=0.1, reduction="none", num_classes=12, device="cpu", dtype=torch.float32)
    loss = peers_te.TransformerEngineParallelCE(version)(cfg)(torch.tensor(z, dtype=torch.float32), torch.tensor(y))
    print(version, " ".join(f"{v:.6f}" for v in loss.tolist()))
"""


@pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="triton not installed")
def test_transformer_engine_validates_on_cpu_as_on_cuda_bar_the_device():
    """TE 2.20.2 refuses a CPU tensor; the record's patch lets its validation run as shipped
    otherwise (eps outside [0, 1] and float64 still refused), then restores Tensor.is_cuda.
    Both versions at world 1 give the inclusive loss NumPy gives (docs/catalogs.md)."""
    proc = subprocess.run([sys.executable, "-W", "ignore", "-c", TE_SCRIPT], cwd=ROOT,
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = dict(line.split(" ", 1) for line in proc.stdout.splitlines())
    assert lines["cuda"] == "inp_must_be_a_CUDA_tensor"
    assert lines["eps"].startswith("label_smoothing_must_be_in_[0,_1]")
    assert lines["dtype"].startswith("inp_must_have_BF16_or_FP32_dtype")
    assert lines["restored"] == "False"
    for version in ("2.20.2", "2.18.0"):
        assert lines[version] == "4.061301 5.445269 2.464228", version
