"""`python -m generators.align`: measure the five-point template on LFW and draw alignment contact sheets.

Alignment itself lives in the faces layer (`recognition.faces.align`), which every stage shares;
these two tools read LFW's people lists, so they sit here, above `protocols.lfw_files`.

    python -m generators.align --derive-template            # needs dlib-bin
    python -m generators.align --derive-openface-geometry   # needs dlib-bin
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
    FIVE_POINT_TEMPLATE,
    DlibChipAligner,
    MTCNNAligner,
    alignment_contact_sheet,
    similarity_transform,
)

log = logging.getLogger(__name__)


def photos_with_both_detections(data_root=None, limit: int = 1000):
    """The first photo of each of the first `limit` LFW DevTrain people on which both dlib's detector and MTCNN
    find a face, as (photo, pixels, dlib's faces, MTCNN's five points): the derivations below compare the two."""
    import dlib

    layout = LFWLayout(resolve(data_root))
    detector = dlib.get_frontal_face_detector()
    aligner = MTCNNAligner()
    for person in layout.people("peopleDevTrain.txt")[:limit]:
        photo = Image.open(layout.image_path(person.name, 1)).convert("RGB")
        pixels = np.asarray(photo)
        faces = detector(pixels, 1)
        points, found = aligner.landmarks([photo])
        if faces and found[0]:
            yield photo, pixels, faces, points


def derive_template(data_root=None, limit: int = 1000) -> np.ndarray:
    """Measure FIVE_POINT_TEMPLATE in dlib's chip frame from MTCNN landmarks on LFW DevTrain photos.

    MTCNN is run on the original photos (it is unreliable on tight chips). dlib's chip transform is
    recovered by cutting the same chip out of a coordinate image (pixel values = x and y) and fitting
    a similarity; the landmarks are mapped through it and averaged.
    """
    import dlib  # reference implementation, installed for tests and benchmarks only

    predictor = dlib.shape_predictor(str(packaged_model_path("shape_predictor_5_face_landmarks.dat")))
    grid = np.stack(np.meshgrid(np.arange(10, 140, 8), np.arange(10, 140, 8)), -1).reshape(-1, 2).astype(float)
    mapped = []
    for _photo, pixels, faces, points in photos_with_both_detections(data_root, limit):
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


# OpenFace's alignment for nn4.small2.v1 (openface/align_dlib.py, AlignDlib.align with
# OUTER_EYES_AND_NOSE): dlib's 68-point landmarks 36, 45 and 33 (outer eye corners, bottom of the
# nose) sent by an affine map to these points of its mean shape, min-max normalised to the unit
# square, times the crop side. Values computed from OpenFace's TEMPLATE (Apache-2.0).
OPENFACE_LANDMARKS = [36, 45, 33]
OPENFACE_TEMPLATE = np.array([[0.194157, 0.169267], [0.788859, 0.158171], [0.494951, 0.514441]])


def derive_openface_geometry(data_root=None, limit: int = 1000, size: int = 96) -> dict[str, float]:
    """The padding and vertical shift with which the project's template best approximates OpenFace's crop.

    On LFW DevTrain photos (first image of the first `limit` people), dlib-bin's detector and 68-point
    predictor give OpenFace's affine map into its size x size crop; MTCNN's five landmarks of the same
    photo are mapped through it and averaged. A scale s and a translation (tx, ty) then take
    FIVE_POINT_TEMPLATE onto those mean points (least squares); padding = (size / s - 1) / 2 and
    shift = ty / s - padding (tx / s - padding is reported too: it should be near 0).
    """
    import dlib

    predictor = dlib.shape_predictor(str(packaged_model_path("shape_predictor_68_face_landmarks.dat")))
    target = np.hstack([OPENFACE_TEMPLATE * size, np.ones((3, 1))])
    mapped = []
    for photo, pixels, faces, points in photos_with_both_detections(data_root, limit):
        centre = np.array(photo.size) / 2
        face = min(faces, key=lambda r: np.hypot(r.center().x - centre[0], r.center().y - centre[1]))
        shape = predictor(pixels, face)
        source = np.array([[shape.part(i).x, shape.part(i).y, 1.0] for i in OPENFACE_LANDMARKS])
        to_crop = np.linalg.solve(source, target[:, :2]).T  # the exact affine map of three points
        mapped.append(points[0] @ to_crop[:, :2].T + to_crop[:, 2])
    mean = np.mean(mapped, axis=0)
    design = np.zeros((10, 3))
    design[0::2, 0], design[0::2, 1] = FIVE_POINT_TEMPLATE[:, 0], 1
    design[1::2, 0], design[1::2, 2] = FIVE_POINT_TEMPLATE[:, 1], 1
    (scale, tx, ty), *_ = np.linalg.lstsq(design, mean.reshape(-1), rcond=None)
    padding = (size / scale - 1) / 2
    residual = design @ [scale, tx, ty] - mean.reshape(-1)
    log.info("OpenFace geometry from %d faces", len(mapped))
    return {"faces": len(mapped), "padding": padding, "shift": ty / scale - padding,
            "horizontal_offset": tx / scale - padding, "rms_px": float(np.sqrt((residual ** 2).reshape(5, 2).sum(1).mean()))}




def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m generators.align", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser)
    parser.add_argument("--derive-template", action="store_true", help="measure the 5-point template (needs dlib-bin)")
    parser.add_argument("--derive-openface-geometry", action="store_true",
                        help="padding and shift approximating OpenFace's crop for nn4.small2 (needs dlib-bin)")
    parser.add_argument("--limit", type=int, default=1000)
    parser.add_argument("--contact-sheet", default=None, metavar="PNG",
                        help="write LFW DevTest photos with their MTCNN and dlib-bin alignments (canonical crop)")
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    if args.derive_template:
        template = derive_template(args.data_root, args.limit)
        print(np.array2string(template, precision=4, separator=", "))
    if args.derive_openface_geometry:
        print({key: round(float(value), 4) for key, value in derive_openface_geometry(args.data_root, args.limit).items()})
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
