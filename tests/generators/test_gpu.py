"""The translator and synthesis on a real GPU, for anyone who has one (`gpu` marker: skipped here with the reason).

This machine has none: these tests were dry-run on the CPU (FACEBENCH_GPU_TESTS_ON=cpu, gloo instead of NCCL),
which checks their logic, not CUDA. The fake-GPU tests (test_train_devices.py) cover the forward paths here.
"""
import os
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from generators.synthesis_plan import PRESETS as SYNTHESIS_PRESETS
from generators.synthesize import synthesize
from generators.train import PRESETS, train

pytestmark = [pytest.mark.gpu, pytest.mark.data]


def precisions(device: torch.device) -> list[str]:
    """fp32, the hardware's own (auto: bf16 or fp16) and fp16 with loss scaling where CUDA has it."""
    return ["fp32", "auto", *(["fp16"] if device.type == "cuda" else [])]


@pytest.mark.parametrize("precision_index", [0, 1, 2])
def test_the_translator_trains_on_the_gpu_and_resumes_on_the_cpu(real_folder, pairs_folder, tmp_path, gpu_device,
                                                                   precision_index):
    """A few real steps (forward and backward, loss scaling with fp16) on the GPU: finite losses, k's moved by
    the balance, every weight on the device; the checkpoint then resumes on the CPU for one more step."""
    if precision_index >= len(precisions(gpu_device)):
        pytest.skip("fp16 with loss scaling needs CUDA")
    precision = precisions(gpu_device)[precision_index]
    config = replace(PRESETS["smoke"], iterations=3, precision=precision, checkpoint_every=3)
    trainer = train(config, real_folder, pairs_folder, tmp_path / "run", progress=False, device=gpu_device)
    assert {p.device for p in trainer.G.parameters()} == {gpu_device}
    table = pd.read_csv(tmp_path / "run" / "metrics.csv")
    assert len(table) == 3 and np.isfinite(table[["G", "G_prime", "D_R", "D_S", "cyc", "DP"]].to_numpy()).all()
    resumed = train(replace(config, iterations=4), None, None, tmp_path / "run", resume=True, progress=False, device="cpu")
    assert resumed.state.iteration == 4 and {p.device.type for p in resumed.G.parameters()} == {"cpu"}


def test_the_translator_with_data_workers_feeds_the_gpu(real_folder, pairs_folder, tmp_path, gpu_device):
    """Batches rendered and decoded by a worker arrive (pinned) and the step runs; waits are logged."""
    config = replace(PRESETS["smoke"], iterations=3, data_workers=1, checkpoint_every=3)
    train(config, real_folder, pairs_folder, tmp_path / "run", progress=False, device=gpu_device)
    table = pd.read_csv(tmp_path / "run" / "metrics.csv")
    assert table.data_seconds.notna().all() and table.compute_seconds.notna().all()


def test_two_processes_train_the_translator_with_nccl(real_folder, pairs_folder, tmp_path, lfw_root, two_gpus):
    """torchrun, 2 processes, one GPU each (nccl; gloo in the dry run): rank 0 writes the full run."""
    out = tmp_path / "ddp"
    env = {**os.environ, "FACEBENCH_DATA": str(lfw_root), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m",
         "generators.train", "--preset", "smoke", "--real", str(real_folder), "--pairs", str(pairs_folder),
         "--out", str(out)], env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-2000:]
    stored = torch.load(out / "checkpoint.pt", weights_only=False, map_location="cpu")
    assert stored["state"]["iteration"] == PRESETS["smoke"].iterations


def test_synthesis_on_the_gpu_writes_the_cpu_s_images(real_folder, pairs_folder, tmp_path, gpu_device):
    """G on the GPU with a render worker ahead: the same files as on the CPU, pixels within float rounding."""
    run = tmp_path / "run"
    train(replace(PRESETS["smoke"], iterations=2), real_folder, pairs_folder, run, progress=False, device="cpu")
    config = replace(SYNTHESIS_PRESETS["smoke"], image_format="png", bf16=False)
    synthesize(config, run, tmp_path / "cpu", progress=False, device="cpu")
    synthesize(config, run, tmp_path / "gpu", progress=False, device=gpu_device, render_workers=1)
    files = sorted(p.relative_to(tmp_path / "cpu") for p in (tmp_path / "cpu" / "ganfaces").rglob("*.png"))
    assert files and files == sorted(p.relative_to(tmp_path / "gpu") for p in (tmp_path / "gpu" / "ganfaces").rglob("*.png"))
    for relative in files:
        on_cpu = np.asarray(Image.open(tmp_path / "cpu" / relative), dtype=np.int16)
        on_gpu = np.asarray(Image.open(tmp_path / "gpu" / relative), dtype=np.int16)
        assert np.abs(on_cpu - on_gpu).max() <= 2, relative
