"""One device policy for every stage: which device, which precision, and how modules and checkpoints get there.

Every command takes `--device auto|cpu|cuda|cuda:N` and `--precision fp32|bf16|fp16` through
`add_device_arguments`, so a user learns one vocabulary. `auto` is this process's GPU when CUDA exists
(LOCAL_RANK under torchrun), else the CPU. Precision follows what the hardware does well: bf16 autocast
on CPUs and on GPUs that support it (no loss scaling: bf16 has fp32's range), fp16 autocast with a
`torch.amp.GradScaler` on older GPUs; asking for what the device cannot do is a `UserError`, never a
silent fallback, because a silent fp32 run on a GPU would be 2-3x slower without anyone noticing.

Modules are built inside the device context (`build_on`), so parameters and constant buffers are born
on the device: nothing is built on the CPU and copied, and a module that leaves a tensor behind is
caught by the fake-CUDA tests (tests/common/test_devices.py), which cannot move modules. Small random
draws (crops, flips, batch indices) stay on CPU generators on purpose: a seed then gives the same crops
on any device and a checkpoint's RNG state resumes on another device type. Checkpoints are always
read with `map_location` (`load_checkpoint`), so a run written on a GPU resumes on the CPU and back.
"""
from __future__ import annotations

import argparse
import contextlib
import logging
import os
import pickle
import zipfile
from collections.abc import Callable
from itertools import chain
from pathlib import Path
from typing import Any, TypeVar

import torch

from bench.common.cli import UserError

PRECISIONS = ("fp32", "bf16", "fp16", "auto")
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
Module = TypeVar("Module", bound=torch.nn.Module)


def cuda_device_count() -> int:
    """GPUs this process can use (0 without a working CUDA); the one place the policy asks torch.cuda."""
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def resolve_device(spec: str | torch.device | None = "auto") -> torch.device:
    """`auto`, `cpu`, `cuda` or `cuda:N` -> an indexed torch.device; UserError when the GPU is not there.

    `auto` and bare `cuda` pick LOCAL_RANK's GPU, so torchrun's processes each take their own.
    """
    if isinstance(spec, torch.device):
        spec = str(spec)
    spec = (spec or "auto").strip().lower()
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if spec == "auto":
        spec = "cuda" if cuda_device_count() else "cpu"
    if spec == "cpu":
        return torch.device("cpu")
    if spec != "cuda" and not spec.startswith("cuda:"):
        raise UserError(f"--device {spec}: choose auto, cpu, cuda or cuda:N")
    count = cuda_device_count()
    if not count:
        raise UserError(f"--device {spec}: this machine has no usable CUDA GPU (torch {torch.__version__}, "
                        f"CUDA build {torch.version.cuda}); use --device cpu or auto")
    try:
        index = local if spec == "cuda" else int(spec.split(":", 1)[1])
    except ValueError:
        raise UserError(f"--device {spec}: the GPU index must be a number, as in cuda:0") from None
    if not 0 <= index < count:
        raise UserError(f"--device {spec}: GPU {index} does not exist (this machine has {count})")
    return torch.device("cuda", index)


def configure_device(device: torch.device) -> None:
    """Make `device` current and let CUDA pick fast kernels: TF32 matmuls and convolutions (10 mantissa bits,
    ample for GAN and softmax training, as torchvision's references allow) and cuDNN's autotuner (the
    shapes of a training run never change). Nothing happens on the CPU, so CPU numerics stay as they were."""
    if device.type != "cuda":
        return
    torch.cuda.set_device(device)
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    torch.backends.cudnn.benchmark = True


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 in hardware (AVX-512 BF16 or AMX, from /proc/cpuinfo on Linux).

    Without it, bf16 autocast is emulated and slow: measured on an AVX2-only AMD EPYC host of this
    project, 20-25x slower than fp32 for the dlib ResNet and OpenFace NN4 (results/perf/embedders.md),
    while the same VM on an AVX-512 BF16 host ran bf16 1.4x faster than fp32."""
    try:
        flags = next((line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")), "")
    except OSError:
        return False
    return bool({"avx512_bf16", "amx_bf16"} & set(flags.split()))


def check_precision(precision: str, device: torch.device) -> str:
    """`precision` when `device` runs it well; a UserError that says what to use instead otherwise.

    `auto` resolves to what the hardware does fast: bf16 on GPUs that support it and on CPUs with
    native bf16, fp16 (with loss scaling) on older GPUs, fp32 on other CPUs."""
    if precision not in PRECISIONS:
        raise UserError(f"--precision {precision}: choose one of {', '.join(PRECISIONS)}")
    if precision == "auto":
        if device.type == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return "bf16" if device.type == "cpu" and cpu_has_native_bf16() else "fp32"
    if precision == "fp16" and device.type != "cuda":
        raise UserError("--precision fp16 needs a CUDA GPU (fp16 autocast with loss scaling); on the CPU use bf16 "
                        "or fp32")
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise UserError(f"--precision bf16: {torch.cuda.get_device_name(device)} has no bf16; use fp16 (loss "
                        "scaling) or fp32")
    if precision == "bf16" and device.type == "cpu" and not cpu_has_native_bf16():
        logging.getLogger(__name__).warning("--precision bf16 on a CPU without native bf16 (no AVX-512 BF16/AMX): "
                                            "emulated, often 10x slower than fp32; --precision auto picks fp32 here")
    return precision


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """Autocast for the precision on the device's type; a disabled autocast for fp32 (CPU numerics unchanged)."""
    return torch.autocast(device.type, dtype=DTYPES.get(precision, torch.bfloat16), enabled=precision in DTYPES)


