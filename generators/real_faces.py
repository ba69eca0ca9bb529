"""`python -m generators.real_faces`: the real domain R, aligned real face crops, prepared once.

    python -m generators.real_faces --lfw peopleDevTrain --out runs/real-lfw
    python -m generators.real_faces --images DIR --out runs/real

Alignment and writing live in the faces layer (`recognition.faces.real_faces.prepare_faces`); this
command adds LFW's people lists (only View 1 training people, through `generators.pairs.lfw_photos`).
"""
from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from bench.common.cli import add_common_arguments, run_main, setup_logging
from bench.common.devices import resolve_device
from generators.pairs import lfw_photos
from recognition.faces.real_faces import list_face_images, photo_keys, prepare_faces


def lfw_training_photos(people_file: str = "peopleDevTrain", root=None) -> list[tuple[str, Path]]:
    return [(photo.key.replace("/", "_"), photo.path) for photo in lfw_photos(people_file, 10_000, root)]



def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m generators.real_faces", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--lfw", help="LFW people file without .txt (only peopleDevTrain)")
    source.add_argument("--images", type=Path, help="a folder of photos")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--device", default="auto",
                        help="where MTCNN runs: auto (this process's GPU when CUDA exists, else the CPU), cpu, cuda or cuda:N")
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    device = resolve_device(args.device)
    if args.lfw:
        photos = lfw_training_photos(args.lfw, args.data_root)
    else:
        photos = photo_keys(args.images, list_face_images(args.images))
    counts = prepare_faces(photos[: args.limit], args.out, device=device)
    unreadable = counts.pop("unreadable files", [])
    print(f"{counts} -> {args.out}")
    if unreadable:
        shown = "\n  ".join(unreadable[:10]) + (f"\n  ... and {len(unreadable) - 10} more" if len(unreadable) > 10 else "")
        print(f"unreadable (skipped):\n  {shown}")
    return 0


if __name__ == "__main__":
    run_main(main)
