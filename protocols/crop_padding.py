"""The crop padding of an embedder, measured on LFW View 1 DevTrain only.

    python -m protocols.crop_padding --embedder facenet-keras --paddings 0.1 0.15 0.2 0.25 0.3 0.4
    python -m protocols.crop_padding --embedder facenet-keras --paddings 0.2 0.3 --option standardisation=fixed

A pretrained embedder expects faces framed as in its training data; in the project's one 5-point
geometry (recognition.faces.align) that framing is a padding around the unit face frame. LFW's
View 1 is the development view (Huang et al. 2007): the padding is chosen on `pairsDevTrain.txt`
alone, so neither DevTest nor the 10-fold View 2 figures take part in the choice.

MTCNN landmarks of the DevTrain images are found once; for each padding the images are warped to
the embedder's crop of that padding, embedded and the 2,200 pairs scored. Reported per padding:
accuracy at the best threshold on DevTrain itself (optimistic, but the same for every padding),
AUC and 100%-EER. Results: results/lfw/crop-padding/<embedder>[-options].md and .json.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from PIL import Image
from tqdm import tqdm

from bench.common.atomic import write_json, write_text
from bench.common.cli import UserError, add_common_arguments, run_main, setup_logging
from bench.common.datasets import data_root
from bench.common.images import to_rgb
from protocols.embedding import pair_similarity
from protocols.lfw_files import LFWLayout
from protocols.metrics import best_threshold, verification_metrics
from protocols.report import markdown_table
from recognition.embedders import get_embedder, list_embedders
from recognition.faces.align import MTCNNAligner, warp_to_crop

log = logging.getLogger(__name__)
PAIRS_FILE = "pairsDevTrain.txt"


def parse_options(options: Sequence[str]) -> dict[str, Any]:
    """`key=value` strings -> keyword options (values read as JSON when they parse, else as text)."""
    parsed = {}
    for option in options:
        key, sep, value = option.partition("=")
        if not sep or not key:
            raise UserError(f"--option takes key=value, not '{option}'")
        try:
            parsed[key] = json.loads(value)
        except json.JSONDecodeError:
            parsed[key] = value
    return parsed


def _load(path: Path) -> Image.Image:
    with Image.open(path) as opened:
        return to_rgb(opened)


def devtrain_landmarks(layout: LFWLayout, paths: Sequence[Path], batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """MTCNN's five landmarks (N, 5, 2) and 'face found' (N,) of each image, in batches."""
    aligner = MTCNNAligner()
    points, found = [], []
    for start in tqdm(range(0, len(paths), batch_size), desc="MTCNN landmarks"):
        batch_points, batch_found = aligner.landmarks([_load(p) for p in paths[start:start + batch_size]])
        points.append(batch_points)
        found.append(batch_found)
    return np.concatenate(points), np.concatenate(found)


def padding_study(name: str, paddings: Sequence[float], options: dict[str, Any], root: Path | None = None,
                  batch_size: int = 32) -> pd.DataFrame:
    """One row per padding: DevTrain accuracy at its best threshold, AUC, 100%-EER."""
    layout = LFWLayout(data_root(root))
    pairs = layout.pairs(PAIRS_FILE)
    keys: dict[tuple[str, int], int] = {}
    for pair in pairs:
        keys.setdefault((pair.name1, pair.image1), len(keys))
        keys.setdefault((pair.name2, pair.image2), len(keys))
    paths = [layout.image_path(person, image) for person, image in keys]
    first = np.array([keys[(p.name1, p.image1)] for p in pairs])
    second = np.array([keys[(p.name2, p.image2)] for p in pairs])
    labels = np.array([p.same for p in pairs], dtype=np.int64)
    landmarks, found = devtrain_landmarks(layout, paths, batch_size)
    rows = []
    for padding in paddings:
        embedder = get_embedder(name, padding=padding, **options)
        features = []
        with torch.inference_mode():
            for start in tqdm(range(0, len(paths), batch_size), desc=f"{name} padding {padding}"):
                chips = [warp_to_crop(_load(path), points, embedder.crop)
                         for path, points in zip(paths[start:start + batch_size], landmarks[start:start + batch_size])]
                features.append(embedder(torch.stack([embedder.transform(chip) for chip in chips])).float().numpy())
        scores = pair_similarity(np.concatenate(features), first, second, embedder.metric)
        _, accuracy = best_threshold(scores, labels)
        metrics = verification_metrics(scores, labels)
        rows.append({"padding": padding, "devtrain_accuracy_percent": 100 * accuracy, "auc": metrics["auc"],
                     "100-eer_percent": metrics["100-eer_percent"]})
        log.info("padding %.3f: accuracy %.2f%%, AUC %.4f", padding, 100 * accuracy, metrics["auc"])
    table = pd.DataFrame(rows)
    table.attrs.update(pairs=len(pairs), images=len(paths), alignment_misses=int((~found).sum()))
    return table


