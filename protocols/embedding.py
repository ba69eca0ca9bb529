"""Turning face images into features, once: batched, with a progress bar and a per-embedder cache.

Protocols describe what to embed as `FaceItem`s (a path, optionally a face box); `embed_items` loads
them as loose crops in LFW geometry, applies the embedder's transform in DataLoader workers, and
stores the features under the cache directory keyed by the embedder, so a second evaluation of the
same model reads them back instead of recomputing. Within a cache, features are keyed by the item and
by its file as it is now (absolute path, size, modification time): another data root, or a file copied,
truncated or rewritten since, is embedded again, never served someone else's features.
"""
from __future__ import annotations

import hashlib
import io
import logging
from collections.abc import Sequence
from itertools import chain
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from bench.common.atomic import atomic_path
from bench.common.cli import UserError
from bench.common.datasets import cache_dir
from bench.common.devices import configure_device, move_module, resolve_device, to_device
from bench.common.images import to_rgb
from recognition.faces.align import Aligner, CropGeometry, get_aligner, warp_to_crop
from recognition.embedders.registry import LFW_GEOMETRY_EXPANSION, LFW_GEOMETRY_SIZE, Embedder

log = logging.getLogger(__name__)

# LFW's loose crop as a crop geometry: the unit face frame is the central 1/2.2 of a 250x250 square
LOOSE_CROP = CropGeometry(LFW_GEOMETRY_SIZE, (LFW_GEOMETRY_EXPANSION - 1) / 2)


@dataclass(frozen=True)
class FaceItem:
    """One image to embed. `box` = (x, y, width, height) of the face; None when the image is already a loose crop.

    `content`, when given, is the encoded image itself (JPEG/PNG bytes from a container file such as a
    verification .bin); `path` then only names where it came from, in messages. `landmarks`, when given,
    are the face's five points (x1, y1, ..., x5, y5, in `FIVE_POINT_TEMPLATE`'s order, pixels of the loaded
    image): the face is then warped by them into the embedder's crop (LFW's loose-crop geometry for
    embedders without one), with no detection (IJB-B/C's given landmarks). Put them in `key` too.
    """

    key: str
    path: Path
    box: tuple[float, float, float, float] | None = None
    content: bytes | None = field(default=None, repr=False, compare=False)
    landmarks: tuple[float, ...] | None = None


def load_loose_crop(item: FaceItem) -> Image.Image:
    """The item's face as a loose crop in LFW geometry: a square 2.2 times the face box, 250x250.

    Parts of the square outside the photo are black, as a detector's crop near the border would be.
    """
    try:
        with Image.open(item.path if item.content is None else io.BytesIO(item.content)) as opened:
            image = to_rgb(opened)
    except FileNotFoundError:
        raise UserError(f"image not found: {item.path}") from None
    except (UnidentifiedImageError, OSError) as error:
        raise UserError(f"cannot read image {item.path}: {error}") from None
    if item.box is None:
        return image
    x, y, width, height = item.box
    if not all(np.isfinite(item.box)) or width <= 0 or height <= 0:
        raise UserError(f"{item.path}: face box {item.box} has no area")
    if x >= image.width or y >= image.height or x + width <= 0 or y + height <= 0:
        raise UserError(f"{item.path}: face box {item.box} lies outside the {image.width}x{image.height} image "
                        "(it would be embedded as a black crop)")
    side = max(width, height) * LFW_GEOMETRY_EXPANSION
    cx, cy = x + width / 2, y + height / 2
    left, top = cx - side / 2, cy - side / 2
    return image.transform(
        (LFW_GEOMETRY_SIZE, LFW_GEOMETRY_SIZE),
        Image.Transform.EXTENT,
        (left, top, left + side, top + side),
        resample=Image.Resampling.BILINEAR,
    )


class _FaceDataset(Dataset):
    """Loose crops, transformed by the embedder unless they still need aligning (then PIL images); items with
    landmarks are warped by them into the embedder's crop here, in the workers."""

    def __init__(self, items: Sequence[FaceItem], embedder: Embedder, transform: bool):
        self.items, self.embedder, self.transform = items, embedder, transform

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int):
        try:
            item = self.items[index]
            image = load_loose_crop(item)
            if item.landmarks is not None:
                points = np.asarray(item.landmarks, dtype=np.float64).reshape(5, 2)
                return self.embedder.transform(warp_to_crop(image, points, self.embedder.crop or LOOSE_CROP)), index, None
            return (self.embedder.transform(image) if self.transform else image), index, None
        except UserError as error:  # reported by the main process, not as a worker traceback
            return None, index, str(error)


def _collate(samples):
    errors = [error for _, _, error in samples if error]
    good = [(sample, index) for sample, index, error in samples if not error]
    if not good:
        return None, [], errors
    samples, indices = zip(*good)
    if isinstance(samples[0], torch.Tensor):
        samples = torch.stack(samples)
    return samples, list(indices), errors


