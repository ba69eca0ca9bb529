"""Face alignment: five landmarks -> similarity transform -> a crop of documented geometry.

One 5-point template serves every crop the project makes, so real photos (landmarks from MTCNN) and
3DMM renders (landmarks from projected vertices) line up. The template is given in a *unit face
frame*, the frame of dlib's face chips before padding; a crop of side `size` with `padding` p maps a
template point t to pixel (t + p) / (1 + 2p) * size. Two geometries are used:

- `CANONICAL_CROP` 108x108, padding 0.25: the project's aligned face (the paper's 108x108x3 crop);
- `DLIB_CHIP` 150x150, padding 0.25: the chip dlib's face recognition ResNet expects.

They differ only in scale, so a canonical crop resized to 150 is a dlib chip, and the identity
network C sees generated 108x108 faces in the geometry it was trained on. The crop is tight (brows
to chin), which also suits the 3DMM, whose face region has no hair or ears.

Networks trained on another template get the crop of *this* template that fits theirs best: a
geometry may also shift the unit frame (`offset`), and `CropGeometry.fitted` finds size, padding and
offset by least squares. `ARCFACE_CROP` is how the 112x112 five-point template of ArcFace /
insightface (also OpenCV's `FaceRecognizerSF.alignCrop`) is expressed here; see its comment.
OpenFace's nn4.small2 needs such a crop too: its alignment puts the eyes near the top of the crop
(`recognition.embedders.nn4.OPENFACE_CROP`, measured on LFW DevTrain).

Points, in image orientation: left eye centre, right eye centre, nose tip, left and right mouth
corner (MTCNN's five). The template values were measured, not copied: MTCNN's landmarks on 1,000
LFW DevTrain photos mapped into the frame of dlib-bin's chips of the same photos (its detector,
5-point predictor and get_face_chip) and averaged (`python -m generators.align --derive-template`).
"""
from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from bench.common.cli import UserError

log = logging.getLogger(__name__)

# Unit-frame template (x, y) of: left eye, right eye, nose tip, left mouth corner, right mouth corner.
FIVE_POINT_TEMPLATE = np.array(
    [
        [0.2349, 0.2174],
        [0.7795, 0.2172],
        [0.5048, 0.5358],
        [0.2631, 0.8126],
        [0.7476, 0.8123],
    ]
)


@dataclass(frozen=True)
class CropGeometry:
    """A square crop: side in pixels and padding around the unit face frame (dlib's convention).

    `offset` (unit-frame units, default none) shifts the face inside the crop: a unit-frame point t
    lands on pixel (t + padding + offset) / (1 + 2 padding) * size, so a positive y offset leaves more
    room above the face (as ArcFace's crops do).
    """

    size: int
    padding: float = 0.25
    offset: tuple[float, float] = (0.0, 0.0)

    def to_pixels(self, unit_points: np.ndarray) -> np.ndarray:
        """Unit-frame points (N, 2) in this crop's pixel coordinates."""
        return (np.asarray(unit_points, float) + self.padding + np.asarray(self.offset)) / (1 + 2 * self.padding) * self.size

    def template(self) -> np.ndarray:
        """The 5 template points in this crop's pixel coordinates."""
        return self.to_pixels(FIVE_POINT_TEMPLATE)

    def resized(self, size: int) -> "CropGeometry":
        """The same crop at another side in pixels."""
        return CropGeometry(size, self.padding, self.offset)

    @property
    def tag(self) -> str:
        """Short text that identifies the geometry (for cache folders)."""
        shift = f"{self.offset[0]:+.4f}{self.offset[1]:+.4f}" if any(self.offset) else ""
        return f"{self.size}-{self.padding:g}{shift}"

    @classmethod
    def fitted(cls, points: np.ndarray, size: int) -> "CropGeometry":
        """The geometry whose template lands nearest (least squares) to `points`, the 5 reference points
        (our order) of another template in a size x size crop. Scale and translation only: a
        CropGeometry is axis-aligned, so a rotation between the two templates is left out (state it)."""
        points = np.asarray(points, float)
        ours = FIVE_POINT_TEMPLATE - FIVE_POINT_TEMPLATE.mean(0)
        scale = float((ours * (points - points.mean(0))).sum() / (ours * ours).sum())  # pixels per unit
        translation = points.mean(0) - scale * FIVE_POINT_TEMPLATE.mean(0)
        padding = (size / scale - 1) / 2
        offset = translation / scale - padding
        return cls(size, round(padding, 6), (round(float(offset[0]), 6), round(float(offset[1]), 6)))


