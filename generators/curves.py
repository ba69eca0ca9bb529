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
