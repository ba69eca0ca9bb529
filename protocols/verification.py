"""Verification on insightface's .bin sets (LFW, CFP-FP, CFP-FF, AgeDB-30, CALFW, CPLFW, VGG2-FP), in two conventions.

    python -m protocols.verification --bin DIR/agedb_30.bin --embedder dlib-resnet
    python -m protocols.verification --all DIR --embedder dlib-resnet --no-flip

The faces in these files are already aligned to ArcFace's 112x112 five-point template; each embedder gets
them warped into its own crop by the similarity between that template and its crop's (no re-detection):
`PrealignedAligner(ARCFACE_CROP)` for embedders with a crop geometry, LFW's loose-crop geometry (the
template in the central 1/2.2) for the others. Parts of a crop outside the 112x112 face are black.

Both conventions score the same features (with --flip, the default: f(image) + f(mirror image)):
- insightface's, as published in recognition/arcface_torch/eval/verification.py (`test` + `evaluate` +
  `calculate_roc`): features L2-normalised, squared Euclidean distance, 'same' when distance < t for t in
  0, 0.01, ..., 3.99; pairs split by KFold(10) without shuffling (consecutive blocks, the first n mod 10
  one pair longer); on each fold the first threshold with the best accuracy on the other nine is applied;
  reported as mean and population std (numpy's default, ddof=0) of the ten accuracies. Not reproduced:
  its VAL@FAR=1e-3 and PCA options.
- the project's (as protocols.lfw): the embedder's own similarity (cosine, or minus the Euclidean
  distance), the threshold halfway between scores on the other nine folds (protocols.metrics), the same
  ten blocks, mean and sample std (ddof=1); AUC, EER and TAR@FAR on the pooled scores.
"""
from __future__ import annotations

import argparse
import hashlib
import io
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from bench.common.atomic import write_text
from bench.common.cli import UserError, add_common_arguments, run_main, setup_logging
from protocols.embedding import (
    LOOSE_CROP, FaceItem, add_embedder_arguments, add_embedding_arguments, embed_items, embedder_from_arguments,
    embedding_options, pair_similarity,
)
from protocols.metrics import kfold_accuracies, verification_metrics
from protocols.report import markdown_table, summary_frame, write_report
from protocols.verification_files import KNOWN_SETS, VerificationSet, find_sets, read_bin
from recognition.embedders import Embedder
from recognition.embedders.registry import file_safe_name
from recognition.faces.align import ARCFACE_CROP, PrealignedAligner

log = logging.getLogger(__name__)

INSIGHTFACE_THRESHOLDS = np.arange(0, 4, 0.01)
FOLDS = 10


def consecutive_folds(pairs: int, folds: int = FOLDS) -> np.ndarray:
    """Fold id of each pair as scikit-learn's KFold(folds, shuffle=False) splits them: consecutive blocks,
    the first `pairs mod folds` blocks one pair longer. For the sets' 10 x 600 pairs, LFW's own folds."""
    if pairs < folds:
        raise UserError(f"{pairs} pairs cannot be split into {folds} folds")
    return np.concatenate([np.full(len(block), fold) for fold, block in enumerate(np.array_split(np.arange(pairs), folds))])