CANONICAL_CROP = CropGeometry(108, 0.25)
DLIB_CHIP = CropGeometry(150, 0.25)

# ArcFace's 112x112 reference points (Deng et al., CVPR 2019; insightface `arcface_dst`, the same numbers
# as OpenCV's FaceRecognizerSF::alignCrop in modules/objdetect/src/face_recognize.cpp), pixel
# coordinates with pixel centres at integers, in our order: left eye, right eye, nose tip, left and
# right mouth corner as seen in the image.
ARCFACE_112_POINTS = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ]
)
# Fitted to our template: padding 0.349735, offset (-0.005583, +0.222216), i.e. 65.90 pixels per unit
# frame and the crop spanning x -0.344..1.355, y -0.572..1.128 of the unit frame (ArcFace keeps the
# forehead). The residual is 1.29 px rms at 112 px (0.35 and 0.73 px at the eyes, 1.27 nose, 1.9 and 1.6 mouth):
# the two templates differ in shape, ours (measured on LFW with MTCNN) having a shorter nose-to-mouth
# distance. A full similarity would add a -0.41 degree rotation and lower the rms only to 1.28 px.
ARCFACE_CROP = CropGeometry.fitted(ARCFACE_112_POINTS, 112)


def similarity_transform(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation) taking `source` points to
    `target` points (Umeyama, 1991); returns the 2x3 matrix M with target ~ M @ [x, y, 1]."""
    source, target = np.asarray(source, float), np.asarray(target, float)
    source_mean, target_mean = source.mean(0), target.mean(0)
    s, t = source - source_mean, target - target_mean
    covariance = t.T @ s / len(source)
    u, singular, vt = np.linalg.svd(covariance)
    sign = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[1, 1] = -1
    rotation = u @ sign @ vt
    scale = np.trace(np.diag(singular) @ sign) / s.var(0).sum()
    matrix = np.zeros((2, 3))
    matrix[:, :2] = scale * rotation
    matrix[:, 2] = target_mean - matrix[:, :2] @ source_mean
    return matrix


def warp_to_crop(image: Image.Image, landmarks: np.ndarray, geometry: CropGeometry) -> Image.Image:
    """The crop of `geometry` whose template points land on `landmarks` (5x2, image pixels)."""
    to_crop = similarity_transform(landmarks, geometry.template())
    full = np.vstack([to_crop, [0, 0, 1]])
    to_image = np.linalg.inv(full)[:2]  # PIL wants crop -> image coordinates
    return image.transform((geometry.size, geometry.size), Image.Transform.AFFINE, to_image.ravel().tolist(),
                           resample=Image.Resampling.BILINEAR)


def landmarks_in_centred_box(width: int, height: int, expansion: float = 2.2) -> np.ndarray:
    """Fallback landmarks for a loose crop in LFW geometry (face box = the central 1/expansion):
    the template placed in that box, as if the box were the unit face frame."""
    side = min(width, height) / expansion
    origin = np.array([(width - side) / 2, (height - side) / 2])
    return origin + FIVE_POINT_TEMPLATE * side


class Aligner:
    """Turns loose face crops into aligned crops of a geometry; counts images where no face was found."""

    name = "aligner"

    def __init__(self):
        self.seen = 0
        self.misses = 0

    def chips(self, images: Sequence[Image.Image], geometry: CropGeometry) -> tuple[list[Image.Image], np.ndarray]:
        """Aligned crops and (N,) bool 'a face was found' (else the centred-box fallback was used)."""
        raise NotImplementedError

    @property
    def cache_tag(self) -> str:
        """Identifies what this aligner produces, for embedding caches."""
        return self.name

    def _count(self, found: np.ndarray) -> None:
        self.seen += len(found)
        self.misses += int((~found).sum())


class MTCNNAligner(Aligner):
    """facenet-pytorch's MTCNN (weights ship in its wheel), batched over same-size images.

    Of several faces the one nearest the image centre (weighted by size) is taken, as the images the
    protocols hand over are centred on their face. Images without a face get the centred-box fallback
    and are counted in `misses`.
    """

    name = "mtcnn"

    def __init__(self, min_face_size: int = 20, device: str = "cpu"):
        try:
            from facenet_pytorch import MTCNN
        except ImportError as error:
            raise UserError(f"MTCNN needs facenet-pytorch: pip install --no-deps facenet-pytorch==2.6.0 ({error})") from None
        super().__init__()
        self.detector = MTCNN(keep_all=True, min_face_size=min_face_size, device=device)

    def landmarks(self, images: Sequence[Image.Image]) -> tuple[np.ndarray, np.ndarray]:
        """(N, 5, 2) landmarks and (N,) bool 'a face was found' for a batch of RGB PIL images."""
        points, found, _ = self.detect(images)
        return points, found

    def detect(self, images: Sequence[Image.Image]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """`landmarks`, and (N,) the detector's face probability of each chosen face (0 where none was found)."""
        groups: dict[tuple[int, int], list[int]] = {}
        for index, image in enumerate(images):
            groups.setdefault(image.size, []).append(index)
        points = np.zeros((len(images), 5, 2))
        found = np.zeros(len(images), dtype=bool)
        scores = np.zeros(len(images))
        for size, indices in groups.items():
            if min(size) < self.detector.min_face_size:  # MTCNN's image pyramid would be empty (and crash):
                for i in indices:                        # no face this small can be found
                    points[i] = landmarks_in_centred_box(*size)
                continue
            with torch.inference_mode():
                boxes, probabilities, marks = self.detector.detect([images[i] for i in indices], landmarks=True)
            for i, box, probability, mark in zip(indices, boxes, probabilities, marks):
                if box is None or len(box) == 0:
                    points[i] = landmarks_in_centred_box(*size)
                    continue
                box, mark = np.asarray(box, dtype=float), np.asarray(mark, dtype=float)
                centre = np.array(size) / 2
                box_centres = (box[:, :2] + box[:, 2:4]) / 2
                sides = (box[:, 2] - box[:, 0] + box[:, 3] - box[:, 1]) / 2
                best = int(np.argmin(np.linalg.norm(box_centres - centre, axis=1) - 0.5 * sides))
                points[i], found[i], scores[i] = mark[best], True, float(np.ravel(probability)[best])
        return points, found, scores

    @property
    def cache_tag(self) -> str:
        return f"{self.name}-{hashlib.sha1(FIVE_POINT_TEMPLATE.tobytes()).hexdigest()[:8]}"

    def chips(self, images, geometry):
        points, found = self.landmarks(images)
        self._count(found)
        return [warp_to_crop(image, p, geometry) for image, p in zip(images, points)], found