def grad_scaler(device: torch.device, precision: str) -> torch.amp.GradScaler:
    """fp16's loss scaler; disabled (scale, unscale and step pass through) for fp32 and bf16."""
    return torch.amp.GradScaler(device.type, enabled=precision == "fp16")


def build_on(device: torch.device, factory: Callable[..., Module], *args: Any, **kwargs: Any) -> Module:
    """`factory(*args, **kwargs)` built inside the device context, then anything left elsewhere moved.

    On the CPU this is exactly `factory(...)`: the same parameter draws as before the device policy.
    """
    with device:
        module = factory(*args, **kwargs)
    return move_module(module, device)


def move_module(module: Module, device: torch.device) -> Module:
    """`module.to(device)` unless every parameter and buffer is there already (no copy, no fake-mode swap)."""
    if any(t.device != device for t in chain(module.parameters(), module.buffers())):
        module.to(device)
    return module


def to_device(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A batch on the device; asynchronous from pinned host memory (DataLoader's pin_memory)."""
    return tensor.to(device, non_blocking=tensor.device.type == "cpu" and device.type == "cuda")


def load_checkpoint(path: Path, device: torch.device | str = "cpu", weights_only: bool = False) -> dict:
    """A checkpoint written on any device, its tensors mapped to `device` (a GPU run resumes on the CPU).
    An empty, truncated or damaged file is a UserError naming it."""
    try:
        return torch.load(path, map_location=torch.device(device), weights_only=weights_only)
    except (EOFError, RuntimeError, pickle.UnpicklingError) as error:
        if isinstance(error, RuntimeError) and zipfile.is_zipfile(path):
            raise  # the archive is whole: not a damaged file
        size = Path(path).stat().st_size
        cause = "is empty (0 bytes)" if size == 0 else \
            f"is truncated or damaged ({size} bytes; {str(error).splitlines()[0][:100] or type(error).__name__})"
        raise UserError(f"checkpoint {path} {cause}: restore it from a copy, or delete it to start again") from None


def add_device_arguments(parser: argparse.ArgumentParser, precision_default: str = "the preset's") -> None:
    """--device and --precision, the same on every command."""
    parser.add_argument("--device", default="auto",
                        help="auto (this process's GPU when CUDA exists, else the CPU), cpu, cuda or cuda:N")
    parser.add_argument("--precision", choices=PRECISIONS, default=None,
                        help=f"fp32; bf16 autocast (CPUs with AVX-512 BF16/AMX, Ampere+ GPUs); fp16 autocast + loss scaling "
                             f"(older GPUs); auto: the fastest of these the hardware runs natively. "
                             f"Default: {precision_default}")


def precision_from_arguments(args: argparse.Namespace) -> str | None:
    """--precision, or the older --bf16/--no-bf16 switch as its alias (bf16 / fp32); None = keep the default."""
    bf16 = getattr(args, "bf16", None)
    if args.precision is not None and bf16 is not None and args.precision != ("bf16" if bf16 else "fp32"):
        raise UserError(f"--precision {args.precision} contradicts --{'' if bf16 else 'no-'}bf16; pass one of them")
    if args.precision is not None:
        return args.precision
    return None if bf16 is None else ("bf16" if bf16 else "fp32")
