"""Synthesis chunks rendered ahead of G by worker processes, so a GPU translating them never waits (issue 17).

On a GPU, G translates a 64-image chunk in milliseconds while the 3DMM renderer (Mesa's llvmpipe, one
core) takes about 0.15 s for it: in one process, synthesis runs at the renderer's speed. With
`render_workers` > 0, spawned processes (one EGL context each: a context cannot cross a fork) sample and
render the next chunks while the main process translates, scores and writes the current one; at most
`render_workers + 1` chunks are in flight, so memory stays bounded however many images are asked for.
Sampling and rendering are deterministic functions of (seed, identity, image), so a chunk rendered by a
worker is the chunk rendered in process, pixel for pixel, and the images written are the same
(`tests/generators/test_synthesize.py`). Workers run single-threaded torch, leaving the cores to G.
"""
from __future__ import annotations

import multiprocessing
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

# per worker process: the 3DMM and renderer built once by _start_worker
_WORKER: dict[str, Any] = {}


@dataclass
class RenderedChunk:
    """One chunk's 3DMM samples and their renders, batch by batch: (uint8 NHWC images, 68 landmarks)."""

    people: dict[int, Any]  # identity index -> IdentitySample
    samples: list[tuple[Any, Any]]  # (IdentitySample, ImageSample), identities in order, then images
    batches: list[tuple[np.ndarray, np.ndarray]]


def render_chunk(model, renderer, config, identity_keys: Sequence[int] | None, identities: range) -> RenderedChunk:
    """Sample identity i's images (3DMM identity keyed (seed, identity_keys[i]), or i itself for new
    identities) and render them in `config.batch_size` batches: the chunk's fixed batches, wherever they run."""
    from generators.morphable.render import batch_from_samples
    from generators.morphable.sampling import sample_identity, sample_image, sampling_config

    def key(i: int) -> int:
        return identity_keys[i] if identity_keys is not None else i

    people = {i: sample_identity(model, config.seed, key(i)) for i in identities}
    sampling = sampling_config(config.pose)
    samples = [(people[i], replace(sample_image(model, config.seed, key(i), j, sampling), identity=i))
               for i in identities for j in range(config.per_identity)]
    batches = [renderer.render(batch_from_samples(model, samples[start : start + config.batch_size]))
               for start in range(0, len(samples), config.batch_size)]
    return RenderedChunk(people, samples, batches)


def build_renderer(config, image_size: int):
    """The configured 3DMM (decimated) and a renderer of `image_size` crops in the translator's geometry."""
    from generators.morphable.render import FaceRenderer
    from generators.render import RenderConfig, load_render_model
    from recognition.faces.align import CropGeometry

    model = load_render_model(RenderConfig(model=config.model, model_format=config.model_format,
                                           keep_triangles=config.keep_triangles))
    return model, FaceRenderer(model, CropGeometry(image_size, 0.25), config.batch_size)


def _start_worker(config, image_size: int, identity_keys: Sequence[int] | None) -> None:
    import torch

    torch.set_num_threads(1)
    _WORKER["model"], _WORKER["renderer"] = build_renderer(config, image_size)
    _WORKER["config"], _WORKER["identity_keys"] = config, identity_keys


def _render(identities: range) -> RenderedChunk:
    return render_chunk(_WORKER["model"], _WORKER["renderer"], _WORKER["config"], _WORKER["identity_keys"], identities)


class ChunkRenderPool:
    """`workers` spawned processes rendering the chunks handed to `chunks()` ahead of their use, in order."""

    def __init__(self, workers: int, config, image_size: int, identity_keys: Sequence[int] | None):
        if workers < 1:
            raise ValueError("ChunkRenderPool needs at least one worker")
        self.depth = workers + 1
        context = multiprocessing.get_context("spawn")
        self.pool = context.Pool(workers, initializer=_start_worker,
                                 initargs=(config, image_size, None if identity_keys is None else list(identity_keys)))

    def chunks(self, todo: Sequence[tuple[int, range]]) -> Iterator[tuple[int, RenderedChunk]]:
        """(chunk number, its renders) for each of `todo` in its order; the next ones render meanwhile."""
        pending, in_flight = iter(todo), deque()
        for chunk, identities in pending:
            in_flight.append((chunk, self.pool.apply_async(_render, (identities,))))
            if len(in_flight) == self.depth:
                break
        while in_flight:
            chunk, result = in_flight.popleft()
            following = next(pending, None)
            if following is not None:
                in_flight.append((following[0], self.pool.apply_async(_render, (following[1],))))
            yield chunk, result.get()

    def close(self) -> None:
        self.pool.terminate()
        self.pool.join()

    def __enter__(self) -> ChunkRenderPool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
