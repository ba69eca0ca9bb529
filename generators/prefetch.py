"""The translator's inputs prepared ahead of the step in worker processes, without changing a single draw.

A GPU step takes milliseconds; rendering 3DMM faces (one EGL context, single-threaded in llvmpipe) and
decoding PNGs take tens. With `data_workers` > 0 the trainer keeps `data_workers + 1` batches in flight:
the main process makes every random decision (which identities and images the stream takes, which real
photos and pairs `rng` picks) in the same order as without workers, and the workers only carry out
those decisions: render the chosen (identity, image) pairs and decode the chosen files. The batches are
therefore identical to the in-process ones, and a checkpoint records the draw state as of the last batch
*consumed*, not the last one drawn, so a resume continues exactly (the prefetched batches are drawn again).

Each worker is a spawned process with its own renderer (an EGL context cannot cross a fork) and
reads the same folders; `torch.set_num_threads(1)` keeps them off the step's cores.
"""
from __future__ import annotations

import copy
import multiprocessing
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

# per worker process: the streams built once by _start_worker
_WORKER: dict[str, Any] = {}


def _start_worker(config, real_files: list[Path], pair_files: tuple[list[Path], list[Path]] | None) -> None:
    from generators.streams import FolderImages, SyntheticStream

    torch.set_num_threads(1)
    size = config.network.image_size
    _WORKER["synthetic"] = SyntheticStream(config)
    _WORKER["real"] = FolderImages(real_files, size)
    _WORKER["pairs"] = None if pair_files is None else (FolderImages(pair_files[0], size), FolderImages(pair_files[1], size))


def pack(tensor: torch.Tensor) -> tuple[np.ndarray, tuple[int, ...]]:
    """A tensor as a contiguous array in its memory order plus the permutation back: pickling a numpy array
    makes it C-contiguous, and the renders are channels-last in memory, for which oneDNN picks other
    convolution kernels (other rounding) than for a contiguous batch. `unpack` restores the strides."""
    order = tuple(sorted(range(tensor.dim()), key=lambda d: (-tensor.stride(d), d)))
    return tensor.permute(order).contiguous().numpy(), order


def unpack(packed: tuple[np.ndarray, tuple[int, ...]]) -> torch.Tensor:
    array, order = packed
    return torch.from_numpy(array).permute(tuple(np.argsort(order).tolist()))


def _prepare(decisions: dict) -> dict[str, tuple]:
    """Carry out one batch's decisions in a worker, packed for the trip back."""
    from generators.streams import prepare_batch

    batch = prepare_batch(decisions, _WORKER["synthetic"], _WORKER["real"], _WORKER["pairs"])
    return {name: pack(value) for name, value in batch.items()}


class BatchPrefetcher:
    """Batches `depth` steps ahead, prepared by `workers` spawned processes, in the order they were drawn.

    `draw()` makes the next batch's decisions in the main process (and so advances the stream and rng);
    `state()` snapshots everything that drawing advances. The prefetcher keeps, per batch in flight, the
    snapshot taken after its draw, so `consumed_state()` is the state a checkpoint must hold.
    """

    def __init__(self, workers: int, draw: Callable[[], dict], state: Callable[[], dict], config,
                 real_files: list[Path], pair_files: tuple[list[Path], list[Path]] | None):
        self.draw, self.state = draw, state
        self.depth = workers + 1
        self._consumed = copy.deepcopy(state())
        context = multiprocessing.get_context("spawn")
        self.pool = context.Pool(workers, initializer=_start_worker, initargs=(config, real_files, pair_files))
        self.in_flight: deque = deque()

    def _fill(self) -> None:
        while len(self.in_flight) < self.depth:
            decisions = self.draw()
            self.in_flight.append((self.pool.apply_async(_prepare, (decisions,)), copy.deepcopy(self.state())))

    def next(self) -> dict[str, torch.Tensor]:
        """The next batch as CPU tensors with the strides the worker made them with, in draw order."""
        self._fill()
        pending, snapshot = self.in_flight.popleft()
        batch = pending.get()
        self._consumed = snapshot
        self._fill()  # the next draws start while the step computes
        return {name: unpack(value) for name, value in batch.items()}

    def consumed_state(self) -> dict:
        """The draw state right after the last batch handed out: what a checkpoint records."""
        return self._consumed

    def close(self) -> None:
        self.pool.terminate()
        self.pool.join()
