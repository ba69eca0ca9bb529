"""The paper's tables from finished runs, each beside the paper's own numbers (results/paper/*.csv).

    python -m bench.tables [--runs runs/bench] [--records results/grid/cpu] [--out results/tables]

Reads every finished evaluation stage of `bench.run` under `--runs` (its recognizer's preset, real
share, synthetic set and seed) and the run records of `bench.grid` in each `--records` folder (the grid spans
machines: README, "The grid"), and writes, as Markdown and CSV:
- `recognition`: the paper's Fig. 7 / Table 1: LFW accuracy and 100% - EER and IJB-A TAR at FAR 0.01 and
  0.001 for each real share with and without a synthetic set, mean +- std over seeds, beside the
  paper's Table 1 numbers where it gives them (VGG 100%, with and without GANFaces);
- `ablation`: supplementary Table 1, the translator without each loss (real share 0.5), beside the paper;
- `gains`: the gain of GANFaces (and of raw renders) over the real-only recognizer per real share, and what
  each loss term adds at 50%, as paired differences over seed-matched runs with a paired t-test
  (`scipy.stats.ttest_rel`) and Benjamini-Hochberg q-values over the preset's comparisons: "cannot tell" when
  p or q > 0.05 or fewer than 2 seed pairs; beside the paper's gains;
- `fig7.png`: the paper's Fig. 7 at this scale: LFW View 1 accuracy (and the IJB-A TAR@FAR=0.01 columns when
  measured) against the real share, without and with GANFaces and with 3DMM renders, mean +- std over seeds;
- `roc.png`: the LFW ROC curves of all runs in one plot;
and links the identity-separation figure (`protocols.separation`) in `tables.md`, which names the
machines the runs were computed on (their last digits depend on it: README, "Reproducibility").
The paper trained VGG19 on 1.8M VGG Face images at full scale; runs of the cpu preset train a small
network on 9.5K LFW images, so only the direction of a difference can be compared, not the level.
Numbers measured on the IJB-A-format fixture built from LFW (`protocols.ijba_fixture`, what `bench.run`'s cpu
preset evaluates on) are labelled "IJB-A format fixture from LFW" in every table and figure: they are not IJB-A.

It is one file because every table and figure it writes comes from the same summary of runs and is
printed beside the same paper numbers; each is one short function.
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
from protocols.ijba_fixture import FIXTURE_LABEL  # results.json's `source` of numbers measured on the fixture

PAPER_DIR = Path(__file__).resolve().parents[1] / "results" / "paper"
METRICS = {"lfw_accuracy": "LFW acc. (%)", "lfw_100_minus_eer": "LFW 100%-EER", "ijba_tar_0.01": "IJB-A TAR@0.01",
           "ijba_tar_0.001": "IJB-A TAR@0.001"}
SMOOTHING = 5  # logged points averaged in the training curves
PAPER_RECOGNITION = {(1.0, "none"): "VGG(100%)", (1.0, "ganfaces"): "VGG(100%) + GANFaces"}
COLUMNS = ["preset", "real", "synth", "seed", "synth_seed", *METRICS, "ijba_source", "machine", "evaluation_key",
           "source", "run"]
ALPHA = 0.05  # the paired test's level: above it the comparison "cannot tell"
# what the paper reports for a comparison (treatment, control, real share) -> metric -> gain, with its source
PAPER_GAINS = {
    ("ganfaces", "none", 1.0): {"lfw_accuracy": (0.5, "Table 1: VGG(100%) 94.6 -> +GANFaces 95.1")},
    ("ganfaces", "none", 0.5): {"ijba_tar_0.01": (0.03756, "supp. Table 1: 0.49751 -> 0.53507 (IJB-A)"),
                                "ijba_tar_0.001": (0.01188, "supp. Table 1: 0.17580 -> 0.18768 (IJB-A)")},
    ("ganfaces", "ganfaces-no-lc", 0.5): {"ijba_tar_0.01": (0.02975, "supp. Table 1: 0.50532 -> 0.53507 (IJB-A)")},
    ("ganfaces", "ganfaces-no-ldp", 0.5): {"ijba_tar_0.01": (0.05473, "supp. Table 1: 0.48034 -> 0.53507 (IJB-A)")},
    ("ganfaces", "ganfaces-no-cyc", 0.5): {"ijba_tar_0.01": (0.03806, "supp. Table 1: 0.49701 -> 0.53507 (IJB-A)")},
}
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


def collect_runs(runs: Path, records: Sequence[Path] | None = None) -> pd.DataFrame:
    """One row per finished evaluation under `runs` and per grid record in `records` (folders of `bench.grid`):
    preset, real share, synthetic set, seeds, the metrics, the machine and where the row was read."""
    stages = _stages(runs)
    rows = []
    for stage in stages.values():
        if stage["stage"] != "evaluation" or stage["config"]["recognizer"] not in stages:
            continue
        recognizer = stages[stage["config"]["recognizer"]]
        results = json.loads((stage["folder"] / stage["outputs"]["results"]).read_text())
        run = recognizer["folder"] / recognizer["outputs"]["run"]
        rows.append(_row(recognizer["config"]["preset"], recognizer["config"]["real"], recognizer["config"]["synth"],
                         recognizer["config"]["seed"], _translator_seed(stages, recognizer["config"].get("synthetic")),
                         results, _run_machine(run), stage["key"], str(run), "here"))
    local = {row["evaluation_key"] for row in rows}
    for key, record in collect_records(records).items():
        if key not in local:  # a run both here and recorded counts once, from here (its folder has the curves)
            rows.append(record)
    table = pd.DataFrame(rows, columns=COLUMNS).astype({"synth_seed": "Int64"})  # empty without GANFaces
    return table.sort_values(["preset", "real", "synth", "seed"], ignore_index=True)


def _row(preset: str, real: float, synth: str, seed: int, synth_seed: int | None, results: dict,
         machine: dict | None, evaluation_key: str, run: str, source: str) -> dict:
    """One run's row: its settings and metrics; `run` its recognizer folder ("" for a record), `source` where
    the numbers were read ("here", or the record's file name)."""
    lfw, ijba = results["lfw"], results.get("ijba", {})
    return {"preset": preset, "real": float(real), "synth": synth, "seed": int(seed), "synth_seed": synth_seed,
            "lfw_accuracy": lfw["accuracy_percent"], "lfw_100_minus_eer": lfw["100-eer_percent"],
            "ijba_tar_0.01": ijba.get("tar@far=0.01_mean", np.nan),
            "ijba_tar_0.001": ijba.get("tar@far=0.001_mean", np.nan),
            # results from before the fixture was labelled in results.json came from a real IJB-A folder
            "ijba_source": ijba.get("source", "IJB-A") if ijba else None,
            "machine": describe_machine(machine), "evaluation_key": evaluation_key, "source": source, "run": run}


def collect_records(records: Sequence[Path] | None) -> dict[str, dict]:
    """Rows of the grid's run records (`bench.grid`, JSON files in each folder), by evaluation key."""
    rows = {}
    for folder in records or ():
        if not Path(folder).is_dir():
            raise UserError(f"--records {folder}: no such folder of grid records")
        for path in sorted(Path(folder).glob("*.json")):
            try:
                record = json.loads(path.read_text())
                rows[record["keys"]["evaluation"]] = _row(
                    record["preset"], record["real"], record["synth"], record["seed"],
                    record["synth_seed"] if record["synth"].startswith("ganfaces") else None, record["results"],
                    record.get("machine"), record["keys"]["evaluation"], "", path.name)
            except (json.JSONDecodeError, KeyError, TypeError) as error:
                raise UserError(f"{path}: not a grid record ({type(error).__name__}: {error})") from None
    return rows


def ijba_name(runs: pd.DataFrame) -> str:
    """What the IJB-A columns measured: "IJB-A", or the fixture's label; one runs folder holds one of them."""
    sources = set(runs.get("ijba_source", pd.Series(dtype=object)).dropna())
    if len(sources) > 1:
        raise UserError(f"the runs mix IJB-A evaluations of different sources ({', '.join(sorted(sources))}): "
                        "keep each in its own runs folder")
    return sources.pop() if sources else "IJB-A"


def metric_labels(ijba: str = "IJB-A") -> dict[str, str]:
    """Column labels; the IJB-A ones name the fixture when the numbers come from it."""
    return {metric: label.replace("IJB-A", ijba) if metric.startswith("ijba") else label
            for metric, label in METRICS.items()}


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


def _cell(mean: float, std: float, digits: int = 2) -> str:
    if np.isnan(mean):
        return "n/a"
    return f"{mean:.{digits}f}" if np.isnan(std) else f"{mean:.{digits}f} ± {std:.{digits}f}"


def recognition_table(summary: pd.DataFrame, paper_dir: Path = PAPER_DIR, ijba: str = "IJB-A") -> pd.DataFrame:
    """Fig. 7 / Table 1: ours per real share and synthetic set, the paper's Table 1 where it has the row."""
    paper = pd.read_csv(paper_dir / "lfw_table1.csv").set_index("method")
    rows = []
    for data in summary.to_dict("records"):
        entry = {"preset": data["preset"], "real": f"{data['real']:.0%}", "synthetic": data["synth"],
                 "seeds": data["seeds"]}
        entry.update({label: _cell(data[f"{metric}_mean"], data[f"{metric}_std"])
                      for metric, label in metric_labels(ijba).items()})
        method = PAPER_RECOGNITION.get((data["real"], data["synth"]))
        entry["paper: LFW acc. / 100%-EER"] = (f"{paper.loc[method, 'lfw_accuracy']} / {paper.loc[method, 'lfw_100_minus_eer']}"
                                               f" ({method})" if method else "not in the text (Fig. 7 bars)")
        rows.append(entry)
    return pd.DataFrame(rows)


def ablation_table(summary: pd.DataFrame, paper_dir: Path = PAPER_DIR, ijba: str = "IJB-A") -> pd.DataFrame:
    """Supplementary Table 1: real share 0.5 with each translator variant, beside the paper's IJB-A numbers."""
    paper = pd.read_csv(paper_dir / "ijba_ablation_supp_table1.csv").set_index("synthetic")
    rows = []
    for synth, method in PAPER_ABLATION.items():
        ours = summary[(summary.real == 0.5) & (summary.synth == synth)]
        for data in ours.to_dict("records") if len(ours) else [{}]:
            entry = {"method": method, "synthetic": synth, "preset": data.get("preset", "-"), "seeds": data.get("seeds", 0)}
            for metric in ("lfw_accuracy", "ijba_tar_0.01", "ijba_tar_0.001"):
                entry[metric_labels(ijba)[metric]] = _cell(data.get(f"{metric}_mean", np.nan), data.get(f"{metric}_std", np.nan))
            reported = paper.loc[synth]
            entry["paper IJB-A TAR@0.01"] = f"{reported['tar_at_far_0.01']:.5f} ± {reported['tar_at_far_0.01_std']:.5f}"
            entry["paper IJB-A TAR@0.001"] = f"{reported['tar_at_far_0.001']:.5f} ± {reported['tar_at_far_0.001_std']:.5f}"
            rows.append(entry)
    return pd.DataFrame(rows)


# ------------------------------------------------------------------ paired comparisons across seeds

def paired_comparison(treatment: pd.Series, control: pd.Series, alpha: float = ALPHA) -> dict:
    """Treatment minus control over the seeds both have (each Series: metric by recognizer seed), tested with a
    paired t-test (scipy.stats.ttest_rel). The verdict is "higher" or "lower" only with 2+ pairs and p <= alpha,
    else "cannot tell" and why; seeds present on one side only are left out and counted."""
    from scipy.stats import ttest_rel

    treatment, control = treatment.dropna(), control.dropna()
    seeds = sorted(set(treatment.index) & set(control.index))
    unmatched = len(set(treatment.index) ^ set(control.index))
    result = {"pairs": len(seeds), "unmatched": unmatched, "gain": np.nan, "gain_std": np.nan, "t": np.nan,
              "p": np.nan, "seeds": ",".join(map(str, seeds))}
    if not seeds:
        return {**result, "verdict": "cannot tell (no seed-matched pair)"}
    differences = treatment[seeds].to_numpy(float) - control[seeds].to_numpy(float)
    result["gain"] = float(differences.mean())
    if len(seeds) < 2:
        return {**result, "verdict": "cannot tell (1 seed pair)"}
    result["gain_std"] = float(differences.std(ddof=1))
    if result["gain_std"] == 0:  # no spread: the t statistic is undefined, the sign is all there is
        return {**result, "verdict": "cannot tell (identical differences, no spread to test)" if result["gain"] == 0
                else "cannot tell (no spread across seeds to test)"}
    test = ttest_rel(treatment[seeds].to_numpy(float), control[seeds].to_numpy(float))
    result["t"], result["p"] = float(test.statistic), float(test.pvalue)
    if not result["p"] <= alpha:
        return {**result, "verdict": f"cannot tell (p = {result['p']:.3f})"}
    return {**result, "verdict": f"{'higher' if result['gain'] > 0 else 'lower'} (p = {result['p']:.3f})"}


def comparisons(runs: pd.DataFrame) -> list[tuple[str, str, float]]:
    """(treatment, control, real share) pairs the gains table reports: GANFaces and renders against real only
    at each share, and at 50% the full translator against each ablation (what each loss term adds)."""
    wanted = [(synth, "none", real) for synth in ("ganfaces", "3dmm") for real in sorted(runs.real.unique())]
    wanted += [("ganfaces", ablation, 0.5) for ablation in ("ganfaces-no-lc", "ganfaces-no-ldp", "ganfaces-no-cyc")]
    present = set(zip(runs.synth, runs.real))
    return [(t, c, r) for t, c, r in wanted if (t, r) in present or (c, r) in present]


def gains_table(runs: pd.DataFrame, metrics: Sequence[str] = ("lfw_accuracy", "ijba_tar_0.01")) -> pd.DataFrame:
    """Per preset, comparison and metric: the mean paired gain +- std over seed-matched runs, the test's verdict,
    and the paper's gain for the same comparison where it gives one."""
    labels = metric_labels(ijba_name(runs))
    rows, p_values = [], []
    for preset, ours in runs.groupby("preset"):
        for treatment, control, real in comparisons(ours):
            for metric in metrics:
                by_seed = {synth: ours[(ours.real == real) & (ours.synth == synth)].groupby("seed")[metric].mean()
                           for synth in (treatment, control)}
                if by_seed[treatment].isna().all() and by_seed[control].isna().all():
                    continue  # not measured (IJB-A columns without a protocol folder)
                result = paired_comparison(by_seed[treatment], by_seed[control])
                paper = PAPER_GAINS.get((treatment, control, real), {}).get(metric)
                rows.append({"preset": preset, "real": f"{real:.0%}", "comparison": f"{treatment} - {control}",
                             "metric": labels[metric], "seed pairs": result["pairs"],
                             "gain": _cell(result["gain"], result["gain_std"], 4 if metric.startswith("ijba") else 2),
                             "p (paired t)": "-" if np.isnan(result["p"]) else f"{result['p']:.3f}",
                             "q (BH)": None, "verdict": result["verdict"],
                             "paper's gain": f"{paper[0]:+g} ({paper[1]})" if paper else "not in the text"})
                p_values.append(result["p"])
    table = pd.DataFrame(rows, columns=["preset", "real", "comparison", "metric", "seed pairs", "gain", "p (paired t)",
                                        "q (BH)", "verdict", "paper's gain"])
    return adjust_for_multiplicity(table, p_values)


def adjust_for_multiplicity(gains: pd.DataFrame, p_values: Sequence[float], alpha: float = ALPHA) -> pd.DataFrame:
    """Benjamini-Hochberg q-values over each preset's tested comparisons (`scipy.stats.false_discovery_control`).

    Why: a grid reports many paired tests at once (18 for the cpu grid), so one p below 0.05 among them is what
    chance alone gives about once. A "higher"/"lower" verdict stays only where q <= alpha too; a comparison whose
    p alone passes says so ("p = 0.035 alone, q = 0.609 over 18 comparisons") and reads "cannot tell"."""
    from scipy.stats import false_discovery_control

    gains = gains.copy()
    p_values = pd.Series(list(p_values), index=gains.index, dtype=float)
    for _, family in gains.groupby("preset"):
        tested = p_values[family.index].dropna()
        if tested.empty:
            continue
        q_values = pd.Series(false_discovery_control(tested.to_numpy(), method="bh"), index=tested.index)
        for row, q in q_values.items():
            gains.loc[row, "q (BH)"] = f"{q:.3f}"
            if p_values[row] <= alpha < q:
                gains.loc[row, "verdict"] = (f"cannot tell (p = {p_values[row]:.3f} alone, q = {q:.3f} over "
                                             f"{len(tested)} comparisons)")
    return gains.fillna({"q (BH)": "-"})


def plot_fig7(summary: pd.DataFrame, path: Path, ijba: str = "IJB-A") -> bool:
    """The paper's Fig. 7 at this scale: each metric measured against the real share, one line per synthetic
    set (none, 3DMM renders, GANFaces), mean +- std over seeds as error bars; False when nothing to draw."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = summary[summary.synth.isin(FIG7_SETS)]
    metrics = [m for m in ("lfw_accuracy", "ijba_tar_0.01") if shown[f"{m}_mean"].notna().any()]
    if shown.empty or not metrics:
        return False
    labels = metric_labels(ijba)
    figure, axes = plt.subplots(1, len(metrics), figsize=(5.2 * len(metrics), 4), squeeze=False)
    for axis, metric in zip(axes[0], metrics):
        for (preset, synth), group in shown.groupby(["preset", "synth"]):
            group = group.sort_values("real")
            offset = (list(FIG7_SETS).index(synth) - 1) * 1.5  # side by side, so the error bars do not hide each other
            axis.errorbar(group.real * 100 + offset, group[f"{metric}_mean"], yerr=group[f"{metric}_std"].fillna(0),
                          marker="o", capsize=4, color=FIG7_SETS[synth][1],
                          label=f"{FIG7_SETS[synth][0]} ({preset}, seeds: {'/'.join(map(str, group.seeds))})")
        axis.set_xticks([20, 50, 100])
        axis.set_xlabel("real training data (% of the real set)")
        axis.set_ylabel(labels[metric])
        axis.grid(alpha=0.3)
        axis.legend(fontsize="x-small")
    figure.suptitle("Fig. 7 at CPU scale: mean ± std over recognizer seeds", fontsize="medium")
    save_figure(figure, path)
    return True


FIG7_SETS = {"none": ("real only", "tab:gray"), "3dmm": ("+ 3DMM renders", "tab:blue"),
             "ganfaces": ("+ GANFaces", "tab:red")}


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
    for row in runs[runs.run != ""].itertuples(index=False):  # records keep no scores
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
    """Each run's real-head cross-entropy and training accuracy against iterations (its metrics.csv); a curve per
    run, coloured by its setting (or by `label` when the table has that column)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    logs = []
    for row in runs[runs.run != ""].itertuples(index=False):  # records keep no training log
        stored = Path(row.run) / "metrics.csv"
        if stored.exists():
            log = pd.read_csv(stored).drop_duplicates("iteration", keep="last")  # a resumed run repeats rows
            smooth = log[["ce_real", "accuracy_real"]].rolling(SMOOTHING, min_periods=1).mean()  # one batch is noisy
            label = getattr(row, "label", None) or f"real {row.real:.0%} + {row.synth}"  # bench.compare: its group
            logs.append(log.assign(**smooth, run=label, seed=row.seed))
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
    shown = runs.drop(columns=["run", "machine", "evaluation_key"]).dropna(axis=1, how="all")
    if "synth_seed" in shown:
        shown["synth_seed"] = shown.synth_seed.astype(object).where(shown.synth_seed.notna(), "-")
    return shown


def _run_machine(run: Path) -> dict | None:
    """The machine recorded in a run's LFW metrics.json (None for runs from before machines were recorded)."""
    stored = next(Path(run).glob("lfw-*/metrics.json"), None)
    return json.loads(stored.read_text()).get("machine") if stored else None


def machines_line(runs: pd.DataFrame) -> str:
    """The machines the runs were computed on, the machine of most runs first: the same configuration gives
    other last digits on another CPU, thread count or torch (README, "Reproducibility"), so a table says
    where its numbers come from."""
    counts = Counter(runs.machine).most_common()
    return "Machines: " + "; ".join(f"{described} ({count} run{'s' * (count > 1)})" for described, count in counts)


def _recorded(runs: pd.DataFrame, runs_dir: Path) -> pd.DataFrame:
    """The runs table as written: each run's folder relative to the runs folder, so that a committed
    runs.csv names no folder of the machine that made it (the folder itself is named in tables.md)."""
    return runs.assign(run=[Path(run).relative_to(runs_dir).as_posix() if run else "" for run in runs.run])


def write_tables(runs_dir: Path, out: Path, paper_dir: Path = PAPER_DIR,
                 records: Sequence[Path] | None = None) -> dict[str, pd.DataFrame]:
    runs = collect_runs(runs_dir, records)
    if runs.empty:
        raise UserError(f"no finished runs under {runs_dir}" + (f" nor records in {', '.join(map(str, records))}"
                                                                 if records else "")
                        + ": run `python -m bench.run` first (or pass --runs / --records)")
    summary = summary_table(runs)
    ijba = ijba_name(runs)
    tables = {"runs": _recorded(runs, runs_dir), "recognition": recognition_table(summary, paper_dir, ijba),
              "ablation": ablation_table(summary, paper_dir, ijba), "gains": gains_table(runs)}
    out.mkdir(parents=True, exist_ok=True)
    for name, table in tables.items():
        write_text(out / f"{name}.csv", table.to_csv(index=False))
    has_fig7 = plot_fig7(summary, out / "fig7.png", ijba)
    has_roc = plot_all_roc(runs, out / "roc.png")
    has_curves = plot_training_curves(runs, out / "training.png")
    separation = PAPER_DIR.parent / "separation" / "separation.png"
    fixture_note = ([f"IJB-A columns: measured on the {FIXTURE_LABEL} (LFW View 1 test people pasted onto canvases "
                     "in IJB-A's 1:1 format, `protocols.ijba_fixture --people devtest`), not on IJB-A; the paper's "
                     "columns are IJB-A.\n"] if ijba == FIXTURE_LABEL else [])
    sections = ["# Tables of the paper, regenerated\n",
                f"Runs: `{portable_path(runs_dir)}`"
                + "".join(f", records `{portable_path(Path(folder))}`" for folder in records or ())
                + f"; {len(runs)} finished evaluations"
                + (f" ({(runs.source != 'here').sum()} from records)" if records else "") + ".\n",
                machines_line(runs) + "\n",
                *fixture_note,
                "## Fig. 7 / Table 1: recognition with and without synthetic faces\n",
                tables["recognition"].to_markdown(index=False, disable_numparse=True),
                *(["\n![Fig. 7 at this scale](fig7.png)\n"] if has_fig7 else []),
                "\n## Supplementary Table 1: the translator without each loss (real share 50%)\n",
                tables["ablation"].to_markdown(index=False, disable_numparse=True),
                "\n## Gains across seeds: paired differences, paired t-test\n",
                "Treatment minus control over seed-matched runs (mean ± std of the differences); the verdict says "
                f"higher/lower only with 2+ seed pairs and both p and the Benjamini-Hochberg q over the preset's "
                f"comparisons <= {ALPHA}, else \"cannot tell\". The paper's gains are "
                "at VGG Face scale (IJB-A itself for its TAR columns).\n",
                tables["gains"].to_markdown(index=False, disable_numparse=True) if len(tables["gains"]) else "(no comparison)",
                "\n## Every run\n",
                _every_run(runs).to_markdown(index=False, floatfmt=".2f"),
                "\nn/a: not measured (IJB-A needs `IJB-A_11_sets` in the data root, or bench.run's IJB-A-format "
                "fixture; a missing row has not been run).\n"]
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
    parser.add_argument("--records", type=Path, action="append", default=None,
                        help="a folder of grid records (bench.grid, e.g. results/grid/cpu), repeatable: their runs "
                             "join those under --runs (a run in both counts once)")
    parser.add_argument("--out", type=Path, default=Path("results/tables"))
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    tables = write_tables(args.runs, args.out, records=args.records)
    print(tables["recognition"].to_markdown(index=False, disable_numparse=True))
    print()
    print(tables["ablation"].to_markdown(index=False, disable_numparse=True))
    if len(tables["gains"]):
        print()
        print(tables["gains"].to_markdown(index=False, disable_numparse=True))
    print(f"\nwritten: {args.out / 'tables.md'}")
    return 0


if __name__ == "__main__":
    run_main(main)
