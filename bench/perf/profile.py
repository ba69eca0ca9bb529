"""Where one translator iteration spends its time: rendering, decoding, and each network's forward and backward.

    python -m bench.perf.profile --real DIR --pairs DIR [--preset cpu] [--iterations 4]

Timers hook into the running trainer (`Trainer.step`, unchanged): forward hooks time each network's
forward passes, full backward hooks its backward passes (gradients into its weights and, where a later
network needs them, its input); wrappers time the 3DMM renders and the decoding of real and pair
photos. What no part claims (losses, optimiser steps, the EMA, the k updates) is "other". A second
table lists the operators that take the most time (torch.profiler), which says whether a faster
iteration at equal work can be had at all: if convolutions dominate, only fewer or cheaper
convolutions can give it. Writes results/perf/train-profile.{json,md}.
"""
from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import torch

from bench.common.cli import UserError, add_common_arguments, require_at_least, run_main, setup_logging
from bench.perf.record import write_record
from generators.train import PRESETS, Trainer


class PartTimer:
    """Seconds per part of a trainer's iterations, accumulated while `attached` (hooks and wrappers removed after)."""

    def __init__(self, trainer: Trainer):
        self.trainer = trainer
        self.seconds: dict[str, float] = defaultdict(float)
        self._handles: list = []
        self._started: dict[tuple[str, str], float] = {}
        self._originals: list[tuple[object, str, Callable]] = []

    def networks(self) -> dict[str, torch.nn.Module]:
        trainer = self.trainer
        networks = {"G": trainer.G, "G'": trainer.G_prime, "D_R": trainer.D_real, "D_S": trainer.D_synthetic}
        if trainer.identity is not None:
            networks["C"] = trainer.identity.embedder
        return networks

    def _start_forward(self, name: str) -> Callable:
        def hook(*_):
            self._started[name, "forward"] = time.perf_counter()
        return hook

    def _stop_forward(self, name: str) -> Callable:
        def hook(*_):
            started = self._started.pop((name, "forward"), None)
            if started is not None:
                self.seconds[f"{name} forward"] += time.perf_counter() - started
        return hook

    # A backward pass of a network starts at its backward pre-hook and ends with the last of: its full backward
    # hook (which, when no input needs a gradient, fires at the start: torch's documented behaviour) and the
    # accumulation of a gradient into one of its weights. The span is booked at the next start or at exit.
    def _start_backward(self, name: str) -> Callable:
        def hook(*_):
            self._book_backward(name)
            now = time.perf_counter()
            self._started[name, "backward"], self._started[name, "backward-end"] = now, now
        return hook

    def _mark_backward(self, name: str) -> Callable:
        def hook(*_):
            if (name, "backward") in self._started:
                self._started[name, "backward-end"] = time.perf_counter()
        return hook

    def _book_backward(self, name: str) -> None:
        started, ended = self._started.pop((name, "backward"), None), self._started.pop((name, "backward-end"), None)
        if started is not None:
            self.seconds[f"{name} backward"] += ended - started

    def _wrap(self, owner: object, attribute: str, part: str) -> None:
        original = getattr(owner, attribute)

        def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds[part] += time.perf_counter() - started

        self._originals.append((owner, attribute, original))
        setattr(owner, attribute, timed)

    def __enter__(self) -> PartTimer:
        for name, network in self.networks().items():
            self._handles += [network.register_forward_pre_hook(self._start_forward(name)),
                              network.register_forward_hook(self._stop_forward(name)),
                              network.register_full_backward_pre_hook(self._start_backward(name)),
                              network.register_full_backward_hook(self._mark_backward(name))]
            self._handles += [parameter.register_post_accumulate_grad_hook(self._mark_backward(name))
                              for parameter in network.parameters() if parameter.requires_grad]
        self._wrap(self.trainer.synthetic, "render", "render (3DMM)")
        self._wrap(self.trainer.real, "batch", "decode (real photos)")
        if self.trainer.pairs is not None:
            for folder in self.trainer.pairs:
                self._wrap(folder, "batch", "decode (pairs)")
        return self

    def __exit__(self, *_) -> None:
        for name in self.networks():
            self._book_backward(name)
        for handle in self._handles:
            handle.remove()
        for owner, attribute, _original in reversed(self._originals):
            delattr(owner, attribute)  # the instance attribute goes; the class's method shows again


