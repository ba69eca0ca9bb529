"""Rendering 3DMM faces straight into aligned crops with moderngl (headless EGL; llvmpipe on CPU).

Per batch: shapes from the coefficients, a rigid pose, perspective projection, per-vertex normals
and spherical-harmonics shading computed batched in PyTorch; then the alignment's similarity
transform (projected landmarks -> the 5-point template of `recognition.faces.align`) is folded into the
screen coordinates, so each face is drawn directly as its aligned crop into its own tile of one
large framebuffer, with one draw call and one read-back per batch. Depth-tested, back faces culled,
black background.

Camera: at the origin of camera space looking down -z, the face `distance_mm` away, focal length
`focal_mm` on a 36 mm film (only the perspective's strength matters: alignment removes scale).
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import torch
import torchvision  # noqa: F401  loaded before Mesa's llvmpipe: importing it after an EGL context segfaults

from bench.common.cli import UserError
from recognition.faces.align import CANONICAL_CROP, CropGeometry, similarity_transform
from generators.morphable.model import MorphableModel

log = logging.getLogger(__name__)

VERTEX_SHADER = """
#version 330
in vec3 in_position;
in vec3 in_color;
out vec3 color;
void main() {
    color = in_color;
    gl_Position = vec4(in_position, 1.0);
}
"""
FRAGMENT_SHADER = """
#version 330
in vec3 color;
out vec4 fragment;
void main() {
    fragment = vec4(color, 1.0);
}
"""

# Real spherical harmonics basis constants (bands 0-2) times the Lambertian kernel (Ramamoorthi and
# Hanrahan, 2001): irradiance(n) = sum_k sh[k] * basis_k(n).
_SH_CONSTANTS = np.array([
    0.886227, 1.023328, 1.023328, 1.023328, 0.858086, 0.858086, 0.858086, 0.247708, 0.429043,
])


def sh_basis(normals: torch.Tensor) -> torch.Tensor:
    """(..., 3) unit normals -> (..., 9) Lambertian-convolved SH basis values."""
    x, y, z = normals.unbind(-1)
    one = torch.ones_like(x)
    basis = torch.stack([one, y, z, x, x * y, y * z, 3 * z * z - 1, x * z, x * x - y * y], dim=-1)
    return basis * torch.as_tensor(_SH_CONSTANTS, dtype=normals.dtype)


def vertex_normals(vertices: torch.Tensor, triangles: torch.Tensor) -> torch.Tensor:
    """(B, V, 3) -> unit per-vertex normals, area-weighted over adjacent triangles (0-based (T, 3) ids)."""
    a, b, c = (vertices[:, triangles[:, k]] for k in range(3))
    face_normals = torch.cross(b - a, c - a, dim=-1)
    normals = torch.zeros_like(vertices)
    for k in range(3):
        normals.index_add_(1, triangles[:, k], face_normals)
    return torch.nn.functional.normalize(normals, dim=-1, eps=1e-8)


def rotation_matrix(yaw_deg: float, pitch_deg: float, roll_deg: float) -> np.ndarray:
    """R = R_roll(z) @ R_pitch(x) @ R_yaw(y); positive yaw turns the face to the image's right."""
    yaw, pitch, roll = np.radians([yaw_deg, pitch_deg, roll_deg])
    ry = np.array([[math.cos(yaw), 0, math.sin(yaw)], [0, 1, 0], [-math.sin(yaw), 0, math.cos(yaw)]])
    rx = np.array([[1, 0, 0], [0, math.cos(pitch), -math.sin(pitch)], [0, math.sin(pitch), math.cos(pitch)]])
    rz = np.array([[math.cos(roll), -math.sin(roll), 0], [math.sin(roll), math.cos(roll), 0], [0, 0, 1]])
    return rz @ rx @ ry


def five_points(landmarks_68: np.ndarray) -> np.ndarray:
    """(..., 68, 2) -> (..., 5, 2): eye centres, nose tip, mouth corners (image-left first), as MTCNN gives."""
    return np.stack([landmarks_68[..., 36:42, :].mean(-2), landmarks_68[..., 42:48, :].mean(-2),
                     landmarks_68[..., 30, :], landmarks_68[..., 48, :], landmarks_68[..., 54, :]], axis=-2)


@dataclass
class RenderBatch:
    """Everything needed to draw B faces (numpy arrays; B = batch size)."""

    vertices: np.ndarray  # (B, V, 3) model-space shapes, mm
    albedo: np.ndarray  # (B, V, 3) in [0, 1]
    rotations: np.ndarray  # (B, 3, 3)
    sh: np.ndarray  # (B, 9, 3) lighting
    distance_mm: np.ndarray  # (B,)
    # Optional (B, 2, 3): an orthographic camera given as an affine map from the posed model's (x, y)
    # in mm straight to crop pixels (e.g. a 3DDFA fit's projection followed by the photo's alignment);
    # without it, the perspective camera and the landmark alignment above are used.
    model_to_crop: np.ndarray | None = None


def batch_from_samples(model: MorphableModel, samples) -> RenderBatch:
    """A RenderBatch from (IdentitySample, ImageSample) pairs (see `generators.morphable.sampling`).

    The light is scaled by each identity's exposure, as a camera's auto-exposure would."""
    return RenderBatch(
        vertices=np.stack([model.shape(person.identity, image.expression) for person, image in samples]),
        albedo=np.stack([person.albedo for person, _ in samples]),
        rotations=np.stack([rotation_matrix(image.yaw, image.pitch, image.roll) for _, image in samples]),
        sh=np.stack([image.sh * person.exposure for person, image in samples]),
        distance_mm=np.array([image.distance_mm for _, image in samples]),
    )


