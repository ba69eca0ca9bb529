"""Two or more groups of recognizer runs side by side: mean ± std over seeds and a paired test against the first.

    python -m bench.compare --group "ImageNet=runs/rec-mnv2-in-s0,runs/rec-mnv2-in-s1,runs/rec-mnv2-in-s2" \\
        --group "scratch=runs/rec-mnv2-scratch-s0,runs/rec-mnv2-scratch-s1,runs/rec-mnv2-scratch-s2" \\
        --out results/recognizer-imagenet/comparison

For a question `bench.run`'s grid does not ask (a backbone, an initialisation, a learning rate): each group is
a set of `recognition.train` run folders that differ only in their seed. Every run's `results.json` (its LFW
evaluation, and IJB-A's when it has one) and `config.json` (the seed) are read; the table gives each group's
mean ± std over its runs, and each later group minus the first as a paired difference over seed-matched runs
with the paired t-test of `bench.tables.paired_comparison` (its verdict: higher/lower only with 2+ pairs and
p <= 0.05, else "cannot tell"). Written as `<out>.md` (with the command), `<out>.csv` (one row per run) and `<out>.png` (each run's real-head
loss and batch accuracy over training, coloured by group).
"""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from bench.common.atomic import write_text
from bench.common.cli import UserError, add_common_arguments, run_main, setup_logging
from bench.common.datasets import portable_command, portable_path
from bench.tables import paired_comparison, plot_training_curves

# results.json entry -> column: what one LFW evaluation of recognition.train reports
LFW_METRICS = {"accuracy_percent": "LFW accuracy (%)", "100-eer_percent": "LFW 100% - EER", "auc": "LFW AUC"}
IJBA_METRICS = {"tar@far=0.01_mean": "IJB-A TAR@0.01", "tar@far=0.001_mean": "IJB-A TAR@0.001"}


def parse_group(spec: str) -> tuple[str, list[Path]]:
    """`NAME=RUN,RUN,...` -> (name, run folders), each a finished recognition.train run."""
    name, equals, folders = spec.partition("=")
    runs = [Path(part.strip()) for part in folders.split(",") if part.strip()]
    if not equals or not name.strip() or not runs:
        raise UserError(f"--group '{spec}': expected NAME=RUN_FOLDER,RUN_FOLDER,...")
    for run in runs:
        if not (run / "results.json").is_file():
            raise UserError(f"--group {name}: {run} has no results.json (not a finished, evaluated recognition.train "
                            "run: evaluate it with python -m recognition.evaluation --run DIR)")
    return name.strip(), runs


def read_run(group: str, run: Path) -> dict:
    """One row: the group, the run's seed and split, and the metrics it reports."""
    results = json.loads((run / "results.json").read_text())
    config = json.loads((run / "config.json").read_text()) if (run / "config.json").is_file() else {}
    lfw, ijba = results.get("lfw", {}), results.get("ijba", {})
    row = {"group": group, "run": portable_path(run), "seed": config.get("seed"), "lfw split": lfw.get("split"),
           "folder": str(run)}
    row.update({label: lfw.get(key) for key, label in LFW_METRICS.items()})
    row.update({label: ijba.get(key) for key, label in IJBA_METRICS.items() if ijba})
    return row


def compare(groups: dict[str, list[Path]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(one row per run, one row per group and metric: mean, std, and the paired difference from the first group)."""
    runs = pd.DataFrame([read_run(name, run) for name, folders in groups.items() for run in folders])
    splits = set(runs["lfw split"].dropna())
    if len(splits) > 1:
        raise UserError(f"the runs were evaluated on different LFW splits ({', '.join(sorted(splits))}): compare "
                        "runs of one protocol")
    for name, rows in runs.groupby("group", sort=False):
        if rows.seed.isna().any() or rows.seed.duplicated().any():
            raise UserError(f"--group {name}: each run needs its own seed (config.json); seeds: {rows.seed.tolist()}")
    metrics = [label for label in (*LFW_METRICS.values(), *IJBA_METRICS.values()) if label in runs]
    first = next(iter(groups))
    summary = []
    for name in groups:
        rows = runs[runs.group == name].set_index("seed")
        for metric in metrics:
            entry = {"group": name, "metric": metric, "runs": int(rows[metric].notna().sum()),
                     "mean": rows[metric].mean(), "std": rows[metric].std(ddof=1)}
            if name != first:
                control = runs[runs.group == first].set_index("seed")[metric]
                test = paired_comparison(rows[metric], control)
                entry.update({f"minus {first}": test["gain"], "pairs": test["pairs"], "p": test["p"],
                              "verdict": test["verdict"]})
            summary.append(entry)
    return runs, pd.DataFrame(summary)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.compare", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser)
    parser.add_argument("--group", action="append", required=True,
                        help="NAME=RUN,RUN,...: recognition.train run folders differing only in seed (2 or more groups)")
    parser.add_argument("--out", type=Path, default=None, help="write <out>.md and <out>.csv")
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    groups = dict(parse_group(spec) for spec in args.group)
    if len(groups) != len(args.group):
        raise UserError("--group: each group needs its own name")
    if len(groups) < 2:
        raise UserError("--group: give at least two groups to compare")
    runs, summary = compare(groups)
    shown = runs.drop(columns="folder")  # the folders name this machine's runs: they only locate the curves
    command = portable_command(["python", "-m", "bench.compare", *(sys.argv[1:] if argv is None else argv)])
    text = (f"# {' vs '.join(groups)}\n\n`{command}`\n\n{summary.to_markdown(index=False, floatfmt='.3f')}\n\n"
            f"Runs:\n\n{shown.to_markdown(index=False, floatfmt='.3f')}\n")
    print(text)
    if args.out is not None:
        write_text(args.out.with_suffix(".md"), text)
        write_text(args.out.with_suffix(".csv"), shown.to_csv(index=False))
        curves = plot_training_curves(runs.assign(run=runs.folder, label=runs.group), args.out.with_suffix(".png"))
        print(f"written: {args.out.with_suffix('.md')}, {args.out.with_suffix('.csv')}"
              + (f", {args.out.with_suffix('.png')}" if curves else ""))
    return 0


if __name__ == "__main__":
    run_main(main)