@dataclass
class Embeddings:
    """Features (N, D) float32 in item order, and whether a face was found when aligning each item."""

    features: np.ndarray
    face_found: np.ndarray

    @property
    def alignment_misses(self) -> int:
        return int((~self.face_found).sum())


def content_key(item: FaceItem) -> str | None:
    """The item's cache key: its protocol key and its file's absolute path, size and mtime (ns); None when
    the file cannot be read (then it is embedded, and its loading names the problem). A face held in
    memory (`content`, e.g. from a .bin set) is keyed by its bytes' size and digest instead."""
    if item.content is not None:
        return f"{item.key}|in-memory|{len(item.content)}|{hashlib.sha1(item.content).hexdigest()}"
    try:
        path = Path(item.path).resolve()
        stat = path.stat()
    except OSError:
        return None
    return f"{item.key}|{path}|{stat.st_size}|{stat.st_mtime_ns}"


class EmbeddingCache:
    """Features (and 'face found') by item key for one embedder and aligner, in one .npz, written atomically."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.features: dict[str, np.ndarray] = {}
        self.found: dict[str, bool] = {}
        self.by_file: dict[str, str] | None = None  # item and path -> its key, built when first needed
        if self.path.exists():
            with np.load(self.path, allow_pickle=False) as stored:
                keys = stored["keys"].tolist()
                self.features = dict(zip(keys, stored["features"]))
                self.found = dict(zip(keys, stored["found"].tolist()))
            for key in [key for key in self.features if key.count("|") < 3]:  # keyed by name alone (before
                del self.features[key], self.found[key]  # content keys): never matched again

    def put(self, key: str, feature: np.ndarray, found: bool) -> None:
        """Store one item's features, dropping those of an earlier version of its file (same item and path)."""
        if self.by_file is None:
            self.by_file = {stored.rsplit("|", 2)[0]: stored for stored in self.features}
        earlier = self.by_file.get(key.rsplit("|", 2)[0])
        if earlier is not None and earlier != key:
            del self.features[earlier], self.found[earlier]
        self.features[key], self.found[key] = feature, found
        self.by_file[key.rsplit("|", 2)[0]] = key

    def save(self) -> None:
        keys = np.array(list(self.features), dtype=str)
        values = np.stack(list(self.features.values())) if self.features else np.zeros((0, 0), np.float32)
        found = np.array([self.found[k] for k in self.features], dtype=bool)
        with atomic_path(self.path) as temporary:
            np.savez(temporary, keys=keys, features=values, found=found)


def embedder_device(embedder: Embedder, device: torch.device) -> torch.device:
    """Where `embedder` computes: `device` for a torch network (it holds parameters or buffers), else the CPU
    (dlib-bin, onnxruntime and OpenCV embedders take CPU tensors whatever --device says)."""
    if device.type == "cpu" or not any(True for _ in chain(embedder.parameters(), embedder.buffers())):
        return torch.device("cpu")
    return device


def embed_batch(embedder: Embedder, batch: torch.Tensor, device: torch.device, flip: bool = False) -> torch.Tensor:
    """Features of a CPU batch (N, 3, H, W), computed on `device` (the embedder must be there), back on the CPU."""
    batch = to_device(batch, device)
    features = embedder(batch)
    if flip:
        features = features + embedder(torch.flip(batch, dims=[-1]))
    return features.float().cpu()


