"""LFW face verification, unrestricted protocol (View 2, 10 folds) and View 1.

    python -m protocols.lfw --embedder lbp --split 10fold
    python -m protocols.lfw --embedder lbp --split view1 --flip

10fold: `pairs.txt`, 10 folds x (300 matched + 300 mismatched). For each fold the threshold that
maximises accuracy on the other nine folds is applied to it; accuracy is reported as the mean over
the ten folds with the sample standard deviation (ddof=1) and LFW's standard error (std / sqrt(10)).
100%-EER, AUC and TAR@FAR are computed once on the 6,000 pooled scores (see protocols.metrics).
view1: the threshold is chosen on `pairsDevTrain.txt` and applied to `pairsDevTest.txt`; the other
figures are computed on DevTest.
"""
from __future__ import annotations

import argparse
import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.common.cli import UserError, add_common_arguments, check_output_folder, run_main, setup_logging
from bench.common.datasets import data_root, portable_path
from recognition.faces.align import ALIGNERS
from protocols.embedding import (
    FaceItem, add_embedder_arguments, add_embedding_arguments, embed_items, embedder_from_arguments, embedding_options,
    pair_similarity,
)
from protocols.lfw_files import LFW_DIR, PAIRS_FILES, LFWLayout, Pair
from protocols.metrics import accuracy_at_threshold, best_threshold, kfold_accuracies, verification_metrics
from protocols.report import markdown_table, stored_metrics, summary_frame, write_report
from recognition.embedders import Embedder
from recognition.embedders.registry import file_safe_name

log = logging.getLogger(__name__)
SPLITS = tuple(PAIRS_FILES)


@dataclass
class LFWResult:
    """Everything one LFW evaluation produced: the summary, the per-fold table, scores for plots."""

    split: str
    summary: dict[str, Any]
    folds: pd.DataFrame
    scores: np.ndarray
    labels: np.ndarray
    threshold: float | None = None
    config: dict[str, Any] = field(default_factory=dict)


def pair_face_items(layout: LFWLayout, pairs: Sequence[Pair]) -> tuple[list[FaceItem], dict[tuple[str, int], int]]:
    """Each distinct photo of `pairs` once, in order of first appearance, as a FaceItem whose key names the
    photo within the LFW folder (so every caller shares the embedding cache), and (name, number) -> index."""
    keys: dict[tuple[str, int], int] = {}
    for pair in pairs:
        keys.setdefault((pair.name1, pair.image1), len(keys))
        keys.setdefault((pair.name2, pair.image2), len(keys))
    items = [FaceItem(f"lfw/{layout.images_dir.name}/{name}/{image:04d}", layout.image_path(name, image))
             for name, image in keys]
    return items, keys


def _score_pairs(embedder: Embedder, layout: LFWLayout, pairs: Sequence[Pair],
                 **embed_options) -> tuple[np.ndarray, int]:
    """Similarity of each pair, and the number of images in which the aligner found no face."""
    items, keys = pair_face_items(layout, pairs)
    embeddings = embed_items(embedder, items, **embed_options)
    features = embeddings.features
    first = np.array([keys[(p.name1, p.image1)] for p in pairs])
    second = np.array([keys[(p.name2, p.image2)] for p in pairs])
    return pair_similarity(features, first, second, embedder.metric), embeddings.alignment_misses


def pairs_digest(layout: LFWLayout, split: str) -> str:
    """SHA-1 of the split's pairs files: what makes two evaluations the same data, whatever the data root's path
    (a stored result is reused only for the same pairs; a damaged or edited copy is evaluated afresh)."""
    digest = hashlib.sha1()
    for name in PAIRS_FILES[split]:
        digest.update((layout.data_root / LFW_DIR / name).read_bytes())
    return digest.hexdigest()


