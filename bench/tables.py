"""The paper's tables from finished runs, each beside the paper's own numbers (results/paper/*.csv).

    python -m bench.tables [--runs runs/bench] [--out results/tables]

Reads every finished evaluation stage of `bench.run` under `--runs` (its recognizer's preset, real
share, synthetic set and seed) and writes, as Markdown and CSV:
- `recognition`: the paper's Fig. 7 / Table 1: LFW accuracy and 100% - EER and IJB-A TAR at FAR 0.01 and
  0.001 for each real share with and without a synthetic set, mean +- std over seeds, beside the
  paper's Table 1 numbers where it gives them (VGG 100%, with and without GANFaces);
- `ablation`: supplementary Table 1, the translator without each loss (real share 0.5), beside the paper;
- `roc.png`: the LFW ROC curves of all runs in one plot;
and links the identity-separation figure (`protocols.separation`) in `tables.md`, which names the
machines the runs were computed on (their last digits depend on it: README, "Reproducibility").
The paper trained VGG19 on 1.8M VGG Face images at full scale; runs of the cpu preset train a small
network on 9.5K LFW images, so only the direction of a difference can be compared, not the level.
"""
from __future__ import annotations

import argparse
import json
import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from bench.common.atomic import save_figure, write_text
from bench.common.cli import UserError, add_common_arguments, run_main, setup_logging
from bench.common.datasets import portable_path
from bench.common.machine import describe_machine

PAPER_DIR = Path(__file__).resolve().parents[1] / "results" / "paper"
METRICS = {"lfw_accuracy": "LFW acc. (%)", "lfw_100_minus_eer": "LFW 100%-EER", "ijba_tar_0.01": "IJB-A TAR@0.01",
           "ijba_tar_0.001": "IJB-A TAR@0.001"}
SMOOTHING = 5  # logged points averaged in the training curves
PAPER_RECOGNITION = {(1.0, "none"): "VGG(100%)", (1.0, "ganfaces"): "VGG(100%) + GANFaces"}
PAPER_ABLATION = {"none": "VGG(50%)", "ganfaces": "Ours (VGG(50%)+GANFaces)", "ganfaces-no-lc": "Ours without L_C",
                  "ganfaces-no-ldp": "Ours without L_DP", "ganfaces-no-cyc": "Ours without L_cyc"}


def _stages(runs: Path) -> dict[str, dict]:
    """Finished stages under `runs` by key: stage.json plus the folder."""
    found = {}
    for marker in sorted(Path(runs).glob("*/stage.json")):
        stage = json.loads(marker.read_text())
        found[stage["key"]] = {**stage, "folder": marker.parent}
    return found


def _translator_seed(stages: dict[str, dict], synthetic: str | None) -> int | None:
    """The seed of the translator behind a recognizer's GANFaces (None for no set or raw renders)."""
    translator = stages.get(stages.get(synthetic, {}).get("config", {}).get("translator"), {})
    return translator.get("config", {}).get("seed")


def collect_runs(runs: Path) -> pd.DataFrame:
    """One row per finished evaluation: preset, real share, synthetic set, seed and the metrics."""
    stages = _stages(runs)
    rows = []
    for stage in stages.values():
        if stage["stage"] != "evaluation" or stage["config"]["recognizer"] not in stages:
            continue
        recognizer = stages[stage["config"]["recognizer"]]
        results = json.loads((stage["folder"] / stage["outputs"]["results"]).read_text())
        lfw, ijba = results["lfw"], results.get("ijba", {})
        rows.append({"preset": recognizer["config"]["preset"], "real": float(recognizer["config"]["real"]),
                     "synth": recognizer["config"]["synth"], "seed": int(recognizer["config"]["seed"]),
                     "synth_seed": _translator_seed(stages, recognizer["config"].get("synthetic")),
                     "lfw_accuracy": lfw["accuracy_percent"], "lfw_100_minus_eer": lfw["100-eer_percent"],
                     "ijba_tar_0.01": ijba.get("tar@far=0.01_mean", np.nan),
                     "ijba_tar_0.001": ijba.get("tar@far=0.001_mean", np.nan),
                     "run": str(recognizer["folder"] / recognizer["outputs"]["run"])})
    columns = ["preset", "real", "synth", "seed", "synth_seed", *METRICS, "run"]
    table = pd.DataFrame(rows, columns=columns).astype({"synth_seed": "Int64"})  # empty without GANFaces
    return table.sort_values(["preset", "real", "synth", "seed"], ignore_index=True)


