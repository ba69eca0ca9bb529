"""Shared fixtures. Tests that need the real data root carry the `data` marker and skip with a reason without it."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from bench.data import data_root as resolve_data_root


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
