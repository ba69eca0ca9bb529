"""The translator's three data streams (Sec. 3): real photos R, 3DMM renders S, and (render, photo) pairs.

Real photos and pairs are folders of aligned crops (`generators.real_faces`, `generators.pairs`); the
synthetic domain is rendered on the fly from the 3DMM. Streams know nothing of the networks.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image

from bench.common.cli import UserError
from bench.common.images import to_rgb
from recognition.faces.align import CropGeometry

if TYPE_CHECKING:
    from generators.train import TrainConfig


class FolderImages:
    """Aligned crops from a folder, read on demand at the training size, in [-1, 1]."""

    def __init__(self, files: Sequence[Path], size: int):
        self.files, self.size = list(files), size

    def __len__(self) -> int:
        return len(self.files)

    def batch(self, indices: Sequence[int]) -> torch.Tensor:
        return torch.stack([self.load(self.files[i]) for i in indices])

    def load(self, path: Path) -> torch.Tensor:
        with Image.open(path) as image:
            image = to_rgb(image).resize((self.size, self.size), Image.Resampling.BILINEAR)
        return torch.from_numpy(np.asarray(image, dtype=np.float32) / 127.5 - 1).permute(2, 0, 1)


def pair_folders(folder: Path, size: int) -> tuple[FolderImages, FolderImages]:
    """(renders, reals) of `generators.pairs` output, matched by file name."""
    folder = Path(folder)
    if not (folder / "real").is_dir() or not (folder / "render").is_dir():
        inner = folder / "pairs"  # a `bench.run` pairs stage keeps generators.pairs' output one level down
        if (inner / "real").is_dir() and (inner / "render").is_dir():
            raise UserError(f"pairs folder {folder} is a `bench.run` stage folder: pass {inner}")
        raise UserError(f"pairs folder {folder} has no real/ and render/ subfolders: make it with "
                        "`python -m generators.pairs`, or switch L_DP off (--no-pair)")
    names = sorted(p.name for p in (folder / "real").glob("*.png") if (folder / "render" / p.name).exists())
    if not names:
        raise UserError(f"pairs folder {folder} holds no matched real/render images")
    return (FolderImages([folder / "render" / n for n in names], size), FolderImages([folder / "real" / n for n in names], size))


def prepare_batch(decisions: dict, synthetic: SyntheticStream, real: FolderImages,
                  pairs: tuple[FolderImages, FolderImages] | None) -> dict[str, torch.Tensor]:
    """Carry out one batch's decisions (made by the trainer's draw): render the chosen (identity, image)
    pairs, decode the chosen real photos and, with L_DP, the chosen (render, photo) pairs. The trainer
    calls this in its own process and `generators.prefetch`'s workers call it ahead of the step, so both
    paths produce the same batch from the same decisions."""
    x, labels = synthetic.render(decisions["labels"], decisions["images"])
    batch = {"x": x, "labels": labels, "y": real.batch(decisions["real"])}
    if decisions.get("pairs") is not None:
        renders, reals = pairs
        batch["renders"], batch["reals"] = renders.batch(decisions["pairs"]), reals.batch(decisions["pairs"])
    return batch


class SyntheticStream:
    """3DMM renders at the training size of the (identity, image) pairs that `generators.identity_stream` picks."""

    def __init__(self, config: TrainConfig):
        from generators.morphable.render import FaceRenderer, batch_from_samples
        from generators.morphable.sampling import sample_identity, sample_image, sampling_config
        from generators.render import RenderConfig, load_render_model

        self.config = config
        self.model = load_render_model(RenderConfig())
        self.geometry = CropGeometry(config.network.image_size, 0.25)
        self.renderer = FaceRenderer(self.model, self.geometry, config.batch_size)
        self._batch, self._identity, self._image = batch_from_samples, sample_identity, sample_image
        self._people: dict[int, object] = {}
        self.sampling = sampling_config(config.pose)

    def render(self, labels: list[int], images: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Image `images[i]` of identity `labels[i]` for each i, in [-1, 1], and the labels as a tensor."""
        config = self.config
        samples = []
        for identity, image in zip(labels, images):
            if identity not in self._people:
                if len(self._people) > 4096:
                    self._people.clear()
                self._people[identity] = self._identity(self.model, config.seed, identity)
            samples.append((self._people[identity], self._image(self.model, config.seed, identity, image, self.sampling)))
        rendered, _ = self.renderer.render(self._batch(self.model, samples))
        return torch.from_numpy(rendered.astype(np.float32) / 127.5 - 1).permute(0, 3, 1, 2), torch.tensor(labels)
