"""Training data of the recognizer (Sec. 5.2): a real identity set, a fraction of it, a synthetic set, mixed batches.

    python -m recognition.data --real-set lfw:peopleDevTrain             # align once; print the set's size
    python -m recognition.data --real-set DIR --real 0.2 --fraction-by identity --synth runs/ganfaces

Sets (`--real-set`, `--synth`) are canonical 108x108 face crops (`recognition.faces.align.CANONICAL_CROP`,
MTCNN's five points), the geometry every evaluation aligns its photos to, so that training crops and
evaluation crops match:
- `lfw:<people file>`, e.g. `lfw:peopleDevTrain`: LFW photos of the people listed, aligned once with
  MTCNN by `recognition.faces.real_faces.prepare_faces` into an ImageFolder in the cache directory,
  `<cache>/recognition/lfw-peopleDevTrain-mtcnn-<template>/<Name>/<Name>_0001.png`; photos in which
  MTCNN finds no face are left out (`complete.json` there counts them).
- a folder: an ImageFolder `<identity>/<image>` (CASIA-WebFace or VGG Face aligned the same way, raw
  3DMM renders of `generators.render`, any other set); the output folder of `generators.synthesize`,
  whose `ganfaces/` ImageFolder is then used; or the flat output of `generators.real_faces --lfw`
  (`lfw_<Name>_<NNNN>.png`, grouped by name). Crops of another size are resized to 108x108.

Fraction (`--real 0.2 --fraction-by image|identity`): by image, round(0.2 N) of the N images drawn
uniformly (identities left without images drop out of the label space); by identity, round(0.2 K) of
the K identities with all their images. Both take a prefix of one seeded permutation, so a smaller
fraction is a subset of a larger one for the same seed. The paper gives the real set's share as a
percentage of the data set without saying how it was drawn; a share of a data set most plainly
reads as a share of its images, hence `image` by default.

Batches: batch i of rank r is a pure function of (seed, i, r, world size): positions in an endless
sequence of seeded permutations (one per epoch), a 96x96 crop at a random offset of each 108x108
image and a random horizontal flip (Sec. 5.2). Resuming at iteration i therefore continues exactly,
with any number of loader workers. Real and synthetic images travel in separate tensors with
separate labels, one label space per softmax head.

The leakage guard (training names against the evaluation's) is `recognition.leakage`.

It is one file because the sets, the fractions, the identity filter, its counts (`--min-images-table`) and
the mixed batches are one contract with `recognition.train`: what a label means and which images a seed picks.
"""
from __future__ import annotations

import argparse
import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset
from torchvision.transforms.v2 import functional as TF

from bench.common.atomic import write_json
from bench.common.cli import UserError, add_common_arguments, require_at_least, run_main, setup_logging
from bench.common.datasets import cache_dir, data_root
from bench.common.images import to_rgb

log = logging.getLogger(__name__)

IMAGE_SIZE = 108  # the canonical aligned crop (recognition.faces.align.CANONICAL_CROP)
CROP_SIZE = 96  # the paper's random crops
FRACTION_BY = ("image", "identity")
LFW_SPEC = "lfw:"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
FLAT_LFW_NAME = re.compile(r"lfw_(?P<name>.+)_(?P<image>\d{4})\.(png|jpg|jpeg)", re.IGNORECASE)


@dataclass(frozen=True)
class IdentitySet:
    """Images with identity labels 0..K-1; `identities[label]` is the identity's name (its folder)."""

    source: str
    paths: tuple[Path, ...]
    labels: np.ndarray
    identities: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.paths)

    def subset(self, keep: np.ndarray) -> IdentitySet:
        """The images at indices `keep` (kept in their original order), relabelled 0..K'-1 over the identities left."""
        keep = np.sort(np.asarray(keep, dtype=np.int64))
        remaining = np.unique(self.labels[keep])
        relabel = np.full(len(self.identities), -1, dtype=np.int64)
        relabel[remaining] = np.arange(len(remaining))
        return IdentitySet(self.source, tuple(self.paths[i] for i in keep), relabel[self.labels[keep]],
                           tuple(self.identities[i] for i in remaining))


# ------------------------------------------------------------------------------------ reading sets

