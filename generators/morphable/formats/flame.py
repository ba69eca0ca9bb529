"""The FLAME reader (registered as `flame`), through a restricted unpickler.

flame    FLAME `generic_model.pkl` (also male/female_model.pkl), a Python 2 pickle whose arrays are
         numpy arrays or chumpy `Ch` objects (the array is the `x` entry of their pickled __dict__),
         plus a scipy.sparse J_regressor. Read WITHOUT chumpy or the pickle's own classes: the
         unpickler resolves only numpy array/dtype/scalar reconstructors and a few harmless builtins
         (set, frozenset, object, slice, complex, bytearray, copyreg's reconstructors, and
         _codecs.encode for text encodings only); any chumpy or scipy.sparse class becomes an inert
         stand-in that only keeps its pickled state; every other global (os.system, builtins.eval,
         ...) is refused with a UserError before anything runs. Python 2 pickles need
         encoding="latin1", which is used.
         v_template (V x 3) in metres -> x1000 to mm; shapedirs (V x 3 x K) in metres: the first 300
         components are identity, the rest (100 in FLAME 2017-2023) expression (expression_kind
         "pca"). Assumption: FLAME's shape and expression components are already scaled by their
         standard deviations (as SMPL's are), so coefficients ~ N(0, 1) and no rescaling is applied.
         f (T x 3, 0-based). No colour model (FLAME's albedo is a separate file), no landmarks (the
         landmark embedding is a separate file).
"""
from __future__ import annotations

import importlib
import pickle
from pathlib import Path

import numpy as np

from bench.common.cli import UserError
from generators.morphable.formats.common import METRES_TO_MM, _build, _triangles
from generators.morphable.model import MorphableModel, register_format


FLAME_IDENTITY_COMPONENTS = 300



class _PickledStandIn:
    """An inert stand-in for a chumpy or scipy.sparse object: keeps constructor args and pickled state."""

    source = "?"
    args: tuple = ()
    state = None

    def __new__(cls, *args, **kwargs):
        instance = object.__new__(cls)
        instance.args = args
        return instance

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        self.state = state


_STAND_INS: dict[str, type] = {}


def _stand_in(module: str, name: str) -> type:
    key = f"{module}.{name}"
    if key not in _STAND_INS:
        _STAND_INS[key] = type(name, (_PickledStandIn,), {"source": key})
    return _STAND_INS[key]


def _numpy_core(submodule: str):
    for prefix in ("numpy._core.", "numpy.core."):
        try:
            return importlib.import_module(prefix + submodule)
        except ImportError:
            continue
    raise ImportError(submodule)


def _text_to_bytes(text: str, encoding: str = "utf-8") -> bytes:
    """`_codecs.encode` limited to text encodings (no zlib/bz2 codecs: no decompression bombs)."""
    if not isinstance(text, str) or encoding.lower().replace("-", "").replace("_", "") not in (
            "latin1", "iso88591", "utf8", "ascii"):
        raise pickle.UnpicklingError(f"refusing _codecs.encode with encoding {encoding!r}")
    return text.encode(encoding)


_SAFE_BUILTINS = {"set", "frozenset", "object", "slice", "complex", "bytearray"}
_SAFE_NUMPY_CORE = {("multiarray", "_reconstruct"), ("multiarray", "scalar"), ("numeric", "_frombuffer")}
_MODULE_RENAMES = {"__builtin__": "builtins", "copy_reg": "copyreg"}  # Python 2 names


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only numpy's array reconstructors and a few builtins; chumpy/scipy.sparse become stand-ins."""

    def __init__(self, handle, path: Path):
        super().__init__(handle, encoding="latin1")
        self.path = path

    def find_class(self, module: str, name: str):
        module = _MODULE_RENAMES.get(module, module)
        if module == "builtins" and name in _SAFE_BUILTINS:
            return getattr(__import__("builtins"), name)
        if (module, name) in {("copyreg", "_reconstructor"), ("copyreg", "__newobj__")}:
            return getattr(importlib.import_module(module), name)
        if (module, name) == ("_codecs", "encode"):  # how Python 3 protocol-2 pickles write bytes
            return _text_to_bytes
        if module == "numpy" and name in ("ndarray", "dtype"):
            return getattr(np, name)
        for prefix in ("numpy.core.", "numpy._core."):
            if module.startswith(prefix) and (module[len(prefix):], name) in _SAFE_NUMPY_CORE:
                return getattr(_numpy_core(module[len(prefix):]), name)
        if module == "chumpy" or module.startswith("chumpy."):
            return _stand_in(module, name)
        if (module == "scipy.sparse" or module.startswith("scipy.sparse.")) and name.endswith(("_matrix", "_array")):
            return _stand_in(module, name)
        raise UserError(f"{self.path}: refusing to unpickle '{module}.{name}': a FLAME model holds only numpy, "
                        f"scipy.sparse and chumpy objects, so this file is not a FLAME model or has been "
                        f"tampered with; do not open it with pickle elsewhere either")