def choose_padding(table: pd.DataFrame) -> float:
    """Highest DevTrain accuracy; ties broken by 100%-EER, then AUC, then the smaller padding."""
    ranked = table.sort_values(["devtrain_accuracy_percent", "100-eer_percent", "auc", "padding"],
                               ascending=[False, False, False, True], kind="mergesort")
    return float(ranked.iloc[0]["padding"])


def write_study(out: Path, name: str, options: dict[str, Any], command: str, table: pd.DataFrame) -> str:
    """<out>/<embedder>[-key-value...].md and .json; returns the Markdown text."""
    stem = f"{name}{''.join(f'-{key}-{value}' for key, value in sorted(options.items()))}"
    described = f" ({', '.join(f'{key}={value}' for key, value in sorted(options.items()))})" if options else ""
    text = (f"# Crop padding of {name}{described}: LFW View 1 DevTrain\n\n`{command}`\n\n"
            f"{PAIRS_FILE}: {table.attrs['pairs']:,} pairs, {table.attrs['images']} images, MTCNN landmarks "
            f"({table.attrs['alignment_misses']} without a face: centred-box fallback). Accuracy at the best "
            f"threshold on DevTrain itself.\n\n{markdown_table(table)}\n\n"
            f"Chosen (highest accuracy, then 100%-EER, then AUC): padding {choose_padding(table)}.\n")
    write_text(Path(out) / f"{stem}.md", text)
    write_json(Path(out) / f"{stem}.json", {"command": command, "embedder": name, "options": options,
                                            "pairs_file": PAIRS_FILE, "pairs": table.attrs["pairs"], "images": table.attrs["images"],
                                            "alignment_misses": table.attrs["alignment_misses"],
                                            "chosen_padding": choose_padding(table),
                                            "rows": table.to_dict(orient="records")})
    return text


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m protocols.crop_padding", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser)
    parser.add_argument("--embedder", required=True, help=f"registered embedder with a padding option ({', '.join(list_embedders())})")
    parser.add_argument("--paddings", type=float, nargs="+", required=True, help="paddings to compare")
    parser.add_argument("--option", action="append", default=[], help="embedder option key=value (repeatable)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--out", type=Path, default=Path("results/lfw/crop-padding"))
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    if args.batch_size < 1:
        raise UserError("--batch-size must be >= 1")
    if any(not 0 <= p <= 1 for p in args.paddings):
        raise UserError(f"--paddings must lie between 0 and 1, got {args.paddings}")
    options = parse_options(args.option)
    table = padding_study(args.embedder, args.paddings, options, args.data_root, args.batch_size)
    command = "python -m protocols.crop_padding " + " ".join(argv if argv is not None else sys.argv[1:])
    text = write_study(args.out, args.embedder, options, command, table)
    print(text)
    return 0


if __name__ == "__main__":
    run_main(main)
