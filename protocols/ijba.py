"""IJB-A 1:1 template verification.

    python -m protocols.ijba --protocol-dir IJB-A_11_sets --embedder lbp [--image-root images]

Layout: `split{N}/verify_metadata_{N}.csv` (one row per face: TEMPLATE_ID, SUBJECT_ID, FILE, MEDIA_ID,
SIGHTING_ID, FACE_X, FACE_Y, FACE_WIDTH, FACE_HEIGHT; other columns are ignored) and
`split{N}/verify_comparisons_{N}.csv` (two template ids per line, no header). FILE is relative to
the image root (IJB-A: `images/`, holding `img/` and `frame/`).

Each face is cropped by its box (a square 2.2 times the box, as LFW's images are) and embedded;
features (L2-normalised first for cosine embedders) are averaged within each media, then across the
template's media, and L2-normalised (`protocols.templates`, shared with IJB-B/C); a comparison's score is the cosine of its two templates,
genuine when their SUBJECT_IDs match. TAR@FAR=0.01 and 0.001 are computed per split and reported
as mean and sample standard deviation (ddof=1) over the splits.

IJB-A itself cannot be had offline; `python -m protocols.ijba_fixture` builds a protocol folder in
this format from LFW identities to exercise the whole path. It is a format fixture, not IJB-A.
"""
from __future__ import annotations

import argparse
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.common.cli import UserError, add_common_arguments, run_main, setup_logging
from recognition.faces.align import ALIGNERS
from protocols.embedding import (
    FaceItem, add_embedder_arguments, add_embedding_arguments, embed_items, embedder_from_arguments, embedding_options,
)
from protocols.metrics import verification_metrics
from protocols.report import markdown_table, write_report
from protocols.templates import template_features
from recognition.embedders import Embedder
from recognition.embedders.registry import file_safe_name

log = logging.getLogger(__name__)

METADATA_COLUMNS = ("TEMPLATE_ID", "SUBJECT_ID", "FILE", "MEDIA_ID", "SIGHTING_ID",
                    "FACE_X", "FACE_Y", "FACE_WIDTH", "FACE_HEIGHT")
IJBA_FARS = (1e-2, 1e-3)


@dataclass
class IJBASplit:
    number: int
    metadata: pd.DataFrame
    comparisons: np.ndarray  # (P, 2) template ids


def find_splits(protocol_dir: Path) -> list[int]:
    """Split numbers N with a `split{N}/verify_metadata_{N}.csv`, sorted."""
    protocol_dir = Path(protocol_dir)
    if not protocol_dir.is_dir():
        raise UserError(f"IJB-A protocol folder not found: {protocol_dir}")
    folders = {int(m.group(1)): p for p in protocol_dir.iterdir() if (m := re.fullmatch(r"split(\d+)", p.name))}
    incomplete = [f"{folder.name}/ lacks {name}" for number, folder in sorted(folders.items())
                  for name in (f"verify_metadata_{number}.csv", f"verify_comparisons_{number}.csv")
                  if not (folder / name).is_file()]
    if incomplete and len(incomplete) < 2 * len(folders):  # some splits whole, some not: never drop one silently
        raise UserError(f"{protocol_dir}: incomplete split folders ({'; '.join(incomplete)}): restore them, or "
                        "move them away and choose the splits with --splits")
    numbers = sorted(folders) if not incomplete else []
    if not numbers:
        raise UserError(f"{protocol_dir}: no split folders 'split<N>/verify_metadata_<N>.csv' found; "
                        "point --protocol-dir at IJB-A's 'IJB-A_11_sets' folder")
    return numbers