def is_lfw_spec(spec: str) -> bool:
    return str(spec).startswith(LFW_SPEC)


def _lfw_people_file(spec: str) -> str:
    name = spec[len(LFW_SPEC):].removesuffix(".txt")
    if not name:
        raise UserError(f"--real-set {spec}: name an LFW people file, e.g. lfw:peopleDevTrain")
    return f"{name}.txt"


def _identity_folder(folder: Path) -> Path:
    """The ImageFolder of a set folder: `generators.synthesize` output holds it under `ganfaces/`."""
    return folder / "ganfaces" if (folder / "ganfaces").is_dir() else folder


def _flat_lfw_names(folder: Path) -> dict[Path, str] | None:
    """Identity of each file of a flat `generators.real_faces --lfw` folder, or None when it is not one."""
    files = [p for p in folder.iterdir() if p.is_file() and _is_image_file(str(p))]
    if not files:
        return None
    matches = {p: FLAT_LFW_NAME.fullmatch(p.name) for p in files}
    if not all(matches.values()):
        return None
    return {p: m["name"] for p, m in sorted(matches.items())}


def _is_image_file(path: str) -> bool:
    """Image files, not the hidden temporaries of an interrupted atomic write."""
    return path.lower().endswith(IMAGE_SUFFIXES) and not Path(path).name.startswith(".")