def profile_iterations(trainer: Trainer, iterations: int) -> tuple[list[dict], float]:
    """Rows (part, seconds per iteration, share) over `iterations` timed steps after one warm-up, and the
    seconds per iteration."""
    trainer.step()  # warm-up: first-call allocations and oneDNN kernel selection
    with warnings.catch_warnings(), PartTimer(trainer) as timer:
        warnings.filterwarnings("ignore", "Full backward hook is firing")  # handled: see _start_backward
        started = time.perf_counter()
        for _ in range(iterations):
            trainer.step()
        total = (time.perf_counter() - started) / iterations
    parts = {name: seconds / iterations for name, seconds in timer.seconds.items()}
    parts["other (losses, optimisers, EMA)"] = max(0.0, total - sum(parts.values()))
    rows = [{"part": name, "seconds_per_iteration": seconds, "share": seconds / total}
            for name, seconds in sorted(parts.items(), key=lambda item: -item[1])]
    return rows, total


def operator_table(trainer: Trainer, iterations: int, top: int = 12) -> list[dict]:
    """torch.profiler's operators by self CPU time over `iterations` steps."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as profiler:
        for _ in range(iterations):
            trainer.step()
    events = sorted(profiler.key_averages(), key=lambda event: -event.self_cpu_time_total)
    total = sum(event.self_cpu_time_total for event in events) or 1.0
    return [{"operator": event.key, "calls_per_iteration": event.count / iterations,
             "self_seconds_per_iteration": event.self_cpu_time_total / 1e6 / iterations,
             "share": event.self_cpu_time_total / total} for event in events[:top]]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.perf.profile", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser)
    parser.add_argument("--real", type=Path, required=True)
    parser.add_argument("--pairs", type=Path, required=True)
    parser.add_argument("--preset", choices=PRESETS, default="cpu")
    parser.add_argument("--iterations", type=int, default=4)
    parser.add_argument("--precision", default="fp32", help="fp32 (default: comparable across hosts), bf16, auto")
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    require_at_least(args, iterations=1)
    if args.precision not in ("fp32", "bf16", "fp16", "auto"):
        raise UserError(f"--precision: fp32, bf16, fp16 or auto, not '{args.precision}'")
    config = replace(PRESETS[args.preset], precision=args.precision, diagnose_every=10**9)  # no diagnostic passes
    with tempfile.TemporaryDirectory() as scratch:
        trainer = Trainer(config, args.real, args.pairs, Path(scratch), "cpu")
        rows, total = profile_iterations(trainer, args.iterations)
        operators = operator_table(trainer, args.iterations)
    for row in rows:
        row.update(preset=args.preset, precision=config.precision, identity_network=config.embedder,
                   image_size=config.network.image_size, batch=config.batch_size)
    command = (f"python -m bench.perf.profile --real {args.real} --pairs {args.pairs} --preset {args.preset} "
               f"--iterations {args.iterations} --precision {args.precision}")
    from pandas import DataFrame

    convolution_share = sum(o["share"] for o in operators if "convolution" in o["operator"])
    notes = (f"{total:.2f} s per iteration ({args.iterations} timed after one warm-up). Backward times include the "
             "gradient into a network's input where a later network needs it (C, D_R and G' in G's step).\n\n"
             f"Operators by self time (torch.profiler, {args.iterations} more iterations; convolution kernels "
             f"{convolution_share:.0%} of all):\n\n" + DataFrame(operators).to_markdown(index=False, floatfmt=".3f"))
    frame = write_record("train-profile", "Translator: where one iteration's time goes", command, rows, notes)
    print(frame.to_markdown(index=False, floatfmt=".3f"))
    print(f"\nconvolution kernels: {convolution_share:.0%} of operator time")
    return 0


if __name__ == "__main__":
    run_main(main)