class DlibChipAligner(Aligner):
    """dlib-bin's own pipeline: HOG face detector, 5-point shape predictor, `get_face_chip`.

    The reference against which the port and the MTCNN alignment are compared; needs the optional
    packages dlib-bin and face-recognition-models. Of several detections the one nearest the centre is used.
    """

    name = "dlib"

    def __init__(self):
        super().__init__()
        try:
            import dlib
        except ImportError:
            raise UserError("the 'dlib' aligner needs dlib-bin: pip install dlib-bin") from None
        from bench.common.weights import packaged_model_path

        self.dlib = dlib
        self.detector = dlib.get_frontal_face_detector()
        self.predictor = dlib.shape_predictor(str(packaged_model_path("shape_predictor_5_face_landmarks.dat")))

    def chips(self, images, geometry):
        if any(geometry.offset):
            # get_face_chip only centres the face: cut this crop out of an enclosing centred chip of the same scale
            padding = geometry.padding + max(abs(o) for o in geometry.offset)
            outer = CropGeometry(round(geometry.size * (1 + 2 * padding) / (1 + 2 * geometry.padding)), padding)
            chips, found = self.chips(images, outer)
            return [warp_to_crop(chip, outer.template(), geometry) for chip in chips], found
        chips, found = [], np.zeros(len(images), dtype=bool)
        for index, image in enumerate(images):
            pixels = np.asarray(image.convert("RGB"))
            faces = self.detector(pixels, 1)
            if len(faces) == 0:
                chips.append(warp_to_crop(image, landmarks_in_centred_box(*image.size), geometry))
                continue
            centre = np.array(image.size) / 2
            face = min(faces, key=lambda r: np.hypot(r.center().x - centre[0], r.center().y - centre[1]))
            chip = self.dlib.get_face_chip(pixels, self.predictor(pixels, face), size=geometry.size,
                                           padding=geometry.padding)
            chips.append(Image.fromarray(chip))
            found[index] = True
        self._count(found)
        return chips, found