def embed_items(
    embedder: Embedder,
    items: Sequence[FaceItem],
    aligner: Aligner | str = "mtcnn",
    batch_size: int = 64,
    workers: int = 2,
    flip: bool = False,
    use_cache: bool = True,
    progress: bool = True,
    device: torch.device | str = "cpu",
) -> Embeddings:
    """Embed `items` in order. Embedders with a crop geometry get aligned crops from `aligner`
    (batched, in the main process); with `flip`, each feature is f(x) + f(mirror(x)). On a GPU `device`,
    a torch embedder is moved there (and MTCNN runs there when named by string); images are decoded by
    the DataLoader's workers into pinned memory. Features do not depend on the device beyond rounding,
    so the cache is shared. Items with `landmarks` are warped by them instead (all items, or none, may
    carry landmarks; `aligner` is then unused)."""
    device = torch.device(device)
    compute_on = embedder_device(embedder, device)
    if compute_on != device:
        log.info("%s runs on the CPU (not a torch network): --device %s applies to alignment only", embedder.name, device)
    move_module(embedder, compute_on)
    given = sum(item.landmarks is not None for item in items)
    if 0 < given < len(items):
        raise ValueError(f"{given} of {len(items)} items carry landmarks: give them for all items or for none")
    aligning = embedder.crop is not None and not given
    if aligning and isinstance(aligner, str):
        aligner = get_aligner(aligner, device)
    suffix = (f"-{aligner.cache_tag}" if aligning else "-given5pts" if given else "") + ("-flip" if flip else "")
    cache = None
    todo = list(range(len(items)))
    if use_cache:
        cache = EmbeddingCache(cache_dir() / "embeddings" / f"{embedder.cache_key}{suffix}.npz")
        keys = [content_key(item) for item in items]
        todo = [i for i, key in enumerate(keys) if key is None or key not in cache.features]
        log.info("embedding cache %s: %d of %d items cached", cache.path, len(items) - len(todo), len(items))
    computed: dict[int, tuple[np.ndarray, bool]] = {}
    if todo:
        loader = DataLoader(
            _FaceDataset([items[i] for i in todo], embedder, transform=not aligning),
            batch_size=batch_size,
            num_workers=workers,
            collate_fn=_collate,
            pin_memory=compute_on.type == "cuda" and not aligning,
        )
        errors: list[str] = []
        with torch.inference_mode():
            for batch, indices, batch_errors in tqdm(loader, desc=f"embed {embedder.name}", disable=not progress):
                errors += batch_errors
                if batch is None or errors:
                    continue
                found = np.ones(len(indices), dtype=bool)
                if aligning:
                    chips, found = aligner.chips(batch, embedder.crop)
                    batch = torch.stack([embedder.transform(chip) for chip in chips])
                features = embed_batch(embedder, batch, compute_on, flip)
                for index, feature, hit in zip(indices, features.numpy(), found):
                    computed[todo[index]] = (feature, bool(hit))
        if errors:
            shown = "\n  ".join(errors[:10])
            more = f"\n  ... and {len(errors) - 10} more" if len(errors) > 10 else ""
            raise UserError(f"{len(errors)} image(s) could not be loaded:\n  {shown}{more}")
        if cache is not None:
            for i in todo:
                if keys[i] is not None:
                    cache.put(keys[i], *computed[i])
            cache.save()
    rows = [computed[i] if i in computed else (cache.features[keys[i]], cache.found[keys[i]])
            for i in range(len(items))]
    result = Embeddings(np.stack([r[0] for r in rows]).astype(np.float32), np.array([r[1] for r in rows]))
    if aligning and result.alignment_misses:
        log.warning("%s found no face in %d of %d images; used the centred-box fallback for them",
                    aligner.name, result.alignment_misses, len(items))
    return result


def pair_similarity(features: np.ndarray, first: np.ndarray, second: np.ndarray, metric: str) -> np.ndarray:
    """Similarity of feature pairs (higher = same): cosine, or minus the Euclidean distance."""
    a = torch.from_numpy(features[first])
    b = torch.from_numpy(features[second])
    if metric == "cosine":
        return F.cosine_similarity(a, b, dim=1).numpy().astype(np.float64)
    if metric == "euclidean":
        return -torch.linalg.vector_norm(a - b, dim=1).numpy().astype(np.float64)
    raise ValueError(f"unknown metric '{metric}'")


def add_embedder_arguments(parser, default: str | None = None) -> None:
    """--embedder (a registered name or a bring-your-own `onnx:`/`torchscript:`/`timm:` model) and --weights,
    the same on every protocol command; `embedder_from_arguments` builds what they name."""
    from recognition.embedders import list_embedder_prefixes, list_embedders

    parser.add_argument("--embedder", required=default is None, default=default,
                        help=f"registered embedder ({', '.join(list_embedders())}) or your own model: "
                             f"{', '.join(list_embedder_prefixes())}, options after '?' (recognition/embedders/external.py)"
                             + (f"; default {default}" if default else ""))
    parser.add_argument("--weights", default=None, help="weights file for embedders that take one (dlib-resnet, facenet-nn4, timm:, iresnet:, adaface:, ...)")


def embedder_from_arguments(args) -> Embedder:
    from recognition.embedders import get_embedder

    return get_embedder(args.embedder, **({"weights": args.weights} if args.weights else {}))


def add_embedding_arguments(parser) -> None:
    """--batch-size, --workers, --no-cache and --device, the same on every protocol command."""
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default="auto",
                        help="where torch embedders and MTCNN run: auto (a GPU when CUDA exists), cpu, cuda or cuda:N")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader worker processes")
    parser.add_argument("--no-cache", action="store_true", help="recompute embeddings instead of using the cache")


def embedding_options(args) -> dict:
    """The `embed_items` options those arguments give, checked (a UserError names a bad one)."""
    if args.batch_size < 1 or args.workers < 0:
        raise UserError("--batch-size must be >= 1 and --workers >= 0")
    device = resolve_device(args.device)
    configure_device(device)
    return {"batch_size": args.batch_size, "workers": args.workers, "use_cache": not args.no_cache, "device": device}
