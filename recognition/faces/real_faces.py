"""The real domain R: aligned real face crops, prepared once and read as a flat list of images.

    python -m generators.real_faces --lfw peopleDevTrain --out runs/real-lfw

Photos are aligned with MTCNN to the canonical 108x108 crop (the geometry the renders use) and
written as PNG; re-running skips what exists. Training reads any folder of such crops (for example
CASIA-WebFace aligned the same way); only LFW's View 1 training people may be prepared from LFW.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from bench.common.cli import UserError
from recognition.faces.align import CANONICAL_CROP, MTCNNAligner
from bench.common.atomic import save_image_atomically
from bench.common.images import to_rgb

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def photo_keys(folder: Path, paths: Sequence[Path]) -> list[tuple[str, Path]]:
    """(key, path) for photos under `folder`: the relative path without suffix, '/' as '_'; where two photos
    would share a key (`face.jpg` and `face.png`, or `a_b/c.jpg` and `a/b_c.jpg`) they keep their suffix and
    folders as '-' and '.' marks instead, so each writes its own crop. A clash left after that is an error."""
    folder = Path(folder)
    plain = [str(p.relative_to(folder).with_suffix("")).replace("/", "_") for p in paths]
    clashing = {key for key in plain if plain.count(key) > 1}
    keys = [str(p.relative_to(folder)).replace("/", "-").replace(".", "-") if key in clashing else key
            for key, p in zip(plain, paths)]
    seen: dict[str, Path] = {}
    for key, path in zip(keys, paths):
        if key in seen:
            raise UserError(f"{seen[key]} and {path} would be written to the same crop {key}.png: rename one")
        seen[key] = path
    return list(zip(keys, paths))


def prepare_faces(photos: Sequence[tuple[str, Path]], out: Path, batch_size: int = 32, progress: bool = True,
                  device: str = "cpu") -> dict:
    """Align (key, path) photos into `out/<key>.png` with MTCNN on `device`; photos without a detected face are
    skipped and counted, unreadable ones counted and named (a warning per file, and `unreadable files` in the result)."""
    out = Path(out)
    keys = [key for key, _ in photos]
    if len(set(keys)) != len(keys):
        twice = next(key for key in keys if keys.count(key) > 1)
        raise UserError(f"two photos would be written to the same crop {out / twice}.png "
                        f"({', '.join(str(p) for k, p in photos if k == twice)}): give them distinct keys")
    todo = [(key, path) for key, path in photos if not (out / f"{key}.png").exists()]
    aligner = MTCNNAligner(device=str(device)) if todo else None
    counts = {"aligned": 0, "no face": 0, "unreadable": 0}
    unreadable: list[str] = []
    for start in tqdm(range(0, len(todo), batch_size), desc="align real faces", disable=not progress):
        batch, keys = [], []
        for key, path in todo[start : start + batch_size]:
            try:
                with Image.open(path) as opened:
                    batch.append(to_rgb(opened))
                keys.append(key)
            except (OSError, UnidentifiedImageError) as error:
                counts["unreadable"] += 1
                unreadable.append(str(path))
                log.warning("cannot read %s (%s): skipped", path, error)
        if not batch:
            continue
        chips, found = aligner.chips(batch, CANONICAL_CROP)
        for key, chip, hit in zip(keys, chips, found):
            if hit:
                save_image_atomically(np.asarray(chip), out / f"{key}.png", "png")
                counts["aligned"] += 1
            else:
                counts["no face"] += 1
    if unreadable:
        counts["unreadable files"] = unreadable
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
