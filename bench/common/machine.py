"""The machine a result was computed on, recorded beside the result.

Floating-point results here are reproducible bit for bit only on the same machine with the same thread
count and library versions. Another CPU runs other kernels (torch dispatches its own kernels to AVX2 or
AVX-512, oneDNN picks convolution kernels by instruction set), another thread count splits reductions
differently, and other torch/numpy releases change both; each moves the last bits, and a few training
iterations amplify them into a different LFW accuracy. So every record says where it was made
(`metrics.json`, `bench.perf` records, the `bench.regress` baseline), and a difference between
machines is judged against the regression tolerances, not against equality (README, "Reproducibility").

This module imports no torch (the metric writers must stay framework-free): it describes torch only
when the process has already loaded it, which every process that computes with torch has.
"""
from __future__ import annotations

import os
import platform
import sys
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

VECTOR_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")  # the extensions that change which kernels run


def cpu_description(cpuinfo: Path = Path("/proc/cpuinfo")) -> dict[str, Any]:
    """The CPU model and its widest vector extensions, from /proc/cpuinfo (Linux): the same VM can
    move between hosts (AVX-512 with BF16, or AVX2 only), which changes timings, bf16 most, and the
    last bits of convolutions. Empty where there is no /proc/cpuinfo."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return {}
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    fields = {key.strip(): value.strip() for key, value in fields.items()}
    flags = set(fields.get("flags", "").split())
    return {"cpu_model": fields.get("model name", ""),
            "cpu_vector_flags": " ".join(flag for flag in VECTOR_FLAGS if flag in flags)}


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def machine() -> dict[str, Any]:
    """Everything that can change a floating-point result between two runs of the same code and data:
    CPU and its vector extensions, the kernels torch dispatches to, thread count, library versions.

    No date: two runs of one computation on one machine write identical records."""
    torch = sys.modules.get("torch")  # described if loaded, never imported here (see the module docstring)
    return {
        "python": sys.version.split()[0],
        "torch": torch.__version__ if torch else _version("torch"),
        "numpy": _version("numpy"),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads() if torch else None,
        "torch_cpu_kernels": torch.backends.cpu.get_cpu_capability() if torch else None,
        "processor": platform.processor() or platform.machine(),
        **cpu_description(),
    }


def describe_machine(host: Mapping[str, Any] | None) -> str:
    """One line for people: CPU model (vector flags), torch version, thread count; "not recorded" for None."""
    if not host:
        return "not recorded"
    cpu = host.get("cpu_model") or host.get("processor") or "unknown CPU"
    flags = host.get("cpu_vector_flags") or "flags unknown"
    kernels = f", {host['torch_cpu_kernels']} kernels" if host.get("torch_cpu_kernels") else ""
    threads = host.get("torch_threads")
    return f"{cpu} ({flags}), torch {host.get('torch', '?')}{kernels}, {threads if threads else '?'} threads"