def evaluate_lfw(embedder: Embedder, root: Path | None = None, split: str = "10fold", *,
                 layout: LFWLayout | None = None, **embed_options) -> LFWResult:
    """Run the LFW protocol `split` ('10fold' or 'view1') for `embedder` on the LFW under data root `root`.

    `layout`: the LFW folder, when the caller has already found and checked it (the CLI does, to reuse a
    stored result). `embed_options` go to `protocols.embedding.embed_items` (batch_size, workers, flip,
    use_cache, progress).
    """
    if split not in SPLITS:
        raise UserError(f"unknown LFW split '{split}'; choose one of {', '.join(SPLITS)}")
    if layout is None:
        layout = LFWLayout(data_root(root))
        layout.require(*PAIRS_FILES[split])
    aligner = embed_options.get("aligner", "mtcnn")
    config = {"embedder": embedder.name, "embedder_key": embedder.cache_key, "metric": embedder.metric,
              "split": split, "flip": bool(embed_options.get("flip", False)),
              "data_root": portable_path(layout.data_root, root),  # as a record another machine can read
              "pairs_digest": pairs_digest(layout, split),  # which pairs were scored, wherever the data lies
              "aligner": (aligner if isinstance(aligner, str) else aligner.name) if embedder.crop else None}
    if split == "10fold":
        pairs = layout.pairs("pairs.txt")
        scores, misses = _score_pairs(embedder, layout, pairs, **embed_options)
        labels = np.array([p.same for p in pairs], dtype=np.int64)
        folds = np.array([p.fold for p in pairs])
        accuracies, thresholds = kfold_accuracies(scores, labels, folds)
        summary = {
            "accuracy_percent": 100 * float(accuracies.mean()),
            "accuracy_std_percent": 100 * float(accuracies.std(ddof=1)),
            "accuracy_stderr_percent": 100 * float(accuracies.std(ddof=1) / np.sqrt(len(accuracies))),
            **verification_metrics(scores, labels),
            "alignment_misses": misses,
        }
        table = pd.DataFrame({"fold": np.unique(folds) + 1, "threshold": thresholds,
                              "accuracy_percent": 100 * accuracies})
        return LFWResult(split, summary, table, scores, labels, None, config)
    train_pairs, test_pairs = layout.pairs("pairsDevTrain.txt"), layout.pairs("pairsDevTest.txt")
    scores, misses = _score_pairs(embedder, layout, list(train_pairs) + list(test_pairs), **embed_options)
    labels = np.array([p.same for p in list(train_pairs) + list(test_pairs)], dtype=np.int64)
    train = np.arange(len(scores)) < len(train_pairs)
    threshold, train_accuracy = best_threshold(scores[train], labels[train])
    test_accuracy = accuracy_at_threshold(scores[~train], labels[~train], threshold)
    summary = {"accuracy_percent": 100 * test_accuracy, "train_accuracy_percent": 100 * train_accuracy,
               "threshold": threshold, **verification_metrics(scores[~train], labels[~train]),
               "alignment_misses": misses}
    table = pd.DataFrame({"set": ["DevTrain", "DevTest"], "pairs": [int(train.sum()), int((~train).sum())],
                          "accuracy_percent": [100 * train_accuracy, 100 * test_accuracy]})
    return LFWResult(split, summary, table, scores[~train], labels[~train], threshold, config)


def stored_lfw_result(out: Path, embedder: Embedder, layout: LFWLayout, split: str = "10fold", aligner: str = "mtcnn",
                      flip: bool = False) -> dict[str, Any] | None:
    """The metrics.json in `out` when it holds this evaluation: the same pairs (by content, wherever the data root
    lies), embedder, alignment, flip and split; else None."""
    wanted = {"embedder_key": embedder.cache_key, "pairs_digest": pairs_digest(layout, split),
              "aligner": aligner if embedder.crop else None, "flip": flip, "split": split}
    return stored_metrics(out, wanted)


def default_out(embedder_name: str, embedder: Embedder, split: str = "10fold", aligner: str = "mtcnn",
                flip: bool = False) -> Path:
    """results/lfw/<embedder>[-<aligner>]-<split>[-flip]: where `python -m protocols.lfw` writes by default."""
    aligned = f"-{aligner}" if embedder.crop else ""
    return Path("results/lfw") / f"{file_safe_name(embedder_name)}{aligned}-{split}{'-flip' if flip else ''}"


def write_lfw_report(result: LFWResult, out_dir: Path) -> Path:
    aligned = f" ({result.config['aligner']} alignment)" if result.config.get("aligner") else ""
    title = f"LFW {result.split}: {result.config['embedder']}{aligned}{' + flip' if result.config['flip'] else ''}"
    return write_report(out_dir, title, result.summary, result.config, {"folds": result.folds},
                        {result.config["embedder"]: (result.scores, result.labels)}, result.threshold)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m protocols.lfw", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser)
    add_embedder_arguments(parser)
    parser.add_argument("--split", choices=SPLITS, default="10fold")
    parser.add_argument("--flip", action="store_true", help="embed image + mirror image (flip test)")
    parser.add_argument("--aligner", choices=ALIGNERS, default="mtcnn",
                        help="face alignment for embedders that need aligned crops (dlib = dlib-bin's pipeline)")
    add_embedding_arguments(parser)
    parser.add_argument("--out", type=Path, default=None,
                        help="results folder (default: results/lfw/<embedder>-<split>[-flip])")
    parser.add_argument("--force", action="store_true", help="recompute even if the results folder is complete")
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    options = embedding_options(args)
    if args.out is not None:
        check_output_folder(args.out)  # before the embedder loads its weights
    embedder = embedder_from_arguments(args)
    out = args.out or default_out(args.embedder, embedder, args.split, args.aligner, args.flip)
    check_output_folder(out)
    layout = LFWLayout(data_root(args.data_root))
    layout.require(*PAIRS_FILES[args.split])  # a stored result is reused only where the data is
    previous = None if args.force else stored_lfw_result(out, embedder, layout, args.split, args.aligner, args.flip)
    if previous is not None:
        print(f"{previous['title']} (cached in {out}; --force recomputes)\n")
        print(markdown_table(summary_frame(previous["metrics"])))
        return 0
    result = evaluate_lfw(embedder, args.data_root, args.split, layout=layout, flip=args.flip,
                          aligner=args.aligner, **options)
    write_lfw_report(result, out)
    print(f"LFW {args.split}, embedder {args.embedder}: results in {out}\n")
    print(markdown_table(summary_frame(result.summary)))
    if args.split == "10fold":
        print()
        print(markdown_table(result.folds))
    return 0


if __name__ == "__main__":
    run_main(main)
