"""The machine a run measured on: CPU model, threads, GPUs, versions (beside benchmarks)."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import torch


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo on Linux), else what platform knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cores() -> int:
    """CPU cores this process may run on (its affinity; os.cpu_count() where there is none)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def machine_info() -> dict:
    """CPU model, threads, GPU name and memory, torch/CUDA versions: beside every benchmark."""
    info = {
        "cpu": cpu_model(), "cpu_count": os.cpu_count(), "cpu_cores_available": cores(),
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(), "torch": torch.__version__,
        "cuda_version": torch.version.cuda, "python": platform.python_version(), "gpus": [],
    }
    if torch.cuda.is_available():
        info["cudnn"] = torch.backends.cudnn.version()
        for i in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(i)
            info["gpus"].append({"name": props.name, "memory_bytes": props.total_memory,
                                 "capability": f"{props.major}.{props.minor}"})
    return info
