"""Fitting the 3DMM to a face photo from its 68 landmarks, then its light and colour from the pixels.

Shape and pose (a small PyTorch optimisation, batched): a weak-perspective camera (rotation,
scale, 2-D translation) applied to the model's landmark vertices,

    l_k ~ s * [x, -y](R (mean + A alpha + E beta))_k + t,

minimising the weighted squared landmark error plus priors: ||alpha||^2 (identity coefficients are
N(0, 1)) and an L1 penalty on the blendshape weights beta, which are kept in [0, 1]. The jaw contour
(landmarks 0-7 and 9-16) does not belong to fixed vertices once the head turns: after a first fit,
each contour landmark is re-assigned to the nearest projected vertex among ICT's extended jawline
(README of ICT-FaceKit), as eos does with its contour candidates, and the fit continues; contour
landmarks weigh half as much as inner ones.

Light and colour (linear least squares): with the fitted geometry, every front-facing face vertex
samples the photo's colour; the 9 spherical-harmonics coefficients of each colour channel are then
solved against the procedural albedo's region pattern, so the skin colour and the light of the
photo both end up in the SH coefficients and the render's colours roughly match the photo.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from generators.morphable.model import MorphableModel
from generators.morphable.render import sh_basis, vertex_normals

# ICT-FaceKit README: extended jawlines, candidates for the contour landmarks 0-7 and 9-16
RIGHT_JAWLINE = [1280, 1278, 1275, 1272, 1248, 12, 820, 1834, 1902, 243, 844, 781, 1673, 2199, 801, 1447, 800]
LEFT_JAWLINE = [3041, 3661, 3042, 4390, 3880, 3022, 3085, 2484, 4102, 4036, 3061, 2253, 3466, 3490, 3493, 3496, 3498]
CONTOUR_WEIGHT = 0.5


@dataclass
class FitConfig:
    identity_components: int = 40
    identity_prior: float = 3.0  # weight of ||alpha||^2 (per component) against the mean squared pixel error
    expression_prior: float = 0.5  # weight of sum(beta)
    steps: int = 250
    contour_steps: int = 150
    learning_rate: float = 0.05


@dataclass
class FitResult:
    """Per face: pose, coefficients and the landmark error of the fit (pixels of the landmarks' frame)."""

    rotation: np.ndarray  # (B, 3, 3)
    yaw: np.ndarray  # degrees, same convention as `generators.morphable.render.rotation_matrix`
    pitch: np.ndarray
    roll: np.ndarray
    scale: np.ndarray  # (B,)
    translation: np.ndarray  # (B, 2)
    identity: np.ndarray  # (B, K_id)
    expression: np.ndarray  # (B, K_exp)
    landmarks: np.ndarray  # (B, 68, 2) fitted projections
    error: np.ndarray  # (B,) mean landmark distance


def _rotation(axis_angle: torch.Tensor) -> torch.Tensor:
    """Rodrigues' formula, batched: (B, 3) -> (B, 3, 3)."""
    angle = axis_angle.norm(dim=1, keepdim=True).clamp_min(1e-8)
    k = axis_angle / angle
    zero = torch.zeros_like(k[:, 0])
    cross = torch.stack([zero, -k[:, 2], k[:, 1], k[:, 2], zero, -k[:, 0], -k[:, 1], k[:, 0], zero], 1).view(-1, 3, 3)
    eye = torch.eye(3, dtype=axis_angle.dtype).expand_as(cross)
    sin, cos = angle.sin()[..., None], angle.cos()[..., None]
    return eye + sin * cross + (1 - cos) * cross @ cross


def euler_from_rotation(rotation: np.ndarray) -> tuple[float, float, float]:
    """Inverse of `rotation_matrix` (R = Rz(roll) Rx(pitch) Ry(yaw)), degrees."""
    pitch = np.arcsin(np.clip(rotation[2, 1], -1, 1))
    yaw = np.arctan2(-rotation[2, 0], rotation[2, 2])
    roll = np.arctan2(-rotation[0, 1], rotation[1, 1])
    return float(np.degrees(yaw)), float(np.degrees(pitch)), float(np.degrees(roll))


def fit_landmarks(model: MorphableModel, landmarks: np.ndarray, config: FitConfig = FitConfig()) -> FitResult:
    """Fit pose, identity and expression to (B, 68, 2) landmarks (pixels, y down)."""
    observed = torch.as_tensor(landmarks, dtype=torch.float32)
    batch = observed.shape[0]
    k_id = min(config.identity_components, len(model.identity_basis))
    ids = torch.as_tensor(model.landmarks_68, dtype=torch.long)
    mean = torch.from_numpy(model.mean_shape)
    id_basis = torch.from_numpy(model.identity_basis[:k_id])
    exp_basis = torch.from_numpy(model.expression_basis)
    blendshapes = model.expression_kind == "blendshapes"
    weights = torch.ones(68)
    weights[:17] = CONTOUR_WEIGHT
    # initial pose: frontal, scale and shift from the landmarks' spread
    reference = mean[ids][:, :2] * torch.tensor([1.0, -1.0])
    scale0 = observed.std(dim=1).mean(1) / reference.std(0).mean()
    axis_angle = torch.full((batch, 3), 1e-4, requires_grad=True)
    log_scale = scale0.log().clone().requires_grad_(True)
    translation = (observed.mean(1) - scale0[:, None] * reference.mean(0)).clone().requires_grad_(True)
    identity = torch.zeros(batch, k_id, requires_grad=True)
    expression_raw = torch.full((batch, len(exp_basis)), -3.0 if blendshapes else 0.0, requires_grad=True)
    vertex_ids = ids.expand(batch, 68).clone()
    optimiser = torch.optim.Adam([axis_angle, log_scale, translation, identity, expression_raw], lr=config.learning_rate)
    contour_candidates = {k: torch.tensor(RIGHT_JAWLINE) for k in range(0, 8)}
    contour_candidates.update({k: torch.tensor(LEFT_JAWLINE) for k in range(9, 17)})

    def expression_weights() -> torch.Tensor:
        return torch.sigmoid(expression_raw) if blendshapes else expression_raw

    def project(vertex_index: torch.Tensor) -> torch.Tensor:
        """(B, N) vertex ids -> (B, N, 2) projections under the current parameters."""
        shapes = (mean[vertex_index] + torch.einsum("bk,bknc->bnc", identity, id_basis[:, vertex_index].permute(1, 0, 2, 3))
                  + torch.einsum("bk,bknc->bnc", expression_weights(), exp_basis[:, vertex_index].permute(1, 0, 2, 3)))
        rotated = shapes @ _rotation(axis_angle).transpose(1, 2)
        return log_scale.exp()[:, None, None] * rotated[..., :2] * torch.tensor([1.0, -1.0]) + translation[:, None, :]

    for step in range(config.steps + config.contour_steps):
        if step == config.steps:  # re-assign the contour landmarks to the nearest jawline vertices
            with torch.no_grad():
                for k, candidates in contour_candidates.items():
                    projected = project(candidates.expand(batch, -1))
                    nearest = (projected - observed[:, k : k + 1]).norm(dim=2).argmin(1)
                    vertex_ids[:, k] = candidates[nearest]
        optimiser.zero_grad()
        residual = ((project(vertex_ids) - observed) ** 2).sum(-1)
        loss = (residual * weights).sum(1) / weights.sum()
        loss = loss + config.identity_prior * (identity**2).mean(1)
        if blendshapes:
            loss = loss + config.expression_prior * expression_weights().sum(1)
        else:
            loss = loss + config.expression_prior * (expression_weights() ** 2).mean(1)
        loss.sum().backward()
        optimiser.step()
    with torch.no_grad():
        fitted = project(vertex_ids)
        error = (fitted - observed).norm(dim=2).mean(1)
        rotation = _rotation(axis_angle).numpy()
    angles = np.array([euler_from_rotation(r) for r in rotation])
    return FitResult(rotation, angles[:, 0], angles[:, 1], angles[:, 2], log_scale.exp().detach().numpy(),
                     translation.detach().numpy(), identity.detach().numpy(), expression_weights().detach().numpy(),
                     fitted.numpy(), error.numpy())


def fit_lighting(model: MorphableModel, vertices: np.ndarray, rotation: np.ndarray, projection: np.ndarray,
                 albedo: np.ndarray, photo: np.ndarray, ridge: float = 1e-2) -> np.ndarray:
    """(9, 3) SH coefficients so that albedo x irradiance matches the photo's colours at visible face vertices.

    `projection`: (V, 2) pixel positions of the vertices in `photo` (H, W, 3 uint8 or float in [0, 1]).
    """
    posed = vertices @ rotation.T
    triangles = torch.from_numpy(model.triangles.astype(np.int64))
    normals = vertex_normals(torch.from_numpy(posed.astype(np.float32))[None], triangles)[0]
    pixels = np.asarray(photo, dtype=np.float64)
    pixels = pixels / 255.0 if pixels.max() > 1.5 else pixels
    height, width = pixels.shape[:2]
    face = model.regions.get("face", np.ones(len(vertices), dtype=bool))
    inside = (projection[:, 0] >= 0) & (projection[:, 0] < width - 1) & (projection[:, 1] >= 0) & (projection[:, 1] < height - 1)
    usable = face & inside & (normals[:, 2].numpy() > 0.3)
    if usable.sum() < 50:
        flat = np.zeros((9, 3))
        flat[0] = 0.7 / 0.886227
        return flat
    x, y = projection[usable, 0], projection[usable, 1]
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    fx, fy = (x - x0)[:, None], (y - y0)[:, None]
    colour = (pixels[y0, x0] * (1 - fx) * (1 - fy) + pixels[y0, x0 + 1] * fx * (1 - fy)
              + pixels[y0 + 1, x0] * (1 - fx) * fy + pixels[y0 + 1, x0 + 1] * fx * fy)
    basis = sh_basis(normals[usable].double()).numpy()
    sh = np.zeros((9, 3))
    for channel in range(3):
        design = basis * albedo[usable, channel : channel + 1]
        sh[:, channel] = np.linalg.solve(design.T @ design + ridge * len(design) * np.eye(9),
                                         design.T @ colour[:, channel])
    return sh
