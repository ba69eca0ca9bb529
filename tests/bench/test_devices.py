"""The device policy every stage shares: which device, which precision, modules born on the device, and the
mistakes a user can make refused in one line."""
import argparse

import pytest
import torch

from bench.common import devices
from bench.common.cli import UserError


def test_cpu_and_auto_without_a_gpu():
    assert devices.resolve_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        assert devices.resolve_device("auto") == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_asking_for_a_gpu_that_is_not_there_is_a_user_error():
    with pytest.raises(UserError, match="no usable CUDA GPU.*--device cpu"):
        devices.resolve_device("cuda")
    with pytest.raises(UserError, match="choose auto, cpu, cuda or cuda:N"):
        devices.resolve_device("gpu")


def test_cuda_picks_this_process_gpu_and_refuses_missing_ones(monkeypatch):
    monkeypatch.setattr(devices, "cuda_device_count", lambda: 2)
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert devices.resolve_device("cuda") == devices.resolve_device("auto") == torch.device("cuda", 1)
    assert devices.resolve_device("cuda:0") == torch.device("cuda", 0)
    with pytest.raises(UserError, match="GPU 2 does not exist"):
        devices.resolve_device("cuda:2")


def test_precision_fits_the_device():
    cpu = torch.device("cpu")
    assert devices.check_precision("bf16", cpu) == "bf16"
    with pytest.raises(UserError, match="fp16 needs a CUDA GPU"):
        devices.check_precision("fp16", cpu)
    a = torch.randn(4, 4)
    with devices.autocast(cpu, "bf16"):
        assert (a @ a).dtype == torch.bfloat16
    with devices.autocast(cpu, "fp32"):
        assert (a @ a).dtype == torch.float32
    loss = a.sum()
    assert devices.grad_scaler(cpu, "bf16").scale(loss) is loss, "no loss scaling outside fp16"


def test_auto_precision_follows_the_hardware(monkeypatch, caplog):
    """auto = bf16 only where it is native (an AVX2-only CPU emulates it, 20x slower: results/perf)."""
    cpu = torch.device("cpu")
    monkeypatch.setattr(devices, "cpu_has_native_bf16", lambda: False)
    assert devices.check_precision("auto", cpu) == "fp32"
    assert devices.check_precision("bf16", cpu) == "bf16" and "emulated" in caplog.text  # asked for: a warning
    monkeypatch.setattr(devices, "cpu_has_native_bf16", lambda: True)
    assert devices.check_precision("auto", cpu) == "bf16"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert devices.check_precision("auto", torch.device("cuda", 0)) == "fp16"


def test_the_older_bf16_switch_is_an_alias_of_precision():
    def args(precision=None, bf16=None):
        return argparse.Namespace(precision=precision, bf16=bf16)

    assert devices.precision_from_arguments(args(bf16=True)) == "bf16"
    assert devices.precision_from_arguments(args(bf16=False)) == "fp32"
    assert devices.precision_from_arguments(args()) is None
    assert devices.precision_from_arguments(args("bf16", True)) == "bf16"
    with pytest.raises(UserError, match="contradicts"):
        devices.precision_from_arguments(args("fp32", True))


def test_modules_are_born_on_the_device(fake_cuda):
    class LeavesABufferBehind(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = torch.nn.Linear(3, 2)

        def forward(self, x):
            return self.linear(x) + torch.ones(2)  # a constant made in forward: on the default device

    built = devices.build_on(fake_cuda, LeavesABufferBehind)
    assert built.linear.weight.device == fake_cuda
    with pytest.raises(RuntimeError, match="same device"):
        built(torch.zeros(1, 3, device=fake_cuda))


def test_checkpoints_load_on_the_cpu_whatever_wrote_them(tmp_path, monkeypatch):
    path = tmp_path / "gpu.pt"
    with monkeypatch.context() as patch:  # tag the storages as a GPU run's would be
        patch.setattr(torch.serialization, "location_tag", lambda storage: "cuda:0")
        torch.save({"w": torch.arange(3.0)}, path)
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA"):
            torch.load(path)
    loaded = devices.load_checkpoint(path, "cpu")
    assert loaded["w"].device.type == "cpu" and loaded["w"].tolist() == [0.0, 1.0, 2.0]
