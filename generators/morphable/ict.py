"""The ICT Face Model Light (USC ICT, MIT licence): the project's default 3D morphable model.

Read from a checkout folder, the GitHub zip or a tar archive (`<data root>/ICT-FaceKit.tar.xz`),
converted once into the internal schema and cached as npz under the cache directory, keyed by the
source's SHA-256 (never committed: the model is the user's download).

What is kept: the face area (vertices 0-9408), the head and neck (9409-11247) so turned heads do not
show holes at the sides, the mouth socket (11248-13293) so open mouths are dark inside, and the two
eyeballs (21451-24590) so eyes are not holes. Dropped, as invisible or too small at 108x108: gums,
tongue, teeth, lacrimal fluid, eye blends and occlusion shells, eyelashes.

Shape: `generic_neutral_mesh.obj` is the mean; `identity000-099.obj` are mean + one standard deviation
along each principal component, so their differences from the mean are the std-scaled basis and
identity coefficients are N(0, 1). The 53 expression OBJs are blendshapes (weights in [0, 1]).
Units: the OBJs are in centimetres; the schema is in millimetres.
Landmarks: the Multi-PIE 68 vertex indices listed in the ICT-FaceKit README.
"""
from __future__ import annotations

import hashlib
import json
import os
import logging
import lzma
import tarfile
import zipfile
import zlib
from pathlib import Path

import numpy as np
from matplotlib.path import Path as Polygon

from bench.common.cli import UserError
from bench.common.datasets import DataFile, Dataset, cache_dir, data_root, register_dataset
from bench.common.download import download, file_digest
from generators.morphable.model import MorphableModel, StaleModelCache, register_format

log = logging.getLogger(__name__)

ARCHIVE_NAME = "ICT-FaceKit.tar.xz"
ARCHIVE_NAMES = ("ICT-FaceKit.tar.xz", "ICT-FaceKit.zip", "ICT-FaceKit")  # looked for in the data root
PINNED_COMMIT = "da5f95a607f5e6b37755b38d3385d7f2853732e5"
ARCHIVE_URL = f"https://github.com/ICT-VGL/ICT-FaceKit/archive/{PINNED_COMMIT}.zip"
# SHA-256 over the FaceXModel/*.obj and *.json files (sorted names and contents) at PINNED_COMMIT;
# the same for the repository's zip, a tar of it, or a checkout.
CONTENT_SHA256 = "0b243f95476584bf729ee77974eb64690baf002f9c478d06fb7b5fa7fef1ab8e"
KEPT_VERTEX_RANGES = {"face": (0, 9409), "head_neck": (9409, 11248), "mouth_socket": (11248, 13294),
                      "eyeball_left": (21451, 23021), "eyeball_right": (23021, 24591)}
KEPT_POLYGON_RANGES = {"face": (0, 9230), "head_neck": (9230, 11144), "mouth_socket": (11144, 13226),
                       "eyeball_left": (21496, 23094), "eyeball_right": (23094, 24692)}
# From the ICT-FaceKit README (0-based): Multi-PIE 68 landmarks.
MULTI_PIE_68 = np.array([
    1225, 1888, 1052, 367, 1719, 1722, 2199, 1447, 966, 3661, 4390, 3927, 3924, 2608, 3272, 4088, 3443, 268,
    493, 1914, 2044, 1401, 3615, 4240, 4114, 2734, 2509, 978, 4527, 4942, 4857, 1140, 2075, 1147, 4269, 3360,
    1507, 1542, 1537, 1528, 1518, 1511, 3742, 3751, 3756, 3721, 3725, 3732, 5708, 5695, 2081, 0, 4275, 6200,
    6213, 6346, 6461, 5518, 5957, 5841, 5702, 5711, 5533, 6216, 6207, 6470, 5517, 5966,
])
CENTIMETRES_TO_MM = 10.0


