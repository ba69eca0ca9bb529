"""`python -m generators.align`: measure the five-point template on LFW and draw alignment contact sheets.

Alignment itself lives in the faces layer (`recognition.faces.align`), which every stage shares;
these two tools read LFW's people lists, so they sit here, above `protocols.lfw_files`.

    python -m generators.align --derive-template            # needs dlib-bin
    python -m generators.align --contact-sheet sheet.png --limit 10
"""
from __future__ import annotations

import argparse
import importlib.util
import logging
from collections.abc import Sequence

import numpy as np
from PIL import Image

from bench.common.cli import add_common_arguments, run_main, setup_logging
from bench.common.datasets import data_root as resolve
from bench.common.weights import packaged_model_path
from protocols.lfw_files import LFWLayout
from recognition.faces.align import (
    CANONICAL_CROP,
    DLIB_CHIP,
    DlibChipAligner,
    MTCNNAligner,
    alignment_contact_sheet,
    similarity_transform,
)

log = logging.getLogger(__name__)


def derive_template(data_root=None, limit: int = 1000) -> np.ndarray:
    """Measure FIVE_POINT_TEMPLATE in dlib's chip frame from MTCNN landmarks on LFW DevTrain photos.

    MTCNN is run on the original photos (it is unreliable on tight chips). dlib's chip transform is
    recovered by cutting the same chip out of a coordinate image (pixel values = x and y) and fitting
    a similarity; the landmarks are mapped through it and averaged.
    """
    import dlib  # reference implementation, installed for tests and benchmarks only

    layout = LFWLayout(resolve(data_root))
    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(str(packaged_model_path("shape_predictor_5_face_landmarks.dat")))
    aligner = MTCNNAligner()
    grid = np.stack(np.meshgrid(np.arange(10, 140, 8), np.arange(10, 140, 8)), -1).reshape(-1, 2).astype(float)
    mapped = []
    for person in layout.people("peopleDevTrain.txt")[:limit]:
        photo = Image.open(layout.image_path(person.name, 1)).convert("RGB")
        pixels = np.asarray(photo)
        faces = detector(pixels, 1)
        points, found = aligner.landmarks([photo])
        if not faces or not found[0]:
            continue
        shape = predictor(pixels, faces[0])
        height, width = pixels.shape[:2]
        coordinates = np.zeros_like(pixels)
        coordinates[..., 0] = np.arange(width)[None, :]
        coordinates[..., 1] = np.arange(height)[:, None]
        chip = dlib.get_face_chip(coordinates, shape, size=DLIB_CHIP.size, padding=DLIB_CHIP.padding).astype(float)
        source = chip[grid[:, 1].astype(int), grid[:, 0].astype(int), :2]
        inside = (source > 1).all(1) & (source[:, 0] < width - 2) & (source[:, 1] < height - 2)
        to_chip = similarity_transform(source[inside], grid[inside])
        mapped.append(points[0] @ to_chip[:, :2].T + to_chip[:, 2])
    mean_pixels = np.mean(mapped, axis=0)
    log.info("template from %d faces", len(mapped))
    return mean_pixels / DLIB_CHIP.size * (1 + 2 * DLIB_CHIP.padding) - DLIB_CHIP.padding




def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m generators.align", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser)
    parser.add_argument("--derive-template", action="store_true", help="measure the 5-point template (needs dlib-bin)")
    parser.add_argument("--limit", type=int, default=1000)
    parser.add_argument("--contact-sheet", default=None, metavar="PNG",
                        help="write LFW DevTest photos with their MTCNN and dlib-bin alignments (canonical crop)")
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    if args.derive_template:
        template = derive_template(args.data_root, args.limit)
        print(np.array2string(template, precision=4, separator=", "))
    if args.contact_sheet:
        layout = LFWLayout(resolve(args.data_root))
        people = layout.people("peopleDevTest.txt")[:: max(1, 1711 // min(args.limit, 12))][: min(args.limit, 12)]
        images = [Image.open(layout.image_path(p.name, 1)).convert("RGB") for p in people]
        aligners = [MTCNNAligner()] + ([DlibChipAligner()] if _has_dlib() else [])
        alignment_contact_sheet(images, aligners, CANONICAL_CROP, args.contact_sheet)
        print(f"rows: input, {', '.join(a.name for a in aligners)} -> {args.contact_sheet}")
    return 0


def _has_dlib() -> bool:
    return importlib.util.find_spec("dlib") is not None


if __name__ == "__main__":
    run_main(main)
