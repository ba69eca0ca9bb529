"""Training images per second of the recognizer: the paper's VGG19 at 96x96 beside the cpu preset's backbone.

    python -m bench.perf.recognizer [--real-set DIR] [--synth DIR] [--iterations 3] \\
        [--variants paper,paper-bf16,cpu,cpu-fp32]

Each variant is a real `recognition.train.Trainer` (data loading, both heads, Adam step) in this process;
after one warm-up iteration, `--iterations` iterations are timed (mean, and the fastest iteration, which is
closer to an idle machine's speed when other jobs share the CPU). Without `--real-set` / `--synth`,
folders of generated 108x108 crops stand in (4,038 real identities like LFW DevTrain, 500 synthetic);
images/s counts real and synthetic images alike. The minutes column is what the preset's full run
would take at that speed (training only, no evaluation).
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image

from bench.common.cli import UserError, add_common_arguments, run_main, setup_logging
from bench.perf.record import write_record
from recognition.data import read_folder_set
from recognition.train import PRESETS, Trainer

VARIANTS = {
    "paper": ("paper", {"pretrained": "none"}),
    "paper-bf16": ("paper", {"pretrained": "none", "precision": "bf16"}),
    "cpu": ("cpu", {}),
    "cpu-fp32": ("cpu", {"precision": "fp32"}),
}


def generated_set(folder: Path, identities: int, per_identity: int, seed: int) -> Path:
    """Smooth random 108x108 crops (PNG, about the size of real aligned faces) in an ImageFolder."""
    rng = np.random.default_rng(seed)
    for identity in range(identities):
        (folder / f"id_{identity:05d}").mkdir(parents=True, exist_ok=True)
        for image in range(per_identity):
            coarse = rng.integers(0, 255, (14, 14, 3), dtype=np.uint8)
            noisy = np.asarray(Image.fromarray(coarse).resize((108, 108), Image.Resampling.BICUBIC), dtype=np.int16)
            noisy = np.clip(noisy + rng.integers(-8, 9, noisy.shape), 0, 255).astype(np.uint8)
            Image.fromarray(noisy).save(folder / f"id_{identity:05d}" / f"{image:03d}.png", compress_level=1)
    return folder


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.perf.recognizer", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser)
    parser.add_argument("--real-set", type=Path, help="ImageFolder of aligned crops (default: generated)")
    parser.add_argument("--synth", type=Path, help="synthetic ImageFolder (default: generated)")
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    unknown = sorted(set(args.variants.split(",")) - set(VARIANTS))
    if unknown:
        raise UserError(f"unknown variant(s) {', '.join(unknown)}; known: {', '.join(VARIANTS)}")
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        real_folder = args.real_set or generated_set(Path(scratch) / "real", 4038, 2, 0)
        synthetic_folder = args.synth or generated_set(Path(scratch) / "synthetic", 500, 4, 1)
        real, synthetic = read_folder_set(real_folder), read_folder_set(synthetic_folder, "--synth")
        for variant in args.variants.split(","):
            preset, options = VARIANTS[variant]
            # the guard needs LFW and the sets are stand-ins; evaluation is not timed
            config = replace(PRESETS[preset], allow_identity_overlap=True, evaluate=False, **options)
            with tempfile.TemporaryDirectory() as out:
                trainer = Trainer(config, Path(out), real, synthetic, progress=False)
                trainer.step()  # warm-up
                times = []
                for _ in range(args.iterations):
                    started = time.perf_counter()
                    logs = trainer.step()
                    times.append(time.perf_counter() - started)
                seconds, best = float(np.mean(times)), min(times)
                parameters = sum(p.numel() for p in trainer.model.parameters()) / 1e6
                trainer.close()
            images_per_second = config.batch_size / seconds
            rows.append({"variant": variant, "backbone": config.backbone, "input": "96x96",
                         "precision": config.precision, "batch": config.batch_size, "parameters_M": parameters,
                         "seconds_per_iteration": seconds, "images_per_second": images_per_second,
                         "images_per_second_best": config.batch_size / best,
                         "preset_iterations": config.iterations,
                         "minutes_for_preset": config.iterations * seconds / 60, "loss": logs["loss"]})
            print(rows[-1], flush=True)
    sets = (f"real {real_folder if args.real_set else 'generated (4038 ids)'}, "
            f"synthetic {synthetic_folder if args.synth else 'generated (500 ids)'}")
    command = f"python -m bench.perf.recognizer --iterations {args.iterations} --variants {args.variants}" + (
        f" --real-set {args.real_set}" if args.real_set else "") + (f" --synth {args.synth}" if args.synth else "")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    notes = (f"Sets: {sets}; {real.labels.size} real images. Half of each batch is synthetic. `paper` variants use "
             "random initialisation (timing does not depend on it). Load average when done: "
             f"{load:.1f} on {os.cpu_count()} cores (other jobs may share the machine). minutes_for_preset = preset "
             "iterations x seconds per iteration, training only; evaluation on LFW View 1 adds MTCNN alignment of "
             "4,992 photos the first time (minutes; later runs read the chip cache) and their embedding.")
    frame = write_record("recognizer", "Recognizer training: images per second", command, rows, notes)
    print(frame.to_markdown(index=False, floatfmt=".2f"))
    return 0


if __name__ == "__main__":
    run_main(main)
