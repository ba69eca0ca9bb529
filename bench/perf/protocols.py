"""Evaluation speed per protocol: faces per second end to end, MTCNN alone, and a repeat served by the cache.

    python -m bench.perf.protocols [--embedders dlib-resnet,lbp] [--lfw-images 200]

An evaluation is dominated by decoding, finding the face (MTCNN, or a warp by given points) and
embedding; scoring is milliseconds. Each protocol runs its own evaluation function: LFW's path
(`embed_items` with MTCNN on `--lfw-images` photos of pairs.txt, the path `protocols.lfw` and
`protocols.ijba` take), `protocols.verification` on the LFW-made .bin fixture (faces already aligned:
a warp, no detection), `protocols.ijbc` on the IJB-C-layout fixture (a warp by the given five points)
and `protocols.ijba` on the IJB-A-layout fixture (MTCNN inside the given box). The fixtures are the
ones `bench.leaderboard --fixtures` uses (built once in the cache folder when missing). Each is run
cold (the embedding cache in a fresh folder), then again (features read from the cache): the second
column is what re-running an evaluation, or adding a protocol to a leaderboard, costs.
MTCNN alone: its images per second on the same LFW photos, batched as `embed_items` batches them.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from PIL import Image

from bench.common.cli import UserError, add_common_arguments, run_main, setup_logging
from bench.common.datasets import cache_dir, data_root
from bench.leaderboard.columns import build_fixtures
from bench.perf.record import write_record
from protocols.embedding import FaceItem, embed_items
from protocols.ijba import evaluate_ijba, face_key, find_splits, load_split
from protocols.ijbc import evaluate_ijb, face_items, load_protocol
from protocols.lfw import pair_face_items
from protocols.lfw_files import LFWLayout
from protocols.verification import evaluate_bin
from protocols.verification_files import read_bin
from recognition.embedders import get_embedder
from recognition.faces.align import CANONICAL_CROP, get_aligner

BATCH_SIZE = 64


def lfw_items(root: Path | None, count: int) -> list[FaceItem]:
    """The first `count` distinct photos of pairs.txt, keyed as protocols.lfw keys them (one cache)."""
    layout = LFWLayout(data_root(root))
    items, _ = pair_face_items(layout, layout.pairs("pairs.txt"))
    return items[:count]


def timed(run: Callable[[], object]) -> float:
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def protocol_runs(embedder, fixtures: dict[str, Path], lfw: list[FaceItem]) -> dict[str, tuple[int, Callable[[], object]]]:
    """Protocol name -> (faces embedded, the evaluation to time)."""
    options = {"batch_size": BATCH_SIZE, "workers": 2, "progress": False}
    data = read_bin(fixtures["lfw-bin"])
    ijbc = load_protocol(fixtures["ijbc"])
    ijba_faces = len({face_key(row) for number in find_splits(fixtures["ijba"])
                      for row in load_split(fixtures["ijba"], number).metadata.itertuples()})
    return {
        "LFW path (MTCNN if the embedder aligns)": (len(lfw), lambda: embed_items(embedder, lfw, aligner="mtcnn", **options)),
        ".bin verification (warp, flip)": (len({hashlib.sha1(image).digest() for image in data.images}),
                                           lambda: evaluate_bin(embedder, data, flip=True, **options)),
        "IJB-C 1:1 + 1:N (given points)": (len(face_items(ijbc)[0]), lambda: evaluate_ijb(embedder, ijbc, **options)),
        "IJB-A 1:1 (boxes; MTCNN if it aligns)": (ijba_faces, lambda: evaluate_ijba(embedder, fixtures["ijba"], **options)),
    }


def mtcnn_rate(lfw: list[FaceItem]) -> float:
    """Images per second of MTCNN alone (detection, landmarks and the warp), in embed_items' batches."""
    aligner = get_aligner("mtcnn")
    photos = [Image.open(item.path).convert("RGB") for item in lfw]
    aligner.chips(photos[:4], CANONICAL_CROP)  # warm-up
    seconds = timed(lambda: [aligner.chips(photos[s : s + BATCH_SIZE], CANONICAL_CROP)
                             for s in range(0, len(photos), BATCH_SIZE)])
    return len(photos) / seconds


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.perf.protocols", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser)
    parser.add_argument("--embedders", default="dlib-resnet,lbp")
    parser.add_argument("--lfw-images", type=int, default=200, help="LFW photos for the LFW path and MTCNN alone")
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    if args.lfw_images < 1:
        raise UserError(f"--lfw-images must be at least 1, not {args.lfw_images}")
    fixtures = build_fixtures(data_root(args.data_root), cache_dir() / "leaderboard-fixtures")
    lfw = lfw_items(args.data_root, args.lfw_images)
    rows = []
    saved = os.environ.get("FACEBENCH_CACHE")
    try:
        for name in args.embedders.split(","):
            embedder = get_embedder(name.strip())
            for protocol, (faces, run) in protocol_runs(embedder, fixtures, lfw).items():
                with tempfile.TemporaryDirectory(prefix="facebench-perf-cache-") as fresh:
                    os.environ["FACEBENCH_CACHE"] = fresh  # cold: nothing cached; then the repeat reads it
                    cold = timed(run)
                    cached = timed(run)
                rows.append({"protocol": protocol, "embedder": name.strip(), "faces": faces, "seconds_cold": cold,
                             "faces_per_s_cold": faces / cold if faces else None, "seconds_repeat": cached,
                             "repeat_speedup": cold / cached})
                print(rows[-1], flush=True)
    finally:
        if saved is None:
            os.environ.pop("FACEBENCH_CACHE", None)
        else:
            os.environ["FACEBENCH_CACHE"] = saved
    rate = mtcnn_rate(lfw)
    command = f"python -m bench.perf.protocols --embedders {args.embedders} --lfw-images {args.lfw_images}"
    notes = (f"MTCNN alone (facenet-pytorch, CPU, batches of {BATCH_SIZE}, detection + five points + warp to the "
             f"canonical crop): {rate:.1f} images/s on {len(lfw)} LFW photos. Faces: distinct images embedded "
             "(the .bin fixture's 600 pairs repeat faces; IJB-A counts its faces' images). Cold = fresh embedding "
             "cache, including decoding, detection or warping and the embedder; repeat = the same evaluation "
             "again, features from the cache (scoring and pooling only). Fixtures: those of `bench.leaderboard "
             "--fixtures`, built from LFW: format fixtures, not the sets they are named after. 2 torch threads.")
    frame = write_record("protocols", "Evaluation speed per protocol: faces/s cold and a cached repeat", command,
                         rows, notes)
    print(frame.to_markdown(index=False, floatfmt=".2f"))
    print(notes)
    return 0


if __name__ == "__main__":
    run_main(main)