class _Source:
    """Files of FaceXModel/ from a folder, a zip or a tar archive, by base name."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.files: dict[str, bytes] = {}
        if self.path.is_dir():
            folder = next((p for p in [self.path / "FaceXModel", *self.path.glob("*/FaceXModel")] if p.is_dir()), None)
            if folder is None:
                raise UserError(f"{self.path}: no FaceXModel/ folder; point at an ICT-FaceKit checkout")
            self.files = {p.name: p.read_bytes() for p in folder.iterdir() if p.suffix in (".obj", ".json")}
        else:
            try:
                self._read_archive()
            except tarfile.TarError as error:
                raise UserError(f"{self.path}: not an ICT-FaceKit folder, zip or tar archive ({error})") from None
            except (EOFError, lzma.LZMAError, zlib.error, zipfile.BadZipFile, OSError) as error:
                raise UserError(f"{self.path}: the archive is damaged or truncated ({type(error).__name__}: "
                                f"{str(error)[:120] or 'unexpected end of data'}); `python -m bench.data check` "
                                "compares it with the published checksum; download it again") from None
        if "generic_neutral_mesh.obj" not in self.files:
            raise UserError(f"{self.path}: FaceXModel/generic_neutral_mesh.obj not found; is this ICT-FaceKit?")

    def _read_archive(self) -> None:
        if zipfile.is_zipfile(self.path):
            with zipfile.ZipFile(self.path) as archive:
                for name in archive.namelist():
                    if "/FaceXModel/" in f"/{name}" and name.endswith((".obj", ".json")):
                        self.files[Path(name).name] = archive.read(name)
            return
        with tarfile.open(self.path) as archive:
            for member in archive:
                if member.isfile() and "FaceXModel/" in member.name and member.name.endswith((".obj", ".json")):
                    self.files[Path(member.name).name] = archive.extractfile(member).read()

    def read(self, name: str) -> bytes:
        if name not in self.files:
            raise UserError(f"{self.path}: FaceXModel/{name} is missing")
        return self.files[name]


def _obj_vertices(text: bytes) -> np.ndarray:
    lines = [line[2:] for line in text.split(b"\n") if line.startswith(b"v ")]
    return np.array(b" ".join(lines).split(), dtype=np.float64).reshape(-1, 3)


def _obj_polygons(text: bytes) -> tuple[list[list[int]], np.ndarray, list[list[int]]]:
    """Faces (vertex ids, 0-based), texture coordinates, and faces' texture ids."""
    faces, face_uvs = [], []
    uv_lines = [line[3:] for line in text.split(b"\n") if line.startswith(b"vt ")]
    uvs = np.array(b" ".join(uv_lines).split(), dtype=np.float64).reshape(-1, 2)
    for line in text.split(b"\n"):
        if line.startswith(b"f "):
            corners = [c.split(b"/") for c in line[2:].split()]
            faces.append([int(c[0]) - 1 for c in corners])
            face_uvs.append([int(c[1]) - 1 if len(c) > 1 and c[1] else -1 for c in corners])
    return faces, uvs, face_uvs


def _region_masks(neutral: np.ndarray, landmarks: np.ndarray, face_vertices: int) -> dict[str, np.ndarray]:
    """Lips, brows and eye sockets from the landmark outlines, in a frontal projection of the neutral face."""
    xy = neutral[:, :2]
    frontal = np.zeros(len(neutral), dtype=bool)
    frontal[:face_vertices] = True

    def inside(indices, grow_mm: float = 0.0) -> np.ndarray:
        outline = xy[landmarks[indices]]
        centre = outline.mean(0)
        direction = outline - centre
        grown = outline + direction / np.linalg.norm(direction, axis=1, keepdims=True).clip(1e-6) * grow_mm
        return Polygon(grown).contains_points(xy) & frontal

    def near(indices, radius_mm: float) -> np.ndarray:
        points = xy[landmarks[indices]]
        # densify the brow polyline so the band is continuous
        dense = np.concatenate([np.linspace(a, b, 8) for a, b in zip(points[:-1], points[1:])])
        distance = np.min(np.linalg.norm(xy[:, None, :] - dense[None], axis=2), axis=1)
        return (distance < radius_mm) & frontal

    return {
        "lips": inside(list(range(48, 60)), 0.5),
        "brows": near(list(range(17, 22)), 4.0) | near(list(range(22, 27)), 4.0),
        "eye_sockets": inside(list(range(36, 42)), 6.0) | inside(list(range(42, 48)), 6.0),
    }


def convert_ict(source_path: Path) -> MorphableModel:
    """Read the ICT FaceKit light model from a folder/zip/tar into the internal schema."""
    source = _Source(source_path)
    neutral_text = source.read("generic_neutral_mesh.obj")
    neutral_all = _obj_vertices(neutral_text)
    polygons, uv_table, polygon_uvs = _obj_polygons(neutral_text)
    kept = np.concatenate([np.arange(a, b) for a, b in KEPT_VERTEX_RANGES.values()])
    new_index = -np.ones(len(neutral_all), dtype=np.int64)
    new_index[kept] = np.arange(len(kept))
    triangles, vertex_uv = [], np.zeros((len(neutral_all), 2))
    for a, b in KEPT_POLYGON_RANGES.values():
        for polygon, uv_ids in zip(polygons[a:b], polygon_uvs[a:b]):
            for vertex, uv in zip(polygon, uv_ids):
                if uv >= 0:
                    vertex_uv[vertex] = uv_table[uv]
            for k in range(1, len(polygon) - 1):  # fan triangulation of quads
                triangles.append((polygon[0], polygon[k], polygon[k + 1]))
    triangles = np.array(triangles)
    if (new_index[triangles] < 0).any():
        raise UserError(f"{source.path}: kept polygons use dropped vertices; unexpected ICT-FaceKit layout")
    mean = neutral_all[kept] * CENTIMETRES_TO_MM
    identities = []
    for k in range(100):
        shape = _obj_vertices(source.read(f"identity{k:03d}.obj"))
        identities.append((shape[kept] - neutral_all[kept]) * CENTIMETRES_TO_MM)
    indices = json.loads(source.read("vertex_indices.json"))
    expression_names = list(indices["expressions"])
    expressions = [(_obj_vertices(source.read(f"{n}.obj"))[kept] - neutral_all[kept]) * CENTIMETRES_TO_MM
                   for n in expression_names]
    centre = (mean[: KEPT_VERTEX_RANGES["face"][1]].max(0) + mean[: KEPT_VERTEX_RANGES["face"][1]].min(0)) / 2
    mean = mean - centre
    regions = _region_masks(mean, MULTI_PIE_68, KEPT_VERTEX_RANGES["face"][1])
    offset = 0
    for name, (a, b) in KEPT_VERTEX_RANGES.items():
        mask = np.zeros(len(kept), dtype=bool)
        mask[offset : offset + b - a] = True
        regions[name] = mask
        offset += b - a
    return MorphableModel(
        name="ict-facekit-light",
        mean_shape=mean.astype(np.float32),
        identity_basis=np.stack(identities).astype(np.float32),
        expression_basis=np.stack(expressions).astype(np.float32),
        triangles=new_index[triangles].astype(np.int32),
        expression_kind="blendshapes",
        uvs=vertex_uv[kept].astype(np.float32),
        landmarks_68=MULTI_PIE_68.astype(np.int32),  # all 68 lie in the face area, whose ids are unchanged
        regions=regions,
        expression_names=expression_names,
        origin_mm=centre.astype(np.float32),
    )


