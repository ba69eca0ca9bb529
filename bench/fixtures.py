"""Small stand-in inputs built from the real data root, for probes, benchmarks and tests.

Centre crops of LFW DevTrain photos stand in for aligned faces, and inverted copies for 3DMM fits,
where the stage being measured does not depend on alignment or fitting quality.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def lfw_centre_crops(folder: Path, count: int, root=None) -> Path:
    """The central 108x108 of the first `count` LFW DevTrain photos (never evaluation people)."""
    from generators.real_faces import lfw_training_photos

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for key, path in lfw_training_photos("peopleDevTrain", root)[:count]:
        Image.open(path).convert("RGB").crop((71, 71, 179, 179)).save(folder / f"{key}.png")
    return folder


def inverted_pairs(real: Path, folder: Path, count: int = 6) -> Path:
    """A `generators.pairs`-shaped folder: real crops paired with their colour-inverted copies as 'renders'."""
    folder = Path(folder)
    for sub in ("real", "render"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    for n, path in enumerate(sorted(Path(real).glob("*.png"))[:count]):
        image = Image.open(path)
        image.save(folder / "real" / f"{n:06d}.png")
        Image.fromarray(255 - np.asarray(image)).save(folder / "render" / f"{n:06d}.png")
    return folder