def insightface_squared_distances(features: np.ndarray, first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Squared Euclidean distance between the L2-normalised features of each pair (0..4)."""
    features = np.asarray(features, dtype=np.float64)
    norms = np.linalg.norm(features, axis=1, keepdims=True)
    unit = features / np.maximum(norms, 1e-12)  # as sklearn.preprocessing.normalize: a zero vector stays zero
    return np.sum((unit[first] - unit[second]) ** 2, axis=1)


def insightface_kfold_accuracies(squared_distances, issame, folds: np.ndarray,
                                 thresholds: np.ndarray = INSIGHTFACE_THRESHOLDS) -> tuple[np.ndarray, np.ndarray]:
    """Per-fold accuracy and threshold in insightface's convention: predict 'same' when distance < t, pick on
    the other folds the first t of `thresholds` with the highest accuracy, apply it to the held-out fold."""
    distances = np.asarray(squared_distances, dtype=np.float64)
    same = np.asarray(issame, dtype=bool)
    correct = (distances[:, None] < thresholds[None, :]) == same[:, None]  # (pairs, thresholds)
    accuracies, chosen = [], []
    for fold in np.unique(folds):
        held_out = folds == fold
        best = int(np.argmax(correct[~held_out].mean(axis=0)))  # argmax: the first of equally good thresholds
        chosen.append(thresholds[best])
        accuracies.append(correct[held_out, best].mean())
    return np.asarray(accuracies), np.asarray(chosen)


@dataclass
class VerificationResult:
    """One set evaluated: summary in both conventions, the per-fold table, the project's scores for plots."""

    summary: dict[str, Any]
    folds: pd.DataFrame
    scores: np.ndarray
    labels: np.ndarray
    config: dict[str, Any] = field(default_factory=dict)


def _items(embedder: Embedder, data: VerificationSet) -> tuple[list[FaceItem], np.ndarray]:
    """One FaceItem per distinct face of the file (sets repeat faces across pairs), and each image's item.

    Keys hold the file's content hash and the face's, so two .bin files never share cached features.
    Embedders without a crop geometry get the face with ArcFace's five template points, so that
    `embed_items` warps it into LFW's loose geometry (`LOOSE_CROP`) only when its features are not cached."""
    index_of: dict[str, int] = {}
    items: list[FaceItem] = []
    image_item = np.empty(len(data.images), dtype=np.int64)
    for position, content in enumerate(data.images):
        digest = hashlib.sha1(content).hexdigest()[:16]
        if digest not in index_of:
            points = None
            if embedder.crop is None:  # the embedder takes loose crops: the face is warped into one by the
                # template's five points, in embed_items' workers and only when not cached
                with Image.open(io.BytesIO(content)) as image:  # reads the header, not the pixels
                    width = image.width
                points = tuple(float(v) for v in ARCFACE_CROP.resized(width).template().ravel())
            index_of[digest] = len(items)
            items.append(FaceItem(f"verification/{data.file_id}/{digest}", Path(f"{data.path}#image{position}"),
                                  content=content, landmarks=points))
        image_item[position] = index_of[digest]
    return items, image_item


def evaluate_bin(embedder: Embedder, data: VerificationSet, flip: bool = True, **embed_options) -> VerificationResult:
    """Embed the set's faces (`embed_options` go to `embed_items`) and score its pairs in both conventions."""
    items, image_item = _items(embedder, data)
    embed_options.pop("aligner", None)
    embeddings = embed_items(embedder, items, aligner=PrealignedAligner(ARCFACE_CROP), flip=flip, **embed_options)
    first, second = image_item[0::2], image_item[1::2]
    labels = data.issame.astype(np.int64)
    folds = consecutive_folds(data.pairs)

    distances = insightface_squared_distances(embeddings.features, first, second)
    insight_accuracies, insight_thresholds = insightface_kfold_accuracies(distances, data.issame, folds)
    scores = pair_similarity(embeddings.features, first, second, embedder.metric)
    accuracies, thresholds = kfold_accuracies(scores, labels, folds)
    summary = {
        "insightface_accuracy_percent": 100 * float(insight_accuracies.mean()),
        "insightface_accuracy_std_percent": 100 * float(insight_accuracies.std()),
        "accuracy_percent": 100 * float(accuracies.mean()),
        "accuracy_std_percent": 100 * float(accuracies.std(ddof=1)),
        "accuracy_stderr_percent": 100 * float(accuracies.std(ddof=1) / np.sqrt(len(accuracies))),
        **verification_metrics(scores, labels),
        "distinct_faces": len(items),
    }
    table = pd.DataFrame({"fold": np.unique(folds) + 1, "pairs": np.bincount(folds),
                          "insightface_threshold": insight_thresholds,
                          "insightface_accuracy_percent": 100 * insight_accuracies,
                          "threshold": thresholds, "accuracy_percent": 100 * accuracies})
    config = {"set": data.name, "bin": str(data.path), "bin_sha1": data.sha1, "fixture": data.fixture_note,
              "embedder": embedder.name, "embedder_key": embedder.cache_key, "metric": embedder.metric,
              "flip": flip, "source_crop": ARCFACE_CROP.tag,
              "embedder_crop": (embedder.crop or LOOSE_CROP).tag}
    return VerificationResult(summary, table, scores, labels, config)


def _title(result: VerificationResult) -> str:
    fixture = " (FORMAT FIXTURE, not the real set)" if result.config["fixture"] else ""
    return f"{result.config['set']}.bin{fixture}: {result.config['embedder']}{' + flip' if result.config['flip'] else ''}"


def write_verification_report(result: VerificationResult, out_dir: Path) -> Path:
    """metrics.json/.md/.csv, folds.csv (both conventions per fold), ROC and score histogram (see protocols.report)."""
    return write_report(out_dir, _title(result), result.summary, result.config, {"folds": result.folds},
                        {result.config["embedder"]: (result.scores, result.labels)})


def summary_row(result: VerificationResult) -> dict[str, Any]:
    """One line of the --all table: the set, both accuracies, the threshold-free figures."""
    s = result.summary
    return {"set": result.config["set"] + (" (fixture)" if result.config["fixture"] else ""),
            "insightface acc %": f"{s['insightface_accuracy_percent']:.2f} ± {s['insightface_accuracy_std_percent']:.2f}",
            "project acc %": f"{s['accuracy_percent']:.2f} ± {s['accuracy_std_percent']:.2f}",
            "100-EER %": round(s["100-eer_percent"], 2), "AUC": round(s["auc"], 4),
            "TAR@FAR=1e-3": round(s["tar@far=0.001"], 4), "pairs": s["pairs"]}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m protocols.verification", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--bin", type=Path, help="one verification set (insightface's .bin layout)")
    source.add_argument("--all", type=Path, metavar="DIR", help=f"every known set in DIR ({', '.join(KNOWN_SETS)})")
    add_embedder_arguments(parser)
    parser.add_argument("--flip", action=argparse.BooleanOptionalAction, default=True,
                        help="embed image + mirror image (insightface's convention; default on)")
    add_embedding_arguments(parser)
    parser.add_argument("--out", type=Path, default=None,
                        help="results folder (default: results/verification/<embedder>[-noflip]/<set>)")
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    options = embedding_options(args)
    paths = find_sets(args.all) if args.all else [args.bin]
    sets = [read_bin(path) for path in paths]  # every file checked before any embedding
    embedder = embedder_from_arguments(args)
    out = args.out or Path("results/verification") / f"{file_safe_name(args.embedder)}{'' if args.flip else '-noflip'}"
    rows = []
    for data in sets:
        result = evaluate_bin(embedder, data, flip=args.flip, **options)
        folder = write_verification_report(result, out / data.name if args.all or args.out is None else out)
        print(f"{_title(result)}: results in {folder}\n")
        print(markdown_table(summary_frame(result.summary)) + "\n")
        rows.append(summary_row(result))
    if args.all:
        table = pd.DataFrame(rows)
        write_text(out / "summary.md", f"# Verification sets: {args.embedder}\n\n{table.to_markdown(index=False)}\n")
        write_text(out / "summary.csv", table.to_csv(index=False))
        print(table.to_markdown(index=False))
    return 0


if __name__ == "__main__":
    run_main(main)