def _load_pickle(path: Path) -> object:
    try:
        with open(path, "rb") as handle:
            return _RestrictedUnpickler(handle, path).load()
    except UserError:
        raise
    except Exception as error:  # UnpicklingError, EOFError, ValueError, ... from a damaged or foreign file
        raise UserError(f"{path}: not a readable FLAME pickle ({type(error).__name__}: {error}); "
                        f"format flame reads FLAME's generic_model.pkl") from None


def _plain_array(value: object, path: Path, field: str) -> np.ndarray:
    """A numpy array from a numpy value or a chumpy Ch stand-in (its `x`)."""
    for _ in range(16):
        if not isinstance(value, _PickledStandIn):
            break
        state = value.state
        if isinstance(state, tuple) and len(state) == 2 and isinstance(state[0], dict):
            state = state[0]
        if not (isinstance(state, dict) and "x" in state):
            raise UserError(f"{path}: '{field}' is a pickled {value.source} without a plain array ('x'); "
                            f"only plain chumpy arrays can be read without chumpy: re-save the model with "
                            f"numpy arrays")
        value = state["x"]
    try:
        array = np.asarray(value)
    except Exception:
        array = np.asarray(None, dtype=object)
    if array.dtype == object or not (np.issubdtype(array.dtype, np.number)):
        raise UserError(f"{path}: '{field}' is not a numeric array ({type(value).__name__}); is this a FLAME model?")
    return array


@register_format("flame", ("generic_model.pkl", "male_model.pkl", "female_model.pkl", "FLAME*.pkl", "*flame*.pkl"),
                 "FLAME (generic_model.pkl; read without chumpy, with a restricted unpickler)")
def read_flame(path: Path) -> MorphableModel:
    path = Path(path)
    content = _load_pickle(path)
    if not isinstance(content, dict):
        raise UserError(f"{path}: the pickle holds a {type(content).__name__}, not FLAME's dict of arrays; "
                        f"format flame reads FLAME's generic_model.pkl")

    def field(key: str) -> np.ndarray:
        if key not in content:
            raise UserError(f"{path}: missing key '{key}'; format flame reads FLAME's generic_model.pkl "
                            f"(keys v_template, shapedirs, f); keys present: {', '.join(sorted(map(str, content)))}")
        return _plain_array(content[key], path, key)

    template = field("v_template")
    if template.ndim != 2 or template.shape[1] != 3:
        raise UserError(f"{path}: 'v_template' has shape {template.shape}, expected (V, 3)")
    v = len(template)
    shapedirs = field("shapedirs")
    if shapedirs.ndim != 3 or shapedirs.shape[:2] != (v, 3):
        raise UserError(f"{path}: 'shapedirs' has shape {shapedirs.shape}, expected ({v}, 3, K)")
    triangles = _triangles(field("f"), v, path, "f")
    components = np.moveaxis(shapedirs.astype(np.float64) * METRES_TO_MM, 2, 0)  # (K, V, 3)
    identity = components[:FLAME_IDENTITY_COMPONENTS]
    expression = components[FLAME_IDENTITY_COMPONENTS:]
    return _build("flame", path, template * METRES_TO_MM, identity, triangles, expression, expression_kind="pca")