def read_folder_set(folder: Path, what: str = "--real-set") -> IdentitySet:
    """An ImageFolder (or a flat real_faces LFW folder) as an IdentitySet, identities sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{what} {folder}: folder not found (an ImageFolder <identity>/<image> of aligned 108x108 "
                        "crops, e.g. made by generators.synthesize, generators.render or generators.real_faces)")
    folder = _identity_folder(folder)
    flat = _flat_lfw_names(folder)
    if flat is not None:
        identities = tuple(sorted(set(flat.values())))
        index = {name: label for label, name in enumerate(identities)}
        return IdentitySet(str(folder), tuple(flat), np.array([index[n] for n in flat.values()], dtype=np.int64),
                           identities)
    from torchvision.datasets.folder import find_classes, make_dataset

    try:
        identities, index = find_classes(str(folder))
        samples = make_dataset(str(folder), index, is_valid_file=_is_image_file)
    except FileNotFoundError as error:
        raise UserError(f"{what} {folder}: not an ImageFolder with one subfolder of images per identity "
                        f"({error})") from None
    return IdentitySet(str(folder), tuple(Path(p) for p, _ in samples),
                       np.array([label for _, label in samples], dtype=np.int64), tuple(identities))


def set_identity_names(spec: str, root: Path | None = None, what: str = "--real-set") -> list[str]:
    """The identity names of a set, cheaply (before any alignment): for the leakage guard."""
    if is_lfw_spec(spec):
        from protocols.lfw_files import LFWLayout

        return [person.name for person in LFWLayout(data_root(root)).people(_lfw_people_file(spec))]
    folder = Path(spec)
    if folder.is_dir():
        folder = _identity_folder(folder)
        flat = _flat_lfw_names(folder)
        if flat is None:  # an ImageFolder: its identity folders, without listing every image
            return sorted(entry.name for entry in os.scandir(folder) if entry.is_dir())
        return sorted(set(flat.values()))
    return list(read_folder_set(folder, what).identities)  # the error message of a missing folder


def lfw_aligned_folder(people_file: str) -> Path:
    """Where the aligned crops of an LFW people file are kept (named by the alignment template's hash)."""
    import hashlib

    from recognition.faces.align import FIVE_POINT_TEMPLATE

    template = hashlib.sha1(FIVE_POINT_TEMPLATE.tobytes()).hexdigest()[:8]
    return cache_dir() / "recognition" / f"lfw-{Path(people_file).stem}-mtcnn-{template}-{IMAGE_SIZE}"


def prepare_lfw_people(spec: str, root: Path | None = None, progress: bool = True) -> Path:
    """Align the photos of an LFW people file to canonical crops in an ImageFolder (once); returns the folder."""
    from recognition.faces.real_faces import prepare_faces
    from protocols.lfw_files import LFWLayout

    people_file = _lfw_people_file(spec)
    layout = LFWLayout(data_root(root))
    people = layout.people(people_file)
    out = lfw_aligned_folder(people_file)
    marker = out / "complete.json"
    if not marker.exists():
        photos = [(f"{p.name}/{p.name}_{i:04d}", layout.image_path(p.name, i))
                  for p in people for i in range(1, p.images + 1)]
        log.info("aligning %d LFW photos of %s into %s (once)", len(photos), people_file, out)
        counts = prepare_faces(photos, out, progress=progress)
        write_json(marker, {"people_file": people_file, "photos": len(photos), **counts})
    return out


def load_set(spec: str, root: Path | None = None, rank: int = 0, world: int = 1, progress: bool = True,
             what: str = "--real-set") -> IdentitySet:
    """Read a set given as `lfw:<people file>` or a folder; LFW is aligned by rank 0 while the others wait."""
    if not is_lfw_spec(spec):
        return read_folder_set(Path(spec), what)
    if rank == 0:
        prepare_lfw_people(spec, root, progress)
    if world > 1:
        import torch.distributed as dist

        dist.barrier()
    return replace(read_folder_set(lfw_aligned_folder(_lfw_people_file(spec)), what), source=spec)


def drop_small_identities(dataset: IdentitySet, min_images: int) -> IdentitySet:
    """Only identities with at least `min_images` images."""
    if min_images <= 1:
        return dataset
    counts = np.bincount(dataset.labels, minlength=len(dataset.identities))
    return dataset.subset(np.flatnonzero(counts[dataset.labels] >= min_images))


def select_fraction(dataset: IdentitySet, fraction: float, by: str, seed: int) -> IdentitySet:
    """A seeded share of the set, by image or by identity (see the module docstring); nested across fractions."""
    if not 0 < fraction <= 1:
        raise UserError(f"--real must be a fraction in (0, 1], e.g. 0.2, 0.5 or 1.0; got {fraction}")
    if by not in FRACTION_BY:
        raise UserError(f"--fraction-by must be one of {', '.join(FRACTION_BY)}, not '{by}'")
    if fraction == 1:
        return dataset
    rng = np.random.default_rng([seed, 1_000_003])
    if by == "image":
        order = rng.permutation(len(dataset))
        keep = order[: max(1, round(fraction * len(dataset)))]
    else:
        order = rng.permutation(len(dataset.identities))
        chosen = order[: max(1, round(fraction * len(dataset.identities)))]
        keep = np.flatnonzero(np.isin(dataset.labels, chosen))
    return dataset.subset(keep)


def identity_counts_set(spec: str, root: Path | None = None) -> IdentitySet:
    """A set's identities and images for counting, without aligning anything: for `lfw:<people file>` the
    people file's counts (paths are the LFW photos), for a folder its images (read_folder_set lists files)."""
    if not is_lfw_spec(spec):
        return read_folder_set(Path(spec))
    from protocols.lfw_files import LFWLayout

    layout = LFWLayout(data_root(root))
    people = [p for p in layout.people(_lfw_people_file(spec)) if p.images > 0]
    paths = tuple(layout.image_path(p.name, i) for p in people for i in range(1, p.images + 1))
    labels = np.repeat(np.arange(len(people)), [p.images for p in people])
    return IdentitySet(spec, paths, labels, tuple(p.name for p in people))


def min_images_table(dataset: IdentitySet, min_images: Sequence[int], fractions: Sequence[float] = (0.2, 0.5, 1.0),
                     seeds: Sequence[int] = (0, 1, 2), by: str = "image") -> list[dict]:
    """For each k of `min_images` and each real fraction: identities, images and images per identity of the
    set the recognizer trains on (identities with >= k images, then the seeded fraction; `drop_small_identities`
    and `select_fraction`, the trainer's own functions), and how many identities keep 2+ images (the classes
    that show within-person variation). Identity counts are the mean over `seeds` (images do not depend on
    the seed); rows in the order given."""
    rows = []
    for k in min_images:
        kept = drop_small_identities(dataset, k)
        for fraction in fractions:
            chosen = [select_fraction(kept, fraction, by, seed) for seed in seeds]
            identities = np.array([len(c.identities) for c in chosen], dtype=float)
            images = np.array([len(c) for c in chosen], dtype=float)
            two_plus = np.array([(np.bincount(c.labels) >= 2).sum() for c in chosen], dtype=float)
            rows.append({"min_images": k, "fraction": fraction, "identities": float(identities.mean()),
                         "identities_min": int(identities.min()), "identities_max": int(identities.max()),
                         "images": float(images.mean()), "images_per_identity": float((images / identities).mean()),
                         "identities_with_2plus": float(two_plus.mean()),
                         "share_of_all_images": float(images.mean() / len(dataset))})
    return rows


# ----------------------------------------------------------------------------------- evaluation split

def resolve_lfw_split(split: str, real_set: str) -> str:
    """'auto': View 1 for a real set drawn from LFW (its training people), the 10 folds for an external set."""
    if split != "auto":
        return split
    if is_lfw_spec(real_set):
        return "view1"
    folder = Path(real_set)
    return "view1" if folder.is_dir() and _flat_lfw_names(_identity_folder(folder)) is not None else "10fold"


# ---------------------------------------------------------------------------------------- batches

def load_crop(path: Path) -> torch.Tensor:
    """(3, 108, 108) uint8 RGB, resized when the file is not a 108x108 crop."""
    try:
        with Image.open(path) as opened:
            image = TF.pil_to_tensor(to_rgb(opened))
    except (OSError, UnidentifiedImageError) as error:
        raise UserError(f"cannot read image {path}: {error}") from None
    if image.shape[-2:] != (IMAGE_SIZE, IMAGE_SIZE):
        image = TF.resize(image, [IMAGE_SIZE, IMAGE_SIZE], antialias=True)
    return image


def network_input(images: torch.Tensor) -> torch.Tensor:
    """uint8 images -> float in [0, 1], the backbones' input (they normalise for themselves)."""
    return TF.to_dtype(images, torch.float32, scale=True)


def centre_crop(images: torch.Tensor) -> torch.Tensor:
    """The evaluation view: the central 96x96 of a 108x108 crop (the mean of the training crops)."""
    return TF.center_crop(images, [CROP_SIZE, CROP_SIZE])


class EpochStream:
    """Position p of an endless sequence of seeded permutations of range(n), one permutation per epoch."""

    def __init__(self, n: int, seed: Sequence[int]):
        self.n, self.seed = n, list(seed)
        self._epoch, self._order = -1, np.empty(0, dtype=np.int64)

    def _permutation(self, epoch: int) -> np.ndarray:
        if epoch != self._epoch:
            self._epoch, self._order = epoch, np.random.default_rng(self.seed + [epoch]).permutation(self.n)
        return self._order

    def take(self, start: int, count: int) -> np.ndarray:
        positions = np.arange(start, start + count)
        return np.array([self._permutation(int(p // self.n))[p % self.n] for p in positions], dtype=np.int64)


class MixedBatch(NamedTuple):
    """One iteration's images (uint8, 96x96) and labels; each head's labels index its own identities."""

    real: torch.Tensor
    real_labels: torch.Tensor
    synthetic: torch.Tensor
    synthetic_labels: torch.Tensor


class MixedBatches(Dataset):
    """Item i = the mixed batch of iteration i for this rank (load with DataLoader(batch_size=None))."""

    def __init__(self, real: IdentitySet, synthetic: IdentitySet | None, batch_size: int, synthetic_share: float,
                 seed: int, rank: int = 0, world: int = 1):
        if not 0 <= synthetic_share < 1:
            raise UserError(f"--synthetic-share {synthetic_share}: the synthetic share of a batch must be in [0, 1)")
        self.real, self.synthetic, self.seed, self.rank, self.world = real, synthetic, seed, rank, world
        self.synthetic_count = round(batch_size * synthetic_share) if synthetic is not None else 0
        self.real_count = batch_size - self.synthetic_count
        if self.real_count < 1 or (synthetic is not None and self.synthetic_count < 1):
            raise UserError(f"--batch-size {batch_size} with --synthetic-share {synthetic_share} leaves a set "
                            "without images: raise the batch size or change the share")
        self.real_stream = EpochStream(len(real), [seed, 0])
        self.synthetic_stream = EpochStream(len(synthetic), [seed, 1]) if synthetic is not None else None

    def _indices(self, stream: EpochStream, count: int, iteration: int) -> np.ndarray:
        return stream.take((iteration * self.world + self.rank) * count, count)

    def __getitem__(self, iteration: int) -> MixedBatch:
        real = self._indices(self.real_stream, self.real_count, iteration)
        paths = [self.real.paths[i] for i in real]
        synthetic = np.empty(0, dtype=np.int64)
        if self.synthetic_stream is not None:
            synthetic = self._indices(self.synthetic_stream, self.synthetic_count, iteration)
            paths += [self.synthetic.paths[i] for i in synthetic]
        rng = np.random.default_rng([self.seed, 2, iteration, self.rank])
        offsets = rng.integers(0, IMAGE_SIZE - CROP_SIZE + 1, size=(len(paths), 2))
        flips = rng.random(len(paths)) < 0.5
        crops = []
        for path, (top, left), flip in zip(paths, offsets.tolist(), flips):
            crop = TF.crop(load_crop(path), top, left, CROP_SIZE, CROP_SIZE)
            crops.append(TF.horizontal_flip(crop) if flip else crop)
        images = torch.stack(crops)
        synthetic_labels = self.synthetic.labels[synthetic] if self.synthetic is not None else synthetic
        return MixedBatch(images[: len(real)], torch.from_numpy(self.real.labels[real]),
                          images[len(real):], torch.from_numpy(synthetic_labels))


# ------------------------------------------------------------------------------------------- CLI

def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m recognition.data", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser)
    parser.add_argument("--real-set", default="lfw:peopleDevTrain", help="lfw:<people file> or an ImageFolder")
    parser.add_argument("--real", "--real-fraction", dest="real_fraction", type=float, default=1.0)
    parser.add_argument("--fraction-by", choices=FRACTION_BY, default="image")
    parser.add_argument("--min-images", type=int, default=1)
    parser.add_argument("--synth", default=None, help="synthetic ImageFolder (GANFaces, renders)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--min-images-table", default=None, metavar="K,K,...",
                        help="print identities / images / images per identity for each minimum count k and each real "
                             "fraction (0.2, 0.5, 1.0, seeds 0-2) and stop; counts files only, aligns nothing "
                             "(lfw:<people file>: the file's counts; a folder: its aligned images)")
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    require_at_least(args, seed=0)
    if args.min_images_table is not None:
        try:
            ks = [int(k) for k in args.min_images_table.split(",")]
        except ValueError:
            raise UserError(f"--min-images-table {args.min_images_table}: give comma-separated integers, e.g. 2,3,4,5") from None
        if min(ks) < 1:
            raise UserError("--min-images-table: every k must be at least 1")
        import pandas as pd

        dataset = identity_counts_set(args.real_set, args.data_root)
        table = pd.DataFrame(min_images_table(dataset, ks, by=args.fraction_by))
        print(f"{args.real_set}: {len(dataset.identities)} identities, {len(dataset)} images; fractions by "
              f"{args.fraction_by}, identities as the mean (min-max) over seeds 0, 1, 2\n")
        shown = pd.DataFrame({
            "k (min images)": table.min_images, "real fraction": table.fraction.map("{:.0%}".format),
            "identities": [f"{m:.0f} ({lo}-{hi})" for m, lo, hi in
                           zip(table.identities, table.identities_min, table.identities_max)],
            "images": table.images.map("{:.0f}".format),
            "images / identity": table.images_per_identity.map("{:.2f}".format),
            "identities with 2+ images": table.identities_with_2plus.map("{:.0f}".format),
            "share of all images": table.share_of_all_images.map("{:.0%}".format)})
        print(shown.to_markdown(index=False, disable_numparse=True))
        return 0
    real = drop_small_identities(load_set(args.real_set, args.data_root), args.min_images)
    chosen = select_fraction(real, args.real_fraction, args.fraction_by, args.seed)
    print(f"real set {args.real_set}: {len(real.identities)} identities, {len(real)} images; "
          f"{args.real_fraction:g} by {args.fraction_by}: {len(chosen.identities)} identities, {len(chosen)} images")
    if args.synth:
        synthetic = load_set(args.synth, args.data_root, what="--synth")
        print(f"synthetic set {synthetic.source}: {len(synthetic.identities)} identities, {len(synthetic)} images")
    return 0


if __name__ == "__main__":
    run_main(main)
