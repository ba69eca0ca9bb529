"""Reader of 300W-LP / AFLW2000-3D fits (3DDFA's `.mat` per image) and their rendering with a user's BFM.

The paper's pairs for L_DP came from these datasets: each image has a `.mat` with the BFM fit of
3DDFA (Zhu et al., CVPR 2016):

- `Pose_Para` (1 x 7): pitch, yaw, roll (radians), tx, ty, tz, scale;
- `Shape_Para` (199 x 1) and `Exp_Para` (29 x 1): raw PCA coefficients, in the model's own units
  (micrometres for BFM), multiplying orthonormal components;
- `Tex_Para` (199 x 1), `Illum_Para` (1 x 10): colour and light (kept, not used for rendering here:
  the light is fitted to the photo instead, as for the project's own pairs);
- `pt3d_68` (2 or 3 x 68): the 68 landmarks in image pixels (x, y; y down).

Shape = mean + PC Shape_Para + PC_exp Exp_Para, posed by R = Rx(pitch) Ry(yaw) Rz(roll). The
internal schema's bases are scaled by each component's standard deviation, so a raw coefficient c
becomes c / (unit * ||basis_i||) with `unit` the model file's units per millimetre (1000 for BFM's
micrometres): ||basis_i|| is the component's standard deviation in mm because PCA components are
orthonormal. The model must carry at least as many identity and expression components as the fit
uses (3DDFA's BFM: 199 + 29, its expression part from FaceWarehouse), and the same vertex order.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.common.cli import UserError
from generators.morphable.model import MorphableModel

REQUIRED = ("Pose_Para", "Shape_Para", "Exp_Para", "pt3d_68")


@dataclass
class W300LPFit:
    path: Path
    pitch: float
    yaw: float
    roll: float
    translation: np.ndarray  # (3,)
    scale: float
    shape: np.ndarray  # raw coefficients
    expression: np.ndarray
    texture: np.ndarray | None
    illumination: np.ndarray | None
    landmarks: np.ndarray  # (68, 2) image pixels

    def rotation(self) -> np.ndarray:
        """R = Rx(pitch) Ry(yaw) Rz(roll), as 3DDFA composes its angles."""
        cx, sx = np.cos(self.pitch), np.sin(self.pitch)
        cy, sy = np.cos(self.yaw), np.sin(self.yaw)
        cz, sz = np.cos(self.roll), np.sin(self.roll)
        rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
        ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
        rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
        return rx @ ry @ rz


def read_300wlp(path: str | Path) -> W300LPFit:
    """Parse one 300W-LP / AFLW2000-3D `.mat`; a missing or malformed variable is a UserError naming it."""
    from scipy.io import loadmat

    path = Path(path)
    try:
        variables = loadmat(path)
    except (OSError, ValueError, NotImplementedError) as error:
        raise UserError(f"{path}: not a readable MATLAB file ({error})") from None
    for name in REQUIRED:
        if name not in variables:
            raise UserError(f"{path}: missing variable '{name}' (a 300W-LP/AFLW2000-3D fit has {', '.join(REQUIRED)})")
    pose = np.asarray(variables["Pose_Para"], dtype=np.float64).ravel()
    if pose.size != 7:
        raise UserError(f"{path}: Pose_Para has {pose.size} values, expected 7 (pitch, yaw, roll, tx, ty, tz, scale)")
    marks = np.asarray(variables["pt3d_68"], dtype=np.float64)
    if marks.shape in ((68, 2), (68, 3)):
        marks = marks.T
    if marks.shape[1:] != (68,) or marks.shape[0] not in (2, 3):
        raise UserError(f"{path}: pt3d_68 has shape {marks.shape}, expected 2 or 3 x 68")

    def vector(name: str) -> np.ndarray | None:
        return np.asarray(variables[name], dtype=np.float64).ravel() if name in variables else None

    return W300LPFit(path, pose[0], pose[1], pose[2], pose[3:6], pose[6], vector("Shape_Para"), vector("Exp_Para"),
                     vector("Tex_Para"), vector("Illum_Para"), marks[:2].T.copy())


def schema_coefficients(fit: W300LPFit, model: MorphableModel, unit_per_mm: float = 1000.0) -> tuple[np.ndarray, np.ndarray]:
    """The fit's raw coefficients as the schema's N(0, 1) identity and expression coefficients."""
    if len(fit.shape) > len(model.identity_basis) or len(fit.expression) > len(model.expression_basis):
        raise UserError(f"{fit.path}: the fit uses {len(fit.shape)} shape and {len(fit.expression)} expression "
                        f"components, the model has {len(model.identity_basis)} and {len(model.expression_basis)}; "
                        "use the BFM 3DDFA fitted with (BFM 2009 shape plus FaceWarehouse expressions)")
    identity_std = np.linalg.norm(model.identity_basis[: len(fit.shape)].reshape(len(fit.shape), -1), axis=1)
    expression_std = np.linalg.norm(model.expression_basis[: len(fit.expression)].reshape(len(fit.expression), -1), axis=1)
    identity = fit.shape / (unit_per_mm * identity_std.clip(1e-12))
    expression = fit.expression / (unit_per_mm * expression_std.clip(1e-12))
    return identity.astype(np.float32), expression.astype(np.float32)