def read_metadata(path: Path) -> pd.DataFrame:
    """The required columns of a verify_metadata file, validated; errors name the file, column and line."""
    try:
        frame = pd.read_csv(path, skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise UserError(f"{path}: cannot parse as CSV ({error})") from None
    frame.columns = [str(c).strip().upper() for c in frame.columns]
    for column in METADATA_COLUMNS:
        if column not in frame.columns:
            raise UserError(f"{path}: missing column {column} (found: {', '.join(frame.columns)})")
    frame = frame[list(METADATA_COLUMNS)].copy()
    for column in METADATA_COLUMNS:
        if column == "FILE":
            bad = frame[column].isna()
        else:
            frame[column] = pd.to_numeric(frame[column], errors="coerce")
            bad = frame[column].isna() | ~np.isfinite(frame[column].to_numpy(dtype=float))
        if bad.any():
            line = int(np.flatnonzero(bad.to_numpy())[0]) + 2  # header is line 1
            raise UserError(f"{path}:{line}: column {column} is empty or not a finite number")
    for column in ("FACE_WIDTH", "FACE_HEIGHT"):
        bad = frame[column] <= 0
        if bad.any():
            line = int(np.flatnonzero(bad.to_numpy())[0]) + 2
            raise UserError(f"{path}:{line}: {column} must be positive, not {frame[column].iloc[line - 2]:g}")
    for column in ("TEMPLATE_ID", "SUBJECT_ID", "MEDIA_ID", "SIGHTING_ID"):
        frame[column] = frame[column].astype(np.int64)
    return frame


def read_comparisons(path: Path, templates: set[int]) -> np.ndarray:
    """(P, 2) template id pairs; every id must be a template of the split's metadata."""
    if not Path(path).is_file():
        raise UserError(f"comparisons file not found: {path}")
    pairs = []
    for number, raw in enumerate(Path(path).read_bytes().splitlines(), 1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            raise UserError(f"{path}:{number}: not UTF-8 text (byte {raw[error.start]:#04x} at column "
                            f"{error.start + 1}); expected two template ids 'A,B'") from None
        if not line.strip():
            continue
        fields = [f.strip() for f in line.split(",")]
        if len(fields) != 2 or not all(f.lstrip("-").isdigit() for f in fields):
            raise UserError(f"{path}:{number}: expected two template ids 'A,B', found {line!r}")
        first, second = int(fields[0]), int(fields[1])
        for template in (first, second):
            if template not in templates:
                raise UserError(f"{path}:{number}: template {template} is not in the split's metadata")
        pairs.append((first, second))
    if not pairs:
        raise UserError(f"{path}: no comparisons")
    return np.asarray(pairs, dtype=np.int64)


def load_split(protocol_dir: Path, number: int) -> IJBASplit:
    folder = Path(protocol_dir) / f"split{number}"
    metadata = read_metadata(folder / f"verify_metadata_{number}.csv")
    comparisons = read_comparisons(folder / f"verify_comparisons_{number}.csv", set(metadata.TEMPLATE_ID))
    return IJBASplit(number, metadata, comparisons)


def face_key(row) -> str:
    return f"ijba/{row.FILE}@{row.FACE_X:g},{row.FACE_Y:g},{row.FACE_WIDTH:g},{row.FACE_HEIGHT:g}"


def resolve_image_root(protocol_dir: Path, image_root: Path | None) -> Path:
    if image_root is not None:
        if not Path(image_root).is_dir():
            raise UserError(f"--image-root {image_root} is not a folder")
        return Path(image_root)
    for candidate in (Path(protocol_dir) / "images", Path(protocol_dir).parent / "images"):
        if candidate.is_dir():
            return candidate
    raise UserError(f"no image folder found at {Path(protocol_dir) / 'images'} or {Path(protocol_dir).parent / 'images'}; "
                    "pass --image-root (the folder that FILE paths are relative to)")


@dataclass
class IJBAResult:
    summary: dict[str, Any]
    per_split: pd.DataFrame
    curves: dict[str, tuple[np.ndarray, np.ndarray]]
    config: dict[str, Any] = field(default_factory=dict)


def evaluate_ijba(embedder: Embedder, protocol_dir: Path, image_root: Path | None = None,
                  splits: Sequence[int] | None = None, **embed_options) -> IJBAResult:
    """Run IJB-A 1:1 verification on every split (or the given ones); faces are embedded once for all splits."""
    protocol_dir = Path(protocol_dir)
    available = find_splits(protocol_dir)
    chosen = list(splits) if splits else available
    unknown = sorted(set(chosen) - set(available))
    if unknown:
        raise UserError(f"{protocol_dir}: split(s) {unknown} not found; available: {available}")
    images = resolve_image_root(protocol_dir, image_root)
    loaded = [load_split(protocol_dir, number) for number in chosen]
    keys: dict[str, int] = {}
    items: list[FaceItem] = []
    for split in loaded:
        for row in split.metadata.itertuples(index=False):
            key = face_key(row)
            if key not in keys:
                keys[key] = len(items)
                items.append(FaceItem(key, images / row.FILE, (row.FACE_X, row.FACE_Y, row.FACE_WIDTH, row.FACE_HEIGHT)))
    embeddings = embed_items(embedder, items, **embed_options)
    features = embeddings.features
    rows, curves = [], {}
    for split in loaded:
        face_rows = np.array([keys[face_key(row)] for row in split.metadata.itertuples(index=False)])
        templates = template_features(split.metadata, features[face_rows], embedder.metric == "cosine")
        subject = split.metadata.groupby("TEMPLATE_ID").SUBJECT_ID.first().to_dict()
        first = np.stack([templates[t] for t in split.comparisons[:, 0]])
        second = np.stack([templates[t] for t in split.comparisons[:, 1]])
        scores = np.sum(first * second, axis=1)
        labels = np.array([subject[a] == subject[b] for a, b in split.comparisons], dtype=np.int64)
        rows.append({"split": split.number, **verification_metrics(scores, labels, IJBA_FARS)})
        curves[f"split {split.number}"] = (scores, labels)
    per_split = pd.DataFrame(rows)
    summary: dict[str, Any] = {"splits": len(loaded), "alignment_misses": embeddings.alignment_misses}
    for column in ("tar@far=0.01", "tar@far=0.001", "auc", "100-eer_percent"):
        summary[f"{column}_mean"] = float(per_split[column].mean())
        summary[f"{column}_std"] = float(per_split[column].std(ddof=1)) if len(per_split) > 1 else float("nan")
    config = {"embedder": embedder.name, "embedder_key": embedder.cache_key, "protocol_dir": str(protocol_dir),
              "image_root": str(images), "splits": chosen, "flip": bool(embed_options.get("flip", False))}
    return IJBAResult(summary, per_split, curves, config)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m protocols.ijba", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser)
    parser.add_argument("--protocol-dir", type=Path, required=True, help="folder holding split1 ... split10")
    parser.add_argument("--image-root", type=Path, default=None, help="folder FILE paths are relative to")
    add_embedder_arguments(parser)
    parser.add_argument("--splits", default=None, help="comma-separated split numbers (default: all)")
    parser.add_argument("--flip", action="store_true")
    parser.add_argument("--aligner", choices=ALIGNERS, default="mtcnn",
                        help="face alignment for embedders that need aligned crops")
    add_embedding_arguments(parser)
    parser.add_argument("--out", type=Path, default=None, help="results folder (default: results/ijba/<embedder>)")
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    try:
        splits = [int(s) for s in args.splits.split(",")] if args.splits else None
    except ValueError:
        raise UserError(f"--splits must be comma-separated integers, found '{args.splits}'") from None
    embedder = embedder_from_arguments(args)
    result = evaluate_ijba(embedder, args.protocol_dir, args.image_root, splits, flip=args.flip, aligner=args.aligner,
                           **embedding_options(args))
    out = args.out or Path("results/ijba") / file_safe_name(args.embedder)
    title = f"IJB-A 1:1 verification ({args.protocol_dir.name}): {args.embedder}"
    write_report(out, title, result.summary, result.config, {"splits": result.per_split}, result.curves)
    print(f"{title}: results in {out}\n")
    print(markdown_table(result.per_split))
    print()
    print(markdown_table(pd.DataFrame([{"metric": k, "value": v} for k, v in result.summary.items()])))
    return 0


if __name__ == "__main__":
    run_main(main)
