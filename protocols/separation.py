"""Identity separation of face datasets (the paper's Fig. 6): same- vs different-identity distances.

    python -m protocols.separation --dataset renders=runs/renders --dataset lfw --embedder dlib-resnet --pairs 1000

A dataset is `name=FOLDER` (one sub-folder per identity, images already aligned to the canonical
crop, as `generators.render` and `generators.synthesize` write them) or `lfw` (LFW people with two or
more images, aligned with MTCNN). From each, `--pairs` same-identity and `--pairs` different-identity
pairs are drawn (seeded), embedded, and their Euclidean distances (of L2-normalised features for
cosine embedders) compared: mean distances, d' = (mean_diff - mean_same) / sqrt((var_same + var_diff) / 2),
ROC AUC and EER of "same" = small distance, and a 95% bootstrap interval of d' (`d_prime_low`, `d_prime_high`)
so that two sets' d' can be told apart from the noise of drawing `--pairs` pairs. Writes separation.csv/.md and a
histogram panel per dataset.
"""
from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from bench.common.atomic import save_figure, write_text
from bench.common.cli import UserError, add_common_arguments, require_at_least, run_main, setup_logging
from bench.common.datasets import data_root
from protocols.embedding import (
    FaceItem, add_embedder_arguments, add_embedding_arguments, embed_items, embedder_from_arguments, embedding_options,
)
from protocols.metrics import equal_error_rate, roc_auc
from protocols.report import markdown_table

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


@dataclass
class FaceSet:
    name: str
    identities: dict[str, list[Path]]  # identity -> images
    aligner: str  # "prealigned" for canonical crops, "mtcnn" for photos


