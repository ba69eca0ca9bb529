"""What a synthesis configuration fixes: its presets, the chunk plan, the output folder's file names
and encodings, and the merge that checks a finished folder (`python -m generators.synthesize --merge`).

Chunks are whole identities and depend only on the configuration, so any shard count writes the
same files; see `generators.synthesize` for the work itself.
"""
from __future__ import annotations

import io
import json
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from PIL import Image

from bench.common.atomic import atomic_path, write_json, write_text
from bench.common.cli import UserError
from bench.common.devices import cpu_has_native_bf16


LAYOUTS = ("folder", "webdataset")
IDENTITY_SOURCES = ("new", "trained")
SCORE_COLUMNS = ("d_error", "cycle_error", "centroid_distance")


@dataclass(frozen=True)
class SynthesisConfig:
    identities: int = 10_000
    per_identity: int = 50
    seed: int = 1  # the translator's synthetic pool uses its training seed (0): seed 1 gives new identities
    batch_size: int = 64
    output_size: int = 108
    image_format: str = "jpg"  # jpg (quality 95) or png
    also_renders: bool = False
    scores: bool = True
    embedder: str = "dlib-resnet"  # C, for centroid_distance
    layout: str = "folder"
    # pose distribution of the renders (generators.morphable.sampling.POSE_DISTRIBUTIONS); None = the one the
    # translator was trained on (G has seen no other)
    pose: str | None = None
    # "new": 3DMM identities keyed by (seed, i), new when seed is not the translator's training seed (the
    # paper's GANFaces); "trained": the identities whose centroids L_C moved during training, keyed by the
    # training seed, the first `identities` of them in label order (the reference translates those)
    identities_from: str = "new"
    images_per_tar: int = 1000  # webdataset: images per tar (whole identities)
    # autocast for G, G', D_R on the CPU, where it is native (emulated bf16 is ~20x slower: bench.common.devices)
    bf16: bool = field(default_factory=cpu_has_native_bf16)
    channels_last: bool = False
    model: str = "ict"
    model_format: str | None = None
    keep_triangles: float = 0.3


PRESETS = {
    "paper": SynthesisConfig(identities=10_000, per_identity=50),
    "cpu": SynthesisConfig(identities=500, per_identity=20, also_renders=True),
    "smoke": SynthesisConfig(identities=6, per_identity=3, batch_size=3, also_renders=True),
}


# ------------------------------------------------------------------------------------- the work plan

