"""The distributed set-up both trainers and synthesis share: torchrun's environment, DDP unwrapping
and the two collectives the translator uses. gloo on CPUs, nccl on GPUs."""
from __future__ import annotations

import os

import torch


def distributed_rank_and_size(device: torch.device | None = None) -> tuple[int, int]:
    """(rank, world size); initialises torch.distributed when launched by torchrun: nccl when the process
    trains on a GPU, gloo on the CPU. `device` is the process's device (bench.common.devices.resolve_device);
    None means LOCAL_RANK's GPU when CUDA exists, as before the device policy.

    With nccl each process must own its GPU before the process group exists (collectives and NCCL's
    communicator run on the current device; otherwise every rank piles onto GPU 0 or hangs), so the
    device is made current first and handed to the process group.
    """
    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        if device is None:
            local = int(os.environ.get("LOCAL_RANK", "0"))
            device = torch.device("cuda", local) if torch.cuda.is_available() else torch.device("cpu")
        if device.type == "cuda":
            torch.cuda.set_device(device)
            dist.init_process_group("nccl", device_id=device)
        else:
            dist.init_process_group("gloo")
    return (dist.get_rank(), dist.get_world_size()) if world > 1 else (0, 1)


def bare(network: torch.nn.Module) -> torch.nn.Module:
    """The module inside a DistributedDataParallel wrapper (used as a frozen function, without DDP hooks)."""
    return getattr(network, "module", network)


def mean_across_ranks(values: list[float], world: int) -> list[float]:
    """The mean of each value over all ranks (float64, on the backend's device)."""
    if world == 1:
        return values
    import torch.distributed as dist

    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return (tensor / world).tolist()


def gather_across_ranks(embeddings: torch.Tensor, labels: torch.Tensor, world: int,
                        differentiable: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Every rank's (embeddings, labels), concatenated in rank order.

    `differentiable`: gradients flow back to each rank's own embeddings (torch.distributed.nn's
    all_gather; every rank must pass the same batch size), on the embeddings' device. Otherwise the
    result is detached and on the CPU.
    """
    if world == 1:
        return embeddings, labels
    import torch.distributed as dist

    if differentiable:
        from torch.distributed.nn.functional import all_gather

        device_labels = labels.to(embeddings.device)
        gathered_labels = [torch.empty_like(device_labels) for _ in range(world)]
        dist.all_gather(gathered_labels, device_labels)
        return torch.cat(all_gather(embeddings)), torch.cat(gathered_labels).to(labels.device)

    gathered: list = [None] * world
    dist.all_gather_object(gathered, (embeddings.cpu(), labels.cpu()))
    return torch.cat([e for e, _ in gathered]), torch.cat([l for _, l in gathered])
