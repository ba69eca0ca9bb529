"""The recognizer on a real GPU, for anyone who has one (`gpu` marker: skipped here with the reason).

This machine has none: these tests were dry-run on the CPU (FACEBENCH_GPU_TESTS_ON=cpu, gloo instead of NCCL),
which checks their logic, not CUDA. The fake-GPU test in test_trainer.py covers the forward path here.
"""
import os
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

from recognition.train import train
from tests.recognition.test_trainer import SMOKE, sets  # noqa: F401  (the module's fixture)

pytestmark = pytest.mark.gpu


@pytest.mark.parametrize("precision", ["fp32", "auto", "fp16"])
def test_the_recognizer_trains_on_the_gpu_and_resumes_on_the_cpu(sets, tmp_path, gpu_device, precision):  # noqa: F811
    """A few real steps (fp16 with loss scaling where CUDA has it) through the pinned, multi-worker loader:
    finite losses, weights on the device; the checkpoint then resumes on the CPU."""
    if precision == "fp16" and gpu_device.type != "cuda":
        pytest.skip("fp16 with loss scaling needs CUDA")
    real, synthetic = sets
    config = replace(SMOKE, iterations=3, decay_steps=3, precision=precision, workers=2, checkpoint_every=3)
    trainer = train(config, tmp_path / "run", progress=False, real=real, synthetic=synthetic, device=gpu_device)
    assert {p.device for p in trainer.model.parameters()} == {gpu_device}
    table = pd.read_csv(tmp_path / "run" / "metrics.csv")
    assert np.isfinite(table.loss).all() and table.data_seconds.notna().all()
    resumed = train(replace(config, iterations=4, decay_steps=4, precision="fp32"), tmp_path / "run", resume=True,
                    progress=False, real=real, synthetic=synthetic, device="cpu")
    assert resumed.state.iteration == 4


def test_two_processes_train_the_recognizer_with_nccl(sets, tmp_path, two_gpus):  # noqa: F811
    """torchrun, 2 processes, one GPU each (nccl; gloo in the dry run): rank 0 writes the full run."""
    real, synthetic = sets
    out = tmp_path / "ddp"
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m",
         "recognition.train", "--preset", "smoke", "--real-set", real.source, "--synth", synthetic.source,
         "--allow-identity-overlap", "--no-eval", "--out", str(out)],
        env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-2000:]
    stored = torch.load(out / "checkpoint.pt", weights_only=True, map_location="cpu")
    assert stored["state"]["iteration"] >= 1