class PrealignedAligner(Aligner):
    """For images that already are canonical crops (renders, GANFaces, prepared real faces): the
    template itself gives the landmarks, so each crop is only rescaled to the embedder's geometry."""

    name = "prealigned"

    def __init__(self, source: CropGeometry = CANONICAL_CROP):
        super().__init__()
        self.source = source

    def chips(self, images, geometry):
        chips = [warp_to_crop(image, self.source.resized(image.size[0]).template(), geometry)
                 for image in images]
        found = np.ones(len(images), dtype=bool)
        self._count(found)
        return chips, found


ALIGNERS = {"mtcnn": MTCNNAligner, "dlib": DlibChipAligner, "prealigned": PrealignedAligner}


def get_aligner(name: str, device: torch.device | str = "cpu") -> Aligner:
    """The aligner `name`; MTCNN runs on `device` (the others are not torch networks and run on the CPU)."""
    if name not in ALIGNERS:
        raise UserError(f"unknown aligner '{name}'; known: {', '.join(ALIGNERS)}")
    return ALIGNERS[name](device=str(device)) if name == "mtcnn" else ALIGNERS[name]()


def alignment_contact_sheet(images: Sequence[Image.Image], aligners: Sequence[Aligner], geometry: CropGeometry,
                            out_path, template_dots: bool = True) -> None:
    """One column per image: the input, then one aligned crop per aligner (template points in red)."""
    from torchvision.transforms.functional import to_tensor
    from torchvision.utils import save_image

    from bench.common.atomic import atomic_path

    tiles = [[to_tensor(image.convert("RGB").resize((geometry.size, geometry.size))) for image in images]]
    for aligner in aligners:
        chips, _ = aligner.chips(images, geometry)
        row = []
        for chip in chips:
            tile = to_tensor(chip)
            if template_dots:
                for x, y in geometry.template().round().astype(int):
                    tile[:, max(y - 1, 0) : y + 2, max(x - 1, 0) : x + 2] = torch.tensor([1.0, 0, 0])[:, None, None]
            row.append(tile)
        tiles.append(row)
    grid = torch.stack([tile for row in tiles for tile in row])
    with atomic_path(out_path) as temporary:
        save_image(grid, temporary, nrow=len(images), padding=2, pad_value=1.0, format="png")
