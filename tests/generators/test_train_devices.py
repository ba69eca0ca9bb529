"""The translator on a device: every network, batch, view and loss term on the trainer's device (checked on a
fake GPU, so a forgotten `.to(device)` fails here), and checkpoints that resume across device types."""
from pathlib import Path

import pytest
import torch

from bench.common.devices import load_checkpoint
import generators.train
from generators.train import PRESETS, Trainer, train
from torch._subclasses.fake_tensor import unset_fake_temporarily

pytestmark = pytest.mark.data


def gpu_trainer(real_folder, pairs_folder, out, monkeypatch) -> Trainer:
    """A smoke trainer on the fake GPU whose CPU side (decoding, rendering, the centroid table kept by label)
    is built and run for real: the renderer's tensors must hold data, labels must be readable."""
    def real_stream(config, _original=generators.train.SyntheticStream):
        with unset_fake_temporarily():
            return _original(config)

    monkeypatch.setattr(generators.train, "SyntheticStream", real_stream)
    trainer = Trainer(PRESETS["smoke"], real_folder, pairs_folder, out, device="cuda")
    for source, method in ((trainer.synthetic, "render"), (trainer.real, "batch"), (trainer.pairs[0], "batch"),
                           (trainer.pairs[1], "batch"), (trainer.centroids, "load_state_dict")):
        def for_real(*args, _original=getattr(source, method)):
            with unset_fake_temporarily():
                return _original(*args)

        monkeypatch.setattr(source, method, for_real)
    return trainer


def on(device: torch.device, tensors: dict) -> dict:
    return {name: value.device for name, value in tensors.items() if isinstance(value, torch.Tensor)
            and value.device != device}


def test_every_forward_part_of_a_step_runs_on_the_gpu(fake_cuda, real_folder, pairs_folder, tmp_path, monkeypatch):
    """Networks, C, the rendered/real/pair batches, C's crop grid and the losses of (A), (B), (C) on cuda:0."""
    trainer = gpu_trainer(real_folder, pairs_folder, tmp_path, monkeypatch)
    for name in ("G", "G_prime", "D_real", "D_synthetic", "G_ema"):
        devices = {t.device for t in [*getattr(trainer, name).parameters(), *getattr(trainer, name).buffers()]}
        assert devices == {fake_cuda}, name
    assert {p.device for p in trainer.identity.embedder.parameters()} == {fake_cuda}
    batches = trainer.next_batches()
    assert batches["labels"].device.type == "cpu", "labels are bookkeeping (centroids are looked up by label)"
    assert not on(fake_cuda, {k: v for k, v in batches.items() if k != "labels"})
    forward_G = trainer.forward_G(batches["x"])
    assert not on(fake_cuda, forward_G) and forward_G["embeddings"].shape[0] == len(batches["x"])
    generated = forward_G["generated"].detach()
    forward_G_prime = trainer.forward_G_prime(generated, batches["x"], batches["renders"], batches["reals"])
    assert not on(fake_cuda, forward_G_prime)
    forward_D = trainer.forward_D(batches["x"], batches["y"], generated, forward_G_prime["cycled_again"].detach())
    assert not on(fake_cuda, forward_D)


def test_a_cpu_batch_fed_to_the_gpu_trainer_fails(fake_cuda, real_folder, pairs_folder, tmp_path, monkeypatch):
    """The fake GPU does catch a forgotten move: the test above cannot pass by accident."""
    trainer = gpu_trainer(real_folder, pairs_folder, tmp_path, monkeypatch)
    size = PRESETS["smoke"].network.image_size
    with pytest.raises(RuntimeError, match="same device"):
        trainer.forward_G(torch.zeros(4, 3, size, size))


def gpu_written(path: Path, payload: dict, monkeypatch) -> Path:
    """`payload` saved as a GPU run saves it: every storage tagged cuda:0 (loading it without map_location
    on a machine without CUDA fails)."""
    with monkeypatch.context() as patch:
        patch.setattr(torch.serialization, "location_tag", lambda storage: "cuda:0")
        torch.save(payload, path)
    return path


def test_a_checkpoint_written_on_a_gpu_resumes_on_the_cpu(real_folder, pairs_folder, tmp_path, monkeypatch):
    config = PRESETS["smoke"]
    straight = train(config, real_folder, pairs_folder, tmp_path / "straight", progress=False, device="cpu")
    train(config.__class__(**{**config.__dict__, "iterations": 2}), real_folder, pairs_folder, tmp_path / "resumed",
          progress=False, device="cpu")
    checkpoint = tmp_path / "resumed" / "checkpoint.pt"
    gpu_written(checkpoint, torch.load(checkpoint, weights_only=False), monkeypatch)
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA"):
            torch.load(checkpoint, weights_only=False)
    resumed = train(config, real_folder, pairs_folder, tmp_path / "resumed", resume=True, progress=False, device="cpu")
    assert resumed.state.iteration == config.iterations
    for key, value in straight.G.state_dict().items():
        torch.testing.assert_close(resumed.G.state_dict()[key], value, msg=key)


def test_a_cpu_checkpoint_resumes_on_the_gpu(fake_cuda, real_folder, pairs_folder, tmp_path, monkeypatch):
    """A CPU run's checkpoint restores into a trainer on cuda:0: weights and Adam's moments land on the GPU."""
    with unset_fake_temporarily():
        train(PRESETS["smoke"].__class__(**{**PRESETS["smoke"].__dict__, "iterations": 2}), real_folder, pairs_folder,
              tmp_path / "cpu", progress=False, device="cpu")
        stored = load_checkpoint(tmp_path / "cpu" / "checkpoint.pt")
    trainer = gpu_trainer(real_folder, pairs_folder, tmp_path / "gpu", monkeypatch)

    def read_for_real(*args, _original=generators.train.load_checkpoint):  # reading a file is CPU work
        with unset_fake_temporarily():
            return _original(*args)

    monkeypatch.setattr(generators.train, "load_checkpoint", read_for_real)
    trainer.restore(tmp_path / "cpu" / "checkpoint.pt")
    assert trainer.state.iteration == stored["state"]["iteration"] == 2
    assert {p.device for p in trainer.G.parameters()} == {fake_cuda}
    moments = [s["exp_avg"] for s in trainer.optimisers["G"].state.values()]
    assert moments and {m.device for m in moments} == {fake_cuda}