def folder_dataset(name: str, folder: Path) -> FaceSet:
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"--dataset {name}={folder}: not a folder")
    identities = {d.name: sorted(p for p in d.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
                  for d in sorted(folder.iterdir()) if d.is_dir()}
    identities = {k: v for k, v in identities.items() if len(v) >= 2}
    if len(identities) < 2:
        raise UserError(f"--dataset {name}={folder}: needs at least 2 identity folders with 2 or more images each")
    return FaceSet(name, identities, "prealigned")


def lfw_dataset(root=None) -> FaceSet:
    from protocols.lfw_files import LFWLayout

    layout = LFWLayout(data_root(root))
    people = layout.people("people.txt")
    identities = {p.name: [layout.image_path(p.name, i) for i in range(1, p.images + 1)] for p in people if p.images >= 2}
    return FaceSet("lfw", identities, "mtcnn")


def sample_pairs(faces: FaceSet, count: int, seed: int) -> tuple[list[tuple[Path, Path]], list[tuple[Path, Path]]]:
    rng = np.random.default_rng(seed)
    names = sorted(faces.identities)
    same, different = [], []
    for _ in range(count):
        images = faces.identities[names[rng.integers(len(names))]]
        a, b = rng.choice(len(images), 2, replace=False)
        same.append((images[a], images[b]))
        first, second = rng.choice(len(names), 2, replace=False)
        different.append((faces.identities[names[first]][rng.integers(len(faces.identities[names[first]]))],
                          faces.identities[names[second]][rng.integers(len(faces.identities[names[second]]))]))
    return same, different


@dataclass
class Separation:
    """Separability figures of one dataset, its same and different distances, and the embedded images."""

    row: dict
    same: np.ndarray
    different: np.ndarray
    paths: list[Path]
    features: np.ndarray


def d_prime(same: np.ndarray, different: np.ndarray, axis: int = -1) -> np.ndarray:
    """Sensitivity index of "same identity = smaller distance": the gap between the two means in units of their
    pooled standard deviation (population variances, as the row's d')."""
    return (different.mean(axis) - same.mean(axis)) / np.sqrt((same.var(axis) + different.var(axis)) / 2)


def d_prime_interval(same: np.ndarray, different: np.ndarray, seed: int, resamples: int = 2000,
                     confidence: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of d' (`scipy.stats.bootstrap`, the two samples resampled independently).

    Why: the README compares translators by d' from 1,000 pairs each, and "within the noise" needs a number.
    It covers the noise of drawing the pairs only: pairs share identities and images, so the true spread is
    somewhat wider, and a translator's training seed adds its own (measure that by training it twice)."""
    from scipy.stats import bootstrap

    result = bootstrap((same, different), d_prime, n_resamples=resamples, confidence_level=confidence,
                       method="percentile", vectorized=True, rng=np.random.default_rng(seed))
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def separation(faces: FaceSet, embedder, pairs: int, seed: int = 0, **embed_options) -> Separation:
    """Sample the pairs of one dataset, embed their images and compare same and different distances."""
    same, different = sample_pairs(faces, pairs, seed)
    paths = sorted({p for pair in same + different for p in pair})
    index = {p: i for i, p in enumerate(paths)}
    items = [FaceItem(f"separation/{p.resolve()}", p) for p in paths]
    features = embed_items(embedder, items, aligner=faces.aligner, **embed_options).features
    if embedder.metric == "cosine":
        features = features / np.linalg.norm(features, axis=1, keepdims=True).clip(1e-12)

    def distances(pair_list):
        return np.array([np.linalg.norm(features[index[a]] - features[index[b]]) for a, b in pair_list])

    d_same, d_diff = distances(same), distances(different)
    scores = -np.concatenate([d_same, d_diff])
    labels = np.concatenate([np.ones(len(d_same)), np.zeros(len(d_diff))])
    row = {"dataset": faces.name, "identities": len(faces.identities), "pairs": pairs,
           "mean_same": float(d_same.mean()), "mean_different": float(d_diff.mean()),
           "d_prime": float(d_prime(d_same, d_diff)), "auc": roc_auc(scores, labels),
           "eer": equal_error_rate(scores, labels)}
    resamplable = min(len(d_same), len(d_diff)) > 1  # one pair has no spread to resample
    row["d_prime_low"], row["d_prime_high"] = d_prime_interval(d_same, d_diff, seed) if resamplable else (np.nan, np.nan)
    return Separation(row, d_same, d_diff, paths, features)


def plot_separation(distances: dict[str, tuple[np.ndarray, np.ndarray]], path: Path, embedder: str) -> None:
    figure, axes = plt.subplots(1, len(distances), figsize=(4.2 * len(distances), 3.4), sharex=True, squeeze=False)
    for axis, (name, (same, different)) in zip(axes[0], distances.items()):
        frame = pd.DataFrame({"distance": np.concatenate([same, different]),
                              "pair": ["same identity"] * len(same) + ["different identities"] * len(different)})
        sns.histplot(frame, x="distance", hue="pair", bins=40, stat="density", common_norm=False, element="step", ax=axis)
        axis.set_title(name)
    figure.suptitle(f"Euclidean distances in {embedder}")
    save_figure(figure, path)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m protocols.separation", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser)
    parser.add_argument("--dataset", action="append", required=True, help="NAME=FOLDER (identity sub-folders) or lfw")
    add_embedder_arguments(parser, default="dlib-resnet")
    parser.add_argument("--pairs", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("results/separation"))
    parser.add_argument("--realism-reference", default="lfw",
                        help="the real set the realism figures compare with (a --dataset name; 'none' to skip)")
    parser.add_argument("--realism-images", type=int, default=1000, help="images per set for the image statistics")
    add_embedding_arguments(parser)
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    require_at_least(args, seed=0)
    if args.pairs < 1:
        raise UserError("--pairs must be positive")
    datasets = []
    for spec in args.dataset:
        if spec == "lfw":
            datasets.append(lfw_dataset(args.data_root))
        elif "=" in spec:
            name, folder = spec.split("=", 1)
            datasets.append(folder_dataset(name, Path(folder)))
        else:
            raise UserError(f"--dataset {spec}: expected NAME=FOLDER or lfw")
    names = [faces.name for faces in datasets]
    if len(set(names)) != len(names):
        raise UserError(f"--dataset names must differ: {', '.join(names)}")
    reference = None if args.realism_reference == "none" else args.realism_reference
    if reference is not None and reference not in names:
        if args.realism_reference != parser.get_default("realism_reference"):
            raise UserError(f"--realism-reference {reference}: no --dataset has that name ({', '.join(names)})")
        reference = None
    embedder = embedder_from_arguments(args)
    options = embedding_options(args)
    results = {faces.name: separation(faces, embedder, args.pairs, args.seed, **options) for faces in datasets}
    table = pd.DataFrame([result.row for result in results.values()])
    args.out.mkdir(parents=True, exist_ok=True)
    write_text(args.out / "separation.csv", table.to_csv(index=False))
    write_text(args.out / "separation.md", markdown_table(table) + "\n")
    plot_separation({name: (r.same, r.different) for name, r in results.items()}, args.out / "separation.png",
                    args.embedder)
    print(markdown_table(table))
    if reference is not None:
        from protocols.realism import canonical_crops, plot_realism, realism_table

        crops = {}
        for faces in datasets:
            paths = results[faces.name].paths
            rng = np.random.default_rng(args.seed)  # per set, so its choice does not depend on the others
            chosen = sorted(rng.choice(len(paths), min(args.realism_images, len(paths)), replace=False))
            crops[faces.name] = canonical_crops([paths[i] for i in chosen], faces.aligner)
        realism = realism_table({name: r.features for name, r in results.items()}, crops, reference, args.seed)
        write_text(args.out / "realism.csv", realism.to_csv(index=False))
        write_text(args.out / "realism.md", markdown_table(realism) + "\n")
        plot_realism(realism, reference, args.out / "realism.png")
        print(markdown_table(realism))
    return 0


if __name__ == "__main__":
    run_main(main)
