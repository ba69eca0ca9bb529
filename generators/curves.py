"""The translator's training curves from its metrics.csv (one figure, four panels)."""
from __future__ import annotations

from pathlib import Path

from bench.common.atomic import save_figure


def plot_training_curves(metrics_csv: Path, path: Path, gamma: float | None = None) -> None:
    """Loss curves, k balances and BEGAN's convergence measure from metrics.csv (smoothed over 20 rows);
    with `gamma`, the balance panel draws it: a game's k rises only while its L_fake / L_real is below."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    table = pd.read_csv(metrics_csv)
    panels = [("adversarial", ["G", "G_prime", "D_R", "D_S"]), ("reconstruction", ["cyc", "id", "DP"]),
              ("identity L_C (below chance = acting)", ["C", "C_chance"]), ("BEGAN", ["M_global", "k_real", "k_synthetic", "k_pair"]),
              ("L_fake / L_real (k rises below gamma)", ["balance_real", "balance_synthetic", "balance_pair"]),
              ("L_C diagnostics", ["C_margin", "C_warm", "C_top1"]),
              ("gradient on G / adversarial's", ["share_C", "share_cyc", "share_id"])]
    panels = [(title, columns) for title, columns in panels if any(c in table for c in columns)]
    figure, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.6))
    for axis, (title, columns) in zip(axes, panels):
        for column in columns:
            if column in table:  # rows without a value (diagnostics are sparser than the log) are skipped
                values = table[["iteration", column]].dropna()
                axis.plot(values.iteration, values[column].rolling(20, min_periods=1).mean(), label=column)
        if gamma is not None and title.startswith("L_fake"):
            axis.axhline(gamma, color="black", linestyle=":", label=f"gamma {gamma:g}")
        axis.set_title(title)
        axis.set_xlabel("iteration")
        axis.legend(fontsize="small")
        axis.grid(alpha=0.3)
    save_figure(figure, path)


SUMMARY_COLUMNS = ("C", "C_chance", "C_below_chance", "C_top1", "C_margin", "share_C", "k_real", "k_synthetic",
                   "k_pair", "cyc", "DP", "M_global")


def windowed_means(metrics_csv: Path, every: int, columns: tuple[str, ...] = SUMMARY_COLUMNS):
    """Means of the logged diagnostics over windows of `every` iterations (1-250, 251-500, ...), the numbers the
    README's tables quote; `C_below_chance` = chance level - L_C (positive when L_C acts, README)."""
    import pandas as pd

    table = pd.read_csv(metrics_csv)
    if "C" in table and "C_chance" in table:
        table["C_below_chance"] = table.C_chance - table.C
    window = ((table.iteration - 1) // every) * every
    kept = [column for column in columns if column in table]
    means = table.groupby(window)[kept].mean()
    means.index = [f"{start + 1}-{start + every}" for start in means.index]
    means.index.name = "iterations"
    return means


def compare_identity_term(runs: dict[str, Path], path: Path, every: int = 50) -> None:
    """One figure for runs that differ in the identity term (e.g. lambda_C): chance level - L_C, the own
    centroid's top-1 rate and L_C's gradient share over iterations, each run a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("C_below_chance", "chance level - L_C (above 0: L_C acts)"),
              ("C_top1", "own centroid nearest (C_top1)"), ("share_C", "L_C's gradient / adversarial's")]
    figure, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 3.6))
    for name, metrics_csv in runs.items():
        means = windowed_means(metrics_csv, every)
        ends = [int(label.split("-")[1]) for label in means.index]
        for axis, (column, _) in zip(axes, panels):
            if column in means:
                axis.plot(ends, means[column], marker=".", label=name)
    for axis, (column, title) in zip(axes, panels):
        axis.set_title(title, fontsize="medium")
        axis.set_xlabel("iteration")
        axis.axhline(0, color="black", linewidth=0.6)
        axis.grid(alpha=0.3)
        axis.legend(fontsize="small")
    save_figure(figure, path)


def main(argv=None) -> int:
    """`python -m generators.curves --run NAME=RUN_FOLDER ... [--every 250] [--out FIGURE.png]`: the windowed
    means of each run's diagnostics as Markdown, and with --out the identity-term comparison figure."""
    import argparse

    from bench.common.cli import UserError, add_common_arguments, setup_logging

    parser = argparse.ArgumentParser(prog="python -m generators.curves", description=main.__doc__)
    add_common_arguments(parser)
    parser.add_argument("--run", action="append", required=True, metavar="NAME=FOLDER",
                        help="a generators.train output folder (its metrics.csv), named; repeat to compare")
    parser.add_argument("--every", type=int, default=250, help="iterations per window of the means")
    parser.add_argument("--out", type=Path, default=None, help="the comparison figure (.png)")
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    if args.every < 1:
        raise UserError(f"--every must be at least 1, not {args.every}")
    runs = {}
    for spec in args.run:
        name, equals, folder = spec.partition("=")
        metrics_csv = Path(folder) / "metrics.csv"
        if not equals or not name:
            raise UserError(f"--run {spec}: give NAME=FOLDER")
        if not metrics_csv.is_file():
            raise UserError(f"--run {spec}: {metrics_csv} does not exist (not a generators.train output folder)")
        runs[name] = metrics_csv
    for name, metrics_csv in runs.items():
        print(f"\n{name} ({metrics_csv}), means per {args.every} iterations:\n")
        print(windowed_means(metrics_csv, args.every).to_markdown(floatfmt=".3f"))
    if args.out is not None:
        compare_identity_term(runs, args.out, every=max(args.every // 5, 10))
        print(f"\nwritten: {args.out}")
    return 0


if __name__ == "__main__":
    from bench.common.cli import run_main

    run_main(main)
