"""Pose of real photos vs the 3DMM sampler: the numbers behind the `lfw` pose distribution.

    python -m generators.pose --pairs runs/pairs --out results/pose [--samples 20000]

Reads the yaw, pitch and roll of the 3DMM fits that `generators.pairs` made of real photos
(pairs.csv, fits with status ok), draws as many poses from each named sampler distribution
(`generators.morphable.sampling.POSE_DISTRIBUTIONS`) and writes a table (pose.csv / pose.md:
standard deviation and |angle| quantiles per source) and histograms (pose.png). Why: a translator
trained on renders posed far wider than its real photos spends its capacity on poses the real domain
never shows (issue 16).
"""
from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from bench.common.atomic import atomic_path, write_text
from bench.common.cli import UserError, add_common_arguments, run_main, setup_logging
from generators.morphable.sampling import POSE_DISTRIBUTIONS, sampling_config

ANGLES = ("yaw", "pitch", "roll")


def fitted_poses(pairs: Path) -> pd.DataFrame:
    """Yaw, pitch, roll (degrees) of the kept fits in a `generators.pairs` folder."""
    table = pairs / "pairs.csv"
    if not table.is_file():
        raise UserError(f"{table}: not found (make it with python -m generators.pairs)")
    fits = pd.read_csv(table)
    missing = [c for c in ("status", *ANGLES) if c not in fits]
    if missing:
        raise UserError(f"{table}: no column(s) {', '.join(missing)}")
    fits = fits[fits.status == "ok"]
    if fits.empty:
        raise UserError(f"{table}: no fit with status ok")
    return fits[list(ANGLES)].astype(float)


def sampled_poses(pose: str, count: int, seed: int = 0) -> pd.DataFrame:
    """`count` poses drawn as `sample_image` draws them (yaw: normal or, with its probability, uniform)."""
    config, rng = sampling_config(pose), np.random.default_rng(seed)
    uniform = rng.random(count) < config.yaw_uniform_probability
    yaw = np.where(uniform, rng.uniform(-config.yaw_max_deg, config.yaw_max_deg, count),
                   rng.normal(0, config.yaw_frontal_std_deg, count)).clip(-config.yaw_max_deg, config.yaw_max_deg)
    pitch = rng.normal(0, config.pitch_std_deg, count).clip(-config.pitch_max_deg, config.pitch_max_deg)
    roll = rng.normal(0, config.roll_std_deg, count).clip(-config.roll_max_deg, config.roll_max_deg)
    return pd.DataFrame({"yaw": yaw, "pitch": pitch, "roll": roll})


def summarise(sources: dict[str, pd.DataFrame]) -> pd.DataFrame:
    rows = []
    for name, poses in sources.items():
        for angle in ANGLES:
            magnitude = poses[angle].abs()
            rows.append({"source": name, "angle": angle, "n": len(poses), "std_deg": poses[angle].std(),
                         "abs_median_deg": magnitude.median(), "abs_p90_deg": magnitude.quantile(0.9),
                         "abs_p99_deg": magnitude.quantile(0.99), "abs_max_deg": magnitude.max()})
    return pd.DataFrame(rows)


def plot(sources: dict[str, pd.DataFrame], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 3, figsize=(12, 3.4))
    for axis, angle in zip(axes, ANGLES):
        bins = np.linspace(-80, 80, 65)
        for name, poses in sources.items():
            axis.hist(poses[angle], bins=bins, density=True, histtype="step", linewidth=1.6, label=name)
        axis.set_xlabel(f"{angle} (degrees)")
        axis.set_yticks([])
    axes[0].legend(fontsize=8)
    figure.suptitle("Pose: 3DMM fits of real photos vs the sampler's distributions")
    figure.tight_layout()
    with atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=110, format="png")
    plt.close(figure)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m generators.pose", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser)
    parser.add_argument("--pairs", type=Path, required=True, help="a folder made by generators.pairs")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--samples", type=int, default=20_000, help="poses drawn per sampler distribution")
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    if args.samples < 1:
        raise UserError("--samples must be positive")
    sources = {f"real photos ({args.pairs.name})": fitted_poses(args.pairs)}
    sources |= {f"sampler '{name}'": sampled_poses(name, args.samples) for name in POSE_DISTRIBUTIONS}
    table = summarise(sources)
    args.out.mkdir(parents=True, exist_ok=True)
    with atomic_path(args.out / "pose.csv") as temporary:
        table.to_csv(temporary, index=False, float_format="%.2f")
    text = table.to_markdown(index=False, floatfmt=".1f")
    write_text(args.out / "pose.md", f"# Pose\n\n`python -m generators.pose --pairs {args.pairs} --out {args.out}`\n\n{text}\n")
    plot(sources, args.out / "pose.png")
    print(text)
    return 0


if __name__ == "__main__":
    run_main(main)