def summary_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean and std over seeds per (preset, real share, synthetic set)."""
    if runs.empty:
        return pd.DataFrame(columns=["preset", "real", "synth", "seeds"])
    grouped = runs.groupby(["preset", "real", "synth"])
    table = grouped.size().rename("seeds").reset_index()
    for metric in METRICS:
        table[f"{metric}_mean"] = grouped[metric].mean().to_numpy()
        table[f"{metric}_std"] = grouped[metric].std(ddof=1).to_numpy()
    return table


def _cell(mean: float, std: float) -> str:
    if np.isnan(mean):
        return "n/a"
    return f"{mean:.2f}" if np.isnan(std) else f"{mean:.2f} ± {std:.2f}"


def recognition_table(summary: pd.DataFrame, paper_dir: Path = PAPER_DIR) -> pd.DataFrame:
    """Fig. 7 / Table 1: ours per real share and synthetic set, the paper's Table 1 where it has the row."""
    paper = pd.read_csv(paper_dir / "lfw_table1.csv").set_index("method")
    rows = []
    for data in summary.to_dict("records"):
        entry = {"preset": data["preset"], "real": f"{data['real']:.0%}", "synthetic": data["synth"],
                 "seeds": data["seeds"]}
        entry.update({label: _cell(data[f"{metric}_mean"], data[f"{metric}_std"]) for metric, label in METRICS.items()})
        method = PAPER_RECOGNITION.get((data["real"], data["synth"]))
        entry["paper: LFW acc. / 100%-EER"] = (f"{paper.loc[method, 'lfw_accuracy']} / {paper.loc[method, 'lfw_100_minus_eer']}"
                                               f" ({method})" if method else "not in the text (Fig. 7 bars)")
        rows.append(entry)
    return pd.DataFrame(rows)


def ablation_table(summary: pd.DataFrame, paper_dir: Path = PAPER_DIR) -> pd.DataFrame:
    """Supplementary Table 1: real share 0.5 with each translator variant, beside the paper's IJB-A numbers."""
    paper = pd.read_csv(paper_dir / "ijba_ablation_supp_table1.csv").set_index("synthetic")
    rows = []
    for synth, method in PAPER_ABLATION.items():
        ours = summary[(summary.real == 0.5) & (summary.synth == synth)]
        for data in ours.to_dict("records") if len(ours) else [{}]:
            entry = {"method": method, "synthetic": synth, "preset": data.get("preset", "-"), "seeds": data.get("seeds", 0)}
            for metric in ("lfw_accuracy", "ijba_tar_0.01", "ijba_tar_0.001"):
                entry[METRICS[metric]] = _cell(data.get(f"{metric}_mean", np.nan), data.get(f"{metric}_std", np.nan))
            reported = paper.loc[synth]
            entry["paper IJB-A TAR@0.01"] = f"{reported['tar_at_far_0.01']:.5f} ± {reported['tar_at_far_0.01_std']:.5f}"
            entry["paper IJB-A TAR@0.001"] = f"{reported['tar_at_far_0.001']:.5f} ± {reported['tar_at_far_0.001_std']:.5f}"
            rows.append(entry)
    return pd.DataFrame(rows)


def plot_all_roc(runs: pd.DataFrame, path: Path) -> bool:
    """LFW ROC curves of every run in one plot (from each run's lfw-view1/scores.npz); False when none."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    from protocols.metrics import roc

    figure, axis = plt.subplots(figsize=(6.4, 5))
    palette = sns.color_palette("tab10", max(1, runs.synth.nunique()))
    colours = dict(zip(sorted(runs.synth.unique()), palette))
    styles = {0.2: ":", 0.5: "--", 1.0: "-"}
    drawn = 0
    for row in runs.itertuples(index=False):
        stored = next(Path(row.run).glob("lfw-*/scores.npz"), None)
        if stored is None:
            continue
        with np.load(stored) as data:
            label = next(k.rsplit("/", 1)[0] for k in data.files)
            far, tar, _ = roc(data[f"{label}/scores"], data[f"{label}/labels"])
        axis.plot(far, tar, styles.get(row.real, "-"), color=colours[row.synth], lw=1.2, alpha=0.8,
                  label=f"{row.preset} real {row.real:.0%} + {row.synth} (seed {row.seed})")
        drawn += 1
    if not drawn:
        plt.close(figure)
        return False
    axis.set_xscale("log")
    axis.set_xlim(1e-3, 1)
    axis.set_xlabel("false accept rate")
    axis.set_ylabel("true accept rate")
    axis.set_title("LFW View 1 ROC of every finished run")
    axis.grid(alpha=0.3, which="both")
    axis.legend(fontsize="x-small", loc="lower right")
    save_figure(figure, path)
    return True


def plot_training_curves(runs: pd.DataFrame, path: Path) -> bool:
    """Each run's real-head cross-entropy and training accuracy against iterations (its metrics.csv)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    logs = []
    for row in runs.itertuples(index=False):
        stored = Path(row.run) / "metrics.csv"
        if stored.exists():
            log = pd.read_csv(stored).drop_duplicates("iteration", keep="last")  # a resumed run repeats rows
            smooth = log[["ce_real", "accuracy_real"]].rolling(SMOOTHING, min_periods=1).mean()  # one batch is noisy
            logs.append(log.assign(**smooth, run=f"real {row.real:.0%} + {row.synth}", seed=row.seed))
    if not logs:
        return False
    curves = pd.concat(logs, ignore_index=True)
    figure, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for axis, column, title in zip(axes, ("ce_real", "accuracy_real"), ("real-head cross-entropy", "real-head batch accuracy")):
        sns.lineplot(curves, x="iteration", y=column, hue="run", units="seed", estimator=None, lw=0.8, alpha=0.8, ax=axis)
        axis.set_title(f"{title}, mean of {SMOOTHING} logs", fontsize="medium")
        axis.grid(alpha=0.3)
    axes[1].get_legend().remove()
    axes[0].legend(fontsize="x-small")
    save_figure(figure, path)
    return True


