"""The real domain R: aligned real face crops, prepared once and read as a flat list of images.

    python -m generators.real_faces --lfw peopleDevTrain --out runs/real-lfw

Photos are aligned with MTCNN to the canonical 108x108 crop (the geometry the renders use) and
written as PNG; re-running skips what exists. Training reads any folder of such crops (for example
CASIA-WebFace aligned the same way); only LFW's View 1 training people may be prepared from LFW.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from bench.common.cli import UserError
from recognition.faces.align import CANONICAL_CROP, MTCNNAligner
from bench.common.atomic import save_image_atomically

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def prepare_faces(photos: Sequence[tuple[str, Path]], out: Path, batch_size: int = 32, progress: bool = True) -> dict:
    """Align (key, path) photos into `out/<key>.png`; photos without a detected face are skipped and counted."""
    out = Path(out)
    todo = [(key, path) for key, path in photos if not (out / f"{key}.png").exists()]
    aligner = MTCNNAligner() if todo else None
    counts = {"aligned": 0, "no face": 0, "unreadable": 0}
    for start in tqdm(range(0, len(todo), batch_size), desc="align real faces", disable=not progress):
        batch, keys = [], []
        for key, path in todo[start : start + batch_size]:
            try:
                with Image.open(path) as opened:
                    batch.append(opened.convert("RGB"))
                keys.append(key)
            except (OSError, UnidentifiedImageError):
                counts["unreadable"] += 1
        if not batch:
            continue
        chips, found = aligner.chips(batch, CANONICAL_CROP)
        for key, chip, hit in zip(keys, chips, found):
            if hit:
                save_image_atomically(np.asarray(chip), out / f"{key}.png", "png")
                counts["aligned"] += 1
            else:
                counts["no face"] += 1
    return counts


def list_face_images(folder: Path) -> list[Path]:
    """Every image under `folder`, sorted; a clear error when there is none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"real face folder not found: {folder} (prepare one with `python -m generators.real_faces`)")
    images = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise UserError(f"real face folder {folder} holds no .png or .jpg images")
    return images