class FaceRenderer:
    """Created once, reused for every batch: one EGL context, one program, one tiled framebuffer."""

    def __init__(self, model: MorphableModel, geometry: CropGeometry = CANONICAL_CROP, batch_size: int = 64,
                 focal_mm: float = 50.0):
        try:
            import moderngl
        except ImportError:
            raise UserError("rendering needs moderngl: pip install moderngl") from None
        try:
            self.ctx = moderngl.create_standalone_context(backend="egl")
        except Exception as error:  # no EGL: say which system packages provide it
            raise UserError(f"cannot create a headless OpenGL (EGL) context: {error}. On Debian/Ubuntu: "
                            "apt-get install libegl1 libegl-mesa0 libgl1-mesa-dri libgles2") from None
        self.moderngl = moderngl
        self.model, self.geometry, self.batch_size = model, geometry, batch_size
        self.focal = focal_mm / 36.0  # image-plane units per unit of x/z (film width 1)
        self.columns = math.ceil(math.sqrt(batch_size))
        self.rows = math.ceil(batch_size / self.columns)
        size = geometry.size
        self.framebuffer = self.ctx.simple_framebuffer((self.columns * size, self.rows * size), components=3)
        self.program = self.ctx.program(vertex_shader=VERTEX_SHADER, fragment_shader=FRAGMENT_SHADER)
        self.triangles = torch.from_numpy(model.triangles.astype(np.int64))
        faces = np.arange(batch_size, dtype=np.int64)[:, None, None] * model.num_vertices
        self.index_buffer = self.ctx.buffer((model.triangles[None] + faces).astype(np.int32).tobytes())
        self.vertex_buffer = self.ctx.buffer(reserve=batch_size * model.num_vertices * 6 * 4, dynamic=True)
        self.vertex_array = self.ctx.vertex_array(
            self.program, [(self.vertex_buffer, "3f 3f", "in_position", "in_color")], self.index_buffer)
        self.landmark_ids = model.landmarks_68

    def vertex_normals(self, vertices: torch.Tensor) -> torch.Tensor:
        return vertex_normals(vertices, self.triangles)

    def render(self, batch: RenderBatch) -> tuple[np.ndarray, np.ndarray]:
        """(B, S, S, 3) uint8 aligned crops and (B, 68, 2) landmarks in crop pixels."""
        count = len(batch.vertices)
        if count > self.batch_size:
            raise ValueError(f"batch of {count} faces, renderer holds {self.batch_size}")
        size = self.geometry.size
        vertices = torch.from_numpy(batch.vertices.astype(np.float32))
        posed = vertices @ torch.from_numpy(batch.rotations.astype(np.float32)).transpose(1, 2)
        normals = self.vertex_normals(posed)
        irradiance = torch.einsum("bvk,bkc->bvc", sh_basis(normals), torch.from_numpy(batch.sh.astype(np.float32)))
        colours = (torch.from_numpy(batch.albedo.astype(np.float32)) * irradiance).clamp(0, 1)
        depth = torch.from_numpy(batch.distance_mm.astype(np.float32))[:, None] - posed[..., 2]  # > 0 in front
        screen = self.focal * posed[..., :2] / depth[..., None]
        screen[..., 1] = -screen[..., 1]  # image y points down
        crops = np.empty((count, self.model.num_vertices, 2), dtype=np.float32)
        landmarks = np.full((count, 68, 2), np.nan, dtype=np.float32)
        template = self.geometry.template()
        for face in range(count):
            if batch.model_to_crop is not None:
                screen_np, matrix = posed[face, :, :2].numpy(), batch.model_to_crop[face].astype(np.float32)
            else:
                if self.landmark_ids is None:
                    raise UserError(f"3DMM '{self.model.name}' has no 68 landmark vertices: aligned rendering needs "
                                    "them (or a model_to_crop camera)")
                screen_np = screen[face].numpy()
                matrix = similarity_transform(five_points(screen_np[self.landmark_ids]), template).astype(np.float32)
            crops[face] = screen_np @ matrix[:, :2].T + matrix[:, 2]
            if self.landmark_ids is not None:
                landmarks[face] = crops[face][self.landmark_ids]
        width, height = self.framebuffer.size
        ndc = np.empty((count, self.model.num_vertices, 6), dtype=np.float32)
        ndc[..., 0] = crops[..., 0] / size * 2 - 1  # each face in its own tile's viewport, clipped to it
        ndc[..., 1] = 1 - crops[..., 1] / size * 2
        near, far = batch.distance_mm[:, None] - 300.0, batch.distance_mm[:, None] + 300.0
        ndc[..., 2] = (depth.numpy() - near) / (far - near) * 2 - 1
        ndc[..., 3:] = colours.numpy()
        self.vertex_buffer.write(ndc.tobytes())
        self.framebuffer.use()
        self.ctx.clear(0.0, 0.0, 0.0, depth=1.0)
        self.ctx.enable(self.moderngl.DEPTH_TEST | self.moderngl.CULL_FACE)
        self.ctx.front_face = "ccw"
        per_face = len(self.model.triangles) * 3
        for face in range(count):
            row_from_bottom = self.rows - 1 - face // self.columns
            self.ctx.viewport = ((face % self.columns) * size, row_from_bottom * size, size, size)
            self.vertex_array.render(self.moderngl.TRIANGLES, vertices=per_face, first=face * per_face)
        raw = np.frombuffer(self.framebuffer.read(components=3, alignment=1), dtype=np.uint8)
        image = raw.reshape(height, width, 3)[::-1]
        images = np.stack([image[(f // self.columns) * size:(f // self.columns + 1) * size,
                                 (f % self.columns) * size:(f % self.columns + 1) * size] for f in range(count)])
        return images, landmarks