def _every_run(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs table as shown: no path, no column nobody measured, "-" for no translator seed."""
    shown = runs.drop(columns="run").dropna(axis=1, how="all")
    if "synth_seed" in shown:
        shown["synth_seed"] = shown.synth_seed.astype(object).where(shown.synth_seed.notna(), "-")
    return shown


def _run_machine(run: str) -> dict | None:
    """The machine recorded in a run's LFW metrics.json (None for runs from before machines were recorded)."""
    stored = next(Path(run).glob("lfw-*/metrics.json"), None)
    return json.loads(stored.read_text()).get("machine") if stored else None


def machines_line(runs: pd.DataFrame) -> str:
    """The machines the runs were computed on, the machine of most runs first: the same configuration gives
    other last digits on another CPU, thread count or torch (README, "Reproducibility"), so a table says
    where its numbers come from."""
    counts = Counter(describe_machine(_run_machine(run)) for run in runs.run).most_common()
    return "Machines: " + "; ".join(f"{described} ({count} run{'s' * (count > 1)})" for described, count in counts)


def _recorded(runs: pd.DataFrame, runs_dir: Path) -> pd.DataFrame:
    """The runs table as written: each run's folder relative to the runs folder, so that a committed
    runs.csv names no folder of the machine that made it (the folder itself is named in tables.md)."""
    return runs.assign(run=[Path(run).relative_to(runs_dir).as_posix() for run in runs.run])


def write_tables(runs_dir: Path, out: Path, paper_dir: Path = PAPER_DIR) -> dict[str, pd.DataFrame]:
    runs = collect_runs(runs_dir)
    if runs.empty:
        raise UserError(f"no finished runs under {runs_dir}: run `python -m bench.run` first (or pass --runs)")
    summary = summary_table(runs)
    tables = {"runs": _recorded(runs, runs_dir), "recognition": recognition_table(summary, paper_dir),
              "ablation": ablation_table(summary, paper_dir)}
    out.mkdir(parents=True, exist_ok=True)
    for name, table in tables.items():
        write_text(out / f"{name}.csv", table.to_csv(index=False))
    has_roc = plot_all_roc(runs, out / "roc.png")
    has_curves = plot_training_curves(runs, out / "training.png")
    separation = PAPER_DIR.parent / "separation" / "separation.png"
    sections = ["# Tables of the paper, regenerated\n",
                f"Runs: `{portable_path(runs_dir)}`; {len(runs)} finished evaluations.\n", machines_line(runs) + "\n",
                "## Fig. 7 / Table 1: recognition with and without synthetic faces\n",
                tables["recognition"].to_markdown(index=False, disable_numparse=True),
                "\n## Supplementary Table 1: the translator without each loss (real share 50%)\n",
                tables["ablation"].to_markdown(index=False, disable_numparse=True),
                "\n## Every run\n",
                _every_run(runs).to_markdown(index=False, floatfmt=".2f"),
                "\nn/a: not measured (IJB-A needs `IJB-A_11_sets` in the data root; a missing row has not been run).\n"]
    if has_roc:
        sections.append("\n![ROC curves of all runs](roc.png)\n")
    if has_curves:
        sections.append("\n![training curves of all runs](training.png)\n")
    if separation.exists():
        sections.append(f"\n## Fig. 6: identity separation\n\n![separation]({os.path.relpath(separation, out.resolve())})\n")
    write_text(out / "tables.md", "\n".join(sections))
    return tables


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.tables", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser)
    parser.add_argument("--runs", type=Path, default=Path("runs/bench"), help="the --out folder of bench.run")
    parser.add_argument("--out", type=Path, default=Path("results/tables"))
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    tables = write_tables(args.runs, args.out)
    print(tables["recognition"].to_markdown(index=False, disable_numparse=True))
    print()
    print(tables["ablation"].to_markdown(index=False, disable_numparse=True))
    print(f"\nwritten: {args.out / 'tables.md'}")
    return 0


if __name__ == "__main__":
    run_main(main)