def content_digest(path: Path) -> str:
    """SHA-256 over the model files' names and contents, whatever the container (folder, zip, tar)."""
    digest = hashlib.sha256()
    for name, data in sorted(_Source(path).files.items()):
        digest.update(name.encode())
        digest.update(data)
    return digest.hexdigest()


def source_digest(path: Path) -> str:
    """Cache key: SHA-256 of an archive file (fast), or the content digest of a folder."""
    path = Path(path)
    return content_digest(path) if path.is_dir() else file_digest(path, "sha256")


@register_format("ict", ("ICT-FaceKit*", "ict*.zip", "ict*.tar*"), "ICT Face Model Light (folder, zip or tar)")
def load_ict(path: Path | None = None, use_cache: bool = True) -> MorphableModel:
    """The ICT model, converted once and cached as npz keyed by the source's SHA-256."""
    if path is None:
        candidates = [data_root() / name for name in ARCHIVE_NAMES]
        path = next((c for c in candidates if c.exists()), candidates[0])
    path = Path(path)
    if not path.exists():
        raise UserError(f"ICT Face Model not found at {path}: put {ARCHIVE_NAME} (a tar of the ICT-FaceKit "
                        f"repository) in the data root, or run `python -m bench.data fetch ict-facekit` when online")
    cached = cache_dir() / "morphable" / f"ict-{source_digest(path)[:16]}.npz"
    if use_cache and cached.exists():
        try:
            return MorphableModel.load(cached)
        except StaleModelCache:
            log.info("cached conversion %s is from another schema version; converting again", cached)
    log.info("converting the ICT Face Model from %s (once; cached at %s)", path, cached)
    model = convert_ict(path)
    if use_cache:
        cached.parent.mkdir(parents=True, exist_ok=True)
        model.save(cached)
    return model


def _fetch_ict(root: Path) -> None:
    """The ICT-FaceKit repository at a pinned commit; GitHub's zips are not byte-stable, so the model
    files inside are checked instead (one SHA-256 over their names and contents)."""
    target = root / "ICT-FaceKit.zip"
    if target.exists() or (root / "ICT-FaceKit.tar.xz").exists():
        return
    partial = root / "ICT-FaceKit.download.zip"
    download(ARCHIVE_URL, partial, None,
             manual_hint="save a tar archive of github.com/ICT-VGL/ICT-FaceKit as <data root>/ICT-FaceKit.tar.xz")
    digest = content_digest(partial)
    if digest != CONTENT_SHA256:
        partial.unlink()
        raise UserError(f"{ARCHIVE_URL}: the model files' SHA-256 is {digest}, expected {CONTENT_SHA256}")
    os.replace(partial, target)


ICT_FACEKIT = register_dataset(Dataset(
    name="ict-facekit",
    description="ICT Face Model Light (MIT licence), the default 3D morphable model",
    files=(
        DataFile(
            "ICT-FaceKit.tar.xz",
            ("3dmm", "pairs", "generator training", "synthesis"),
            "4a4eaa1130bcba0613ffd85e86660960376fec6491ac6399b1a31052e27310b6",
            "sha256",
            alternative="ICT-FaceKit.zip",
        ),
    ),
    how_to_get="run `python -m bench.data fetch ict-facekit` when online (the repository at a pinned "
    "commit), or save a tar archive of github.com/ICT-VGL/ICT-FaceKit as <data root>/ICT-FaceKit.tar.xz",
    fetch=_fetch_ict,
))
