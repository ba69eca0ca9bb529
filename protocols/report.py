"""What every evaluation leaves behind: metrics.json, CSV and Markdown tables, a ROC curve and a score histogram."""
from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from bench.common.atomic import atomic_path, save_figure, write_json, write_text  # noqa: E402
from bench.common.datasets import portable_path  # noqa: E402
from bench.common.machine import machine  # noqa: E402
from protocols.metrics import roc  # noqa: E402

Curves = Mapping[str, tuple[np.ndarray, np.ndarray]]  # label -> (scores, labels)


def portable_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """The configuration as recorded: every path (a Path, or a string holding an absolute path) as
    `portable_path` writes it, so that a committed metrics.json names no folder of the machine that made it."""
    def recorded(value: Any) -> Any:
        if isinstance(value, os.PathLike) or (isinstance(value, str) and os.path.isabs(value)):
            return portable_path(value)
        return value

    return {key: recorded(value) for key, value in config.items()}


def stored_metrics(out_dir: Path, wanted: Mapping[str, Any]) -> dict[str, Any] | None:
    """The metrics.json stored in `out_dir` when its configuration holds every `wanted` key with that value
    (the same data by content, embedder and options), else None: the evaluation is then to be run again."""
    path = Path(out_dir) / "metrics.json"
    if not path.is_file():
        return None
    try:
        previous = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):  # a damaged record is recomputed, not trusted
        return None
    config = previous.get("config", {}) if isinstance(previous, dict) else {}
    if not isinstance(config, dict) or not all(config.get(key) == value for key, value in wanted.items()):
        return None
    return previous


def summary_frame(summary: Mapping[str, Any]) -> pd.DataFrame:
    """Long table metric | value of the scalar entries of a summary."""
    rows = [{"metric": key, "value": value} for key, value in summary.items()
            if value is None or isinstance(value, (int, float))]
    return pd.DataFrame(rows, dtype=object)  # object keeps counts as integers beside float figures


def _format(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, (float, np.floating)):
        return "n/a" if math.isnan(value) else f"{value:.4f}"
    return str(value)


def markdown_table(frame: pd.DataFrame) -> str:
    return frame.map(_format).to_markdown(index=False)


def plot_roc(curves: Curves, path: Path, title: str) -> None:
    """ROC with FAR on a log axis, one line per curve (the usual picture for TAR@FAR figures)."""
    figure, axis = plt.subplots(figsize=(5.5, 4.5))
    for label, (scores, labels) in curves.items():
        fpr, tpr, _ = roc(scores, labels)
        keep = fpr > 0
        axis.plot(fpr[keep], tpr[keep], label=label)
    axis.set_xscale("log")
    axis.set_xlim(1e-4, 1)
    axis.set_ylim(0, 1.01)
    axis.set_xlabel("false accept rate")
    axis.set_ylabel("true accept rate")
    axis.grid(True, which="both", alpha=0.3)
    axis.set_title(title)
    axis.legend(loc="lower right", fontsize="small")
    save_figure(figure, path, dpi=120)


def plot_score_histogram(scores: np.ndarray, labels: np.ndarray, path: Path, title: str,
                         threshold: float | None = None) -> None:
    """Genuine vs impostor score distributions, with the chosen threshold when there is one."""
    frame = pd.DataFrame({"score": scores, "pair": np.where(np.asarray(labels) == 1, "genuine", "impostor")})
    figure, axis = plt.subplots(figsize=(5.5, 4))
    sns.histplot(frame, x="score", hue="pair", bins=60, stat="density", common_norm=False, element="step", ax=axis)
    if threshold is not None:
        axis.axvline(threshold, color="black", linestyle="--", linewidth=1, label="threshold")
    axis.set_title(title)
    save_figure(figure, path, dpi=120)


def write_report(out_dir: Path, title: str, summary: Mapping[str, Any], config: Mapping[str, Any],
                 tables: Mapping[str, pd.DataFrame], curves: Curves,
                 threshold: float | None = None) -> Path:
    """Write metrics.json (with the configuration's paths made portable and the machine that computed the
    metrics), metrics.csv, <table>.csv, metrics.md, roc.png, scores.png and scores.npz (each curve's
    scores and labels, so that ROC curves of many runs can be drawn together later) into `out_dir`."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(out_dir / "metrics.json", {"title": title, "config": portable_config(config), "metrics": dict(summary),
                                           "machine": machine()})  # the last bits of a metric depend on it
    summary_table = summary_frame(summary)
    write_text(out_dir / "metrics.csv", summary_table.to_csv(index=False))
    sections = [f"# {title}\n", markdown_table(summary_table)]
    for name, frame in tables.items():
        write_text(out_dir / f"{name}.csv", frame.to_csv(index=False))
        sections += [f"\n## {name}\n", markdown_table(frame)]
    sections.append("\n![ROC](roc.png) ![scores](scores.png)\n")
    write_text(out_dir / "metrics.md", "\n".join(sections) + "\n")
    plot_roc(curves, out_dir / "roc.png", title)
    with atomic_path(out_dir / "scores.npz") as temporary:
        np.savez(temporary, **{f"{label}/{kind}": array for label, (scores, labels) in curves.items()
                               for kind, array in (("scores", scores), ("labels", labels))})
    all_scores = np.concatenate([s for s, _ in curves.values()])
    all_labels = np.concatenate([l for _, l in curves.values()])
    plot_score_histogram(all_scores, all_labels, out_dir / "scores.png", title, threshold)
    return out_dir