def chunk_identities(config: SynthesisConfig) -> int:
    """Identities per chunk: one batch's worth (folders) or one tar's worth (webdataset)."""
    images = config.images_per_tar if config.layout == "webdataset" else config.batch_size
    return max(1, images // config.per_identity)


def chunk_ranges(config: SynthesisConfig) -> list[range]:
    step = chunk_identities(config)
    return [range(start, min(start + step, config.identities)) for start in range(0, config.identities, step)]


def parse_shard(text: str) -> tuple[int, int]:
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise UserError(f"--shard {text}: expected i/n, e.g. 0/4") from None
    if count < 1 or not 0 <= index < count:
        raise UserError(f"--shard {text}: need 0 <= i < n")
    return index, count


def part_path(out: Path, chunk: int) -> Path:
    return out / "parts" / f"chunk-{chunk:06d}.csv"


def image_name(identity: int, image: int, suffix: str) -> str:
    return f"id_{identity:05d}/{image:03d}.{suffix}"


def wds_key(identity: int, image: int) -> str:
    return f"id_{identity:05d}_{image:03d}"


def tar_path(out: Path, chunk: int) -> Path:
    return out / "webdataset" / f"ganfaces-{chunk:06d}.tar"


def encode_image(pixels: np.ndarray, image_format: str) -> bytes:
    buffer = io.BytesIO()
    if image_format == "png":
        Image.fromarray(pixels).save(buffer, format="PNG", compress_level=1)
    else:
        Image.fromarray(pixels).save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


def write_bytes(path: Path, data: bytes) -> None:
    with atomic_path(path) as temporary:
        temporary.write_bytes(data)


def add_to_tar(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)  # fixed owner, mode and time: byte-identical tars for a seed
    info.size, info.mode, info.mtime = len(data), 0o644, 0
    archive.addfile(info, io.BytesIO(data))


def to_uint8(images: torch.Tensor, size: int) -> np.ndarray:
    """(B, 3, s, s) in [-1, 1] -> (B, size, size, 3) uint8, resized with antialiasing when s != size."""
    images = images.float()
    if images.shape[-1] != size:
        images = F.interpolate(images, size=(size, size), mode="bicubic", antialias=True, align_corners=False)
    return ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


# ------------------------------------------------------------------------------------------- merging

def read_config(out: Path) -> SynthesisConfig:
    stored = Path(out) / "config.json"
    if not stored.is_file():
        raise UserError(f"{out} holds no GANFaces run (no config.json): run `python -m generators.synthesize` first")
    values = json.loads(stored.read_text())
    return SynthesisConfig(**{k: v for k, v in values.items() if k in SynthesisConfig.__dataclass_fields__})


def merge(out: Path) -> dict:
    """Check that every chunk is done and every identity has all its images; write the merged tables."""
    out = Path(out)
    config = read_config(out)
    ranges = chunk_ranges(config)
    missing = [c for c in range(len(ranges)) if not part_path(out, c).exists()]
    if missing:
        first = ranges[missing[0]]
        raise UserError(f"{out}: {len(missing)} of {len(ranges)} chunks are not done (first: identities "
                        f"{first.start}-{first.stop - 1}, chunk {missing[0]}); run the remaining shards, "
                        "or run without --shard to finish them")
    table = pd.concat([pd.read_csv(part_path(out, c)) for c in range(len(ranges))], ignore_index=True)
    problems = []
    duplicated = table.file[table.file.duplicated()].tolist()
    if duplicated:
        problems.append(f"{len(duplicated)} duplicate files (first {duplicated[0]})")
    counts = table.groupby("identity").size()
    wrong = counts[counts != config.per_identity]
    absent = sorted(set(range(config.identities)) - set(counts.index))
    if len(wrong) or absent:
        problems.append(f"identities with a wrong number of images: {list(wrong.index[:5])}, missing: {absent[:5]}")
    problems += _check_files(out, config, table)
    if problems:
        raise UserError(f"{out} is inconsistent: " + "; ".join(problems) + ". Delete the affected parts/chunk-*.csv "
                        "and re-run to redo them")
    write_text(out / "metadata.csv", table.to_csv(index=False))
    summary = {"identities": config.identities, "images": len(table), "layout": config.layout,
               "renders": config.also_renders}
    if config.scores:
        summary["scores"] = {c: {"mean": float(table[c].mean()), "p95": float(table[c].quantile(0.95))}
                             for c in SCORE_COLUMNS}
    write_json(out / "summary.json", summary)
    contact_sheet(out, table, out / "contact_sheet.png")
    return summary


def _check_files(out: Path, config: SynthesisConfig, table: pd.DataFrame) -> list[str]:
    columns = ["file"] + (["render_file"] if config.also_renders else [])
    if config.layout == "folder":
        listed = set()
        for column in columns:
            listed |= set(table[column])
        on_disk = {p.relative_to(out).as_posix() for folder in ("ganfaces", "renders") if (out / folder).is_dir()
                   for p in (out / folder).rglob(f"*.{config.image_format}")}
        problems = []
        if listed - on_disk:
            problems.append(f"{len(listed - on_disk)} listed images are missing (first {min(listed - on_disk)})")
        if on_disk - listed:
            problems.append(f"{len(on_disk - listed)} images on disk belong to no identity of this run "
                            f"(first {min(on_disk - listed)})")
        return problems
    problems = []
    for tar, group in table.groupby(table.file.str.split(":").str[0]):
        with tarfile.open(out / tar) as archive:
            names = set(archive.getnames())
        wanted = {f.split(":")[1] for column in columns for f in group[column]}
        if wanted - names:
            problems.append(f"{tar} lacks {len(wanted - names)} images")
    return problems


def read_image(out: Path, file: str) -> Image.Image:
    """An image of the run by its metadata `file` (a path, or `tar:member` for webdataset)."""
    if ":" in file:
        tar, member = file.split(":", 1)
        with tarfile.open(Path(out) / tar) as archive:
            return Image.open(io.BytesIO(archive.extractfile(member).read())).convert("RGB")
    with Image.open(Path(out) / file) as image:
        return image.convert("RGB")


def contact_sheet(out: Path, table: pd.DataFrame, path: Path, identities: int = 6, per_identity: int = 8) -> None:
    """Per identity a row of GANFaces, under it (with renders) the row of their 3DMM renders."""
    from torchvision.transforms.functional import to_tensor
    from torchvision.utils import save_image

    tiles = []
    columns = min(per_identity, int(table.groupby("identity").size().min()))
    for identity in sorted(table.identity.unique())[:identities]:
        rows = table[table.identity == identity].head(columns)
        if isinstance(rows.render_file.iloc[0], str) and rows.render_file.iloc[0]:
            tiles += [to_tensor(read_image(out, f)) for f in rows.render_file]
        tiles += [to_tensor(read_image(out, f)) for f in rows.file]
    with atomic_path(path) as temporary:
        save_image(torch.stack(tiles), temporary, nrow=columns, padding=2, pad_value=1.0, format="png")
