"""68-point landmarks on aligned face crops: dlib's shape predictor from face-recognition-models, via dlib-bin.

The predictor runs on an aligned crop (the canonical geometry at twice its size), inside the box of
the unit face frame, which is where a face detector's box would be on such a crop. Landmark files
users bring (ibug `.pts` or plain 'x y' lines, 68 points) are read with `read_landmark_file`.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from bench.common.cli import UserError
from bench.common.weights import packaged_model_path
from recognition.faces.align import CropGeometry


class LandmarkFileError(ValueError):
    """A landmark file that cannot be read; the batch counts it and goes on."""


class DlibLandmarks:
    def __init__(self):
        try:
            import dlib
        except ImportError:
            raise UserError("68-point landmarks need dlib-bin: pip install dlib-bin") from None
        self.dlib = dlib
        self.predictor = dlib.shape_predictor(str(packaged_model_path("shape_predictor_68_face_landmarks.dat")))

    def __call__(self, crop: Image.Image, geometry: CropGeometry) -> np.ndarray:
        """(68, 2) landmarks in the crop's pixels."""
        left, top, right, bottom = geometry.face_box()
        box = self.dlib.rectangle(int(left), int(top), int(right), int(bottom))
        shape = self.predictor(np.asarray(crop.convert("RGB")), box)
        return np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float32)


def read_landmark_file(path: Path) -> np.ndarray:
    """68 points from an ibug .pts file (version/n_points header, braces) or 68 lines 'x y'."""
    try:
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError) as error:
        raise LandmarkFileError(f"{path}: cannot read ({error})") from None
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if lines and lines[0].startswith("version"):
        try:
            start, end = lines.index("{") + 1, lines.index("}")
        except ValueError:
            raise LandmarkFileError(f"{path}: .pts file without '{{' and '}}' around the points") from None
        lines = lines[start:end]
    try:
        points = np.array([[float(v) for v in line.replace(",", " ").split()] for line in lines])
    except ValueError as error:
        raise LandmarkFileError(f"{path}: not numbers ({error})") from None
    if points.shape != (68, 2):
        raise LandmarkFileError(f"{path}: expected 68 points 'x y', found shape {points.shape}")
    return points.astype(np.float32)
