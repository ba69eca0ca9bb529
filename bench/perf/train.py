"""Seconds per training iteration of the translator, per preset and with bf16 autocast / channels-last.

    python -m bench.perf.train --real DIR --pairs DIR [--iterations 6] [--presets smoke,cpu]
                               [--identity-networks openface-nn4,dlib-resnet,sface] [--variants fp32,channels-last]
                               [--data-workers 0,1,2]

Variants run one after another in this process on the same data (the first iterations, after one
warm-up iteration, are timed); the losses of the first timed iteration are recorded beside the times,
so a variant that is faster but changes the losses can be seen. `--identity-networks` adds, per preset,
one row for each network as C (in the preset's own precision), to price the choice of C; `--data-workers`
one fp32 row per count of processes preparing batches ahead (`generators.prefetch`): `data_seconds` is the
time a step waited for its batch, which workers should bring near zero where cores are free.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from bench.common.cli import UserError, add_common_arguments, run_main, setup_logging
from bench.perf.record import write_record
from generators.train import PRESETS, Trainer


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.perf.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser)
    parser.add_argument("--real", type=Path, required=True)
    parser.add_argument("--pairs", type=Path, required=True)
    parser.add_argument("--iterations", type=int, default=6)
    parser.add_argument("--presets", default="smoke,cpu")
    parser.add_argument("--identity-networks", default="", help="comma-separated networks to time as C")
    parser.add_argument("--variants", default="fp32,bf16,channels-last",
                        help="which of the standard rows to time (bf16 is emulated, ~20x slower, on CPUs without it)")
    parser.add_argument("--data-workers", default="",
                        help="comma-separated counts of data workers (generators.prefetch) to time in fp32, e.g. 0,1,2")
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    rows = []
    for preset in args.presets.split(","):
        if preset not in PRESETS:
            raise UserError(f"--presets: unknown preset '{preset}' (choose from {', '.join(PRESETS)})")
        standard = {"fp32": ("fp32", {"precision": "fp32"}), "bf16": ("bf16 autocast", {"precision": "bf16"}),
                    "channels-last": ("fp32 channels-last", {"precision": "fp32", "channels_last": True})}
        unknown = [v for v in filter(None, args.variants.split(",")) if v not in standard]
        if unknown:
            raise UserError(f"--variants: unknown {', '.join(unknown)} (choose from {', '.join(standard)})")
        variants = [standard[v] for v in filter(None, args.variants.split(","))]
        variants += [(f"C = {name}", {"embedder": name}) for name in filter(None, args.identity_networks.split(","))]
        try:
            worker_counts = [int(n) for n in filter(None, args.data_workers.split(","))]
        except ValueError:
            raise UserError(f"--data-workers: comma-separated counts, not '{args.data_workers}'") from None
        variants += [(f"fp32, {n} data workers", {"precision": "fp32", "data_workers": n}) for n in worker_counts]
        for variant, options in variants:
            config = replace(PRESETS[preset], **options)
            with tempfile.TemporaryDirectory() as scratch:
                trainer = Trainer(config, args.real, args.pairs, Path(scratch))
                trainer.step()  # warm-up
                started = time.perf_counter()
                first, waited = None, 0.0
                for _ in range(args.iterations):
                    logs = trainer.step()
                    first, waited = first or logs, waited + logs["data_seconds"]
                seconds = (time.perf_counter() - started) / args.iterations
                trainer.close()
            rows.append({"preset": preset, "variant": variant, "identity_network": config.embedder, "precision": config.precision,
                         "image_size": config.network.image_size,
                         "batch": config.batch_size, "seconds_per_iteration": seconds,
                         "data_seconds": waited / args.iterations,
                         "G": first["G"], "cyc": first["cyc"], "C": first.get("C", float("nan"))})
            print(rows[-1], flush=True)
    command = (f"python -m bench.perf.train --real {args.real} --pairs {args.pairs} --iterations {args.iterations} "
               f"--presets {args.presets} --variants {args.variants}"
               + (f" --identity-networks {args.identity_networks}" if args.identity_networks else "")
               + (f" --data-workers {args.data_workers}" if args.data_workers else ""))
    notes = ("Each variant starts from the same seed; G, cyc and C are the losses of its first timed iteration. "
             "The `paper` preset (108x108, batch 16, 64-channel discriminators) is timed with --presets paper.")
    frame = write_record("train", "Translator training: seconds per iteration", command, rows, notes)
    print(frame.to_markdown(index=False, floatfmt=".3f"))
    return 0


if __name__ == "__main__":
    run_main(main)
