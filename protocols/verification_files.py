"""Reading insightface's verification `.bin` sets without trusting them.

    lfw.bin  cfp_fp.bin  cfp_ff.bin  agedb_30.bin  calfw.bin  cplfw.bin  vgg2_fp.bin

Each file is a pickle of `(images, issame)`: `images` a list of encoded JPEG/PNG faces (112x112, aligned to
ArcFace's five-point template), two per pair, and `issame` one flag per pair. A pickle can name any
importable callable and have it called while loading, so these files are read by `RestrictedUnpickler`,
which resolves only the few numpy names that rebuild plain arrays; everything else (os.system, a class of
any package) is refused before it is called. Every format error names the file.
"""
from __future__ import annotations

import hashlib
import io
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from bench.common.atomic import atomic_path
from bench.common.cli import UserError

KNOWN_SETS = ("lfw", "cfp_fp", "cfp_ff", "agedb_30", "calfw", "cplfw", "vgg2_fp")
FIXTURE_MARKER_SUFFIX = ".FIXTURE.txt"  # beside a .bin built here from another data set: numbers on it are fixtures

# What rebuilding numpy arrays and scalars needs (insightface's files re-saved from Python 3 may hold the
# faces as uint8 arrays, the flags as a bool array), under numpy 1 and numpy 2 module names, and
# `_codecs.encode`, which protocol-2 pickles written by Python 3 use for bytes. None of these runs code
# that the file chooses: they build arrays, dtypes and byte strings from data.
ALLOWED_GLOBALS = frozenset({
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("_codecs", "encode"),
})


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only `ALLOWED_GLOBALS`; any other global raises UserError naming the file
    and the refused name, before anything is called (lists, tuples, bools and bytes need no globals)."""

    def __init__(self, file, source: Path):
        super().__init__(file, encoding="bytes")  # Python 2 pickles (insightface's own files) keep str as bytes
        self.source = source

    def find_class(self, module: str, name: str):
        if (module, name) not in ALLOWED_GLOBALS:
            raise UserError(f"{self.source}: refused to unpickle '{module}.{name}': a verification .bin holds only "
                            f"image bytes, issame flags and numpy arrays (nothing was executed)")
        return super().find_class(module, name)


@dataclass(frozen=True)
class VerificationSet:
    """One .bin: encoded faces (two per pair, in file order), the flags, and what identifies the file."""

    path: Path
    images: tuple[bytes, ...]
    issame: np.ndarray  # (pairs,) bool
    sha1: str
    fixture_note: str | None = None  # text of the FIXTURE marker beside the file, when there is one

    @property
    def name(self) -> str:
        return self.path.stem

    @property
    def file_id(self) -> str:
        """Name plus content hash: cache keys built from it never mix two different files."""
        return f"{self.name}-{self.sha1[:12]}"

    @property
    def pairs(self) -> int:
        return len(self.issame)


def _as_bytes(entry, source: Path, index: int) -> bytes:
    if isinstance(entry, (bytes, bytearray)):
        return bytes(entry)
    if isinstance(entry, np.ndarray) and entry.dtype == np.uint8 and entry.ndim == 1:
        return entry.tobytes()
    raise UserError(f"{source}: image {index} is a {type(entry).__name__}, expected encoded JPEG/PNG bytes")


def _as_flags(issame, source: Path) -> np.ndarray:
    if isinstance(issame, np.ndarray) and issame.dtype == object:
        raise UserError(f"{source}: the issame flags are an object array, expected bools")
    try:
        flags = np.asarray(list(issame))
    except TypeError:
        raise UserError(f"{source}: the issame flags are a {type(issame).__name__}, expected a list of bools") from None
    integer_flags = flags.dtype.kind in "iu" and np.isin(flags, (0, 1)).all()
    if flags.ndim != 1 or not (flags.dtype == bool or integer_flags):
        raise UserError(f"{source}: the issame flags must be a flat list of booleans")
    return flags.astype(bool)


def _check_image(data: bytes, source: Path, index: int) -> None:
    """The header decodes and the face is square (the size is what the template is rescaled to)."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
    except (UnidentifiedImageError, OSError) as error:
        raise UserError(f"{source}: image {index} is not a readable JPEG/PNG ({error})") from None
    if width != height:
        raise UserError(f"{source}: image {index} is {width}x{height}; aligned faces must be square (112x112)")


def read_bin(path: Path) -> VerificationSet:
    """Read and check a verification .bin; any problem raises UserError naming `path`."""
    path = Path(path)
    try:
        blob = path.read_bytes()
    except FileNotFoundError:
        raise UserError(f"verification set not found: {path}") from None
    except OSError as error:
        raise UserError(f"cannot read {path}: {error}") from None
    try:
        loaded = RestrictedUnpickler(io.BytesIO(blob), path).load()
    except UserError:
        raise
    except Exception as error:  # truncated, not a pickle, or a numpy payload that does not rebuild
        raise UserError(f"{path} is not a verification .bin (a pickle of images and issame flags): "
                        f"{type(error).__name__}: {error}") from None
    if not isinstance(loaded, (tuple, list)) or len(loaded) != 2:
        raise UserError(f"{path}: expected a pickled pair (images, issame), found {type(loaded).__name__}"
                        + (f" of length {len(loaded)}" if isinstance(loaded, (tuple, list)) else ""))
    raw_images, raw_issame = loaded
    if not isinstance(raw_images, (list, tuple, np.ndarray)):
        raise UserError(f"{path}: the images are a {type(raw_images).__name__}, expected a list of bytes")
    issame = _as_flags(raw_issame, path)
    if len(raw_images) != 2 * len(issame) or len(issame) == 0:
        raise UserError(f"{path}: {len(raw_images)} images for {len(issame)} issame flags; "
                        f"expected two images per pair and at least one pair")
    images = tuple(_as_bytes(entry, path, index) for index, entry in enumerate(raw_images))
    for index, data in enumerate(images):
        _check_image(data, path, index)
    marker = path.with_name(path.name + FIXTURE_MARKER_SUFFIX)
    note = marker.read_text().strip() if marker.is_file() else None
    return VerificationSet(path, images, issame, hashlib.sha1(blob).hexdigest(), note)


def find_sets(folder: Path) -> list[Path]:
    """The known sets present in `folder`, in the field's order; UserError when none is."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"--all: folder not found: {folder}")
    found = [folder / f"{name}.bin" for name in KNOWN_SETS if (folder / f"{name}.bin").is_file()]
    if not found:
        raise UserError(f"--all: no verification set in {folder}; looked for {', '.join(n + '.bin' for n in KNOWN_SETS)}")
    return found


def write_bin(path: Path, images: list[bytes], issame: list[bool]) -> Path:
    """Write (images, issame) in insightface's layout (for fixtures; pickle protocol 4 stores bytes as bytes)."""
    if len(images) != 2 * len(issame):
        raise ValueError(f"{len(images)} images for {len(issame)} pairs")
    with atomic_path(Path(path)) as temporary:
        Path(temporary).write_bytes(pickle.dumps((list(images), [bool(f) for f in issame]), protocol=4))
    return Path(path)
