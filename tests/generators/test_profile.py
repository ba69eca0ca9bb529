"""bench.perf.profile (here for the translator fixtures): every part of a real (smoke) translator iteration is timed, and the timers leave no trace."""
from pathlib import Path

import pytest

from bench.perf.profile import PartTimer, profile_iterations
from generators.train import PRESETS, Trainer

pytestmark = pytest.mark.data


def test_every_part_of_an_iteration_is_timed_and_the_hooks_go_away(real_folder, pairs_folder, tmp_path: Path):
    trainer = Trainer(PRESETS["smoke"], real_folder, pairs_folder, tmp_path, "cpu")
    rows, total = profile_iterations(trainer, 2)
    seconds = {row["part"]: row["seconds_per_iteration"] for row in rows}
    for network in ("G", "G'", "D_R", "D_S", "C"):
        assert seconds[f"{network} forward"] > 0 and seconds[f"{network} backward"] > 0, network
    assert seconds["render (3DMM)"] > 0 and seconds["decode (real photos)"] > 0 and seconds["decode (pairs)"] > 0
    assert sum(seconds.values()) == pytest.approx(total, rel=1e-6)  # "other" is the remainder, never negative
    assert sum(row["share"] for row in rows) == pytest.approx(1.0, rel=1e-6)
    assert not trainer.G._forward_hooks and not trainer.G._backward_hooks
    assert "render" not in vars(trainer.synthetic) and "batch" not in vars(trainer.real)
    with PartTimer(trainer) as timer:  # a new timer starts from zero
        assert not timer.seconds


def test_a_backward_pass_is_timed_when_no_input_needs_a_gradient():
    """G's input (a render) and the discriminators' detached inputs need no gradient; torch then fires the full
    backward hook at the start of the pass, so the end is taken from the weights' gradient accumulation."""
    import time as clock

    import torch

    class Slow(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.ones(3))

        def forward(self, x):
            return SlowBackward.apply(x * self.weight)

    class SlowBackward(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x.clone()

        @staticmethod
        def backward(ctx, grad):
            clock.sleep(0.2)
            return grad

    class Holder:
        pass

    trainer = Holder()
    trainer.G, trainer.G_prime, trainer.D_real, trainer.D_synthetic = Slow(), Slow(), Slow(), Slow()
    trainer.identity, trainer.pairs = None, None
    trainer.synthetic, trainer.real = Holder(), Holder()
    trainer.synthetic.render, trainer.real.batch = (lambda: None), (lambda: None)
    with PartTimer(trainer) as timer:
        trainer.G(torch.ones(3)).sum().backward()  # the input needs no gradient
    assert timer.seconds["G backward"] >= 0.19
