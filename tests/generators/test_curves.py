"""The windowed means the README quotes, and the identity-term comparison's command line."""
import pytest

from bench.common.cli import UserError
from generators.curves import main, windowed_means


def write_metrics(folder, rows):
    folder.mkdir(parents=True)
    lines = ["iteration,C,C_chance,C_top1,share_C,k_real"]
    lines += [f"{i},{c},{chance},{top1},{share},{k}" for i, c, chance, top1, share, k in rows]
    (folder / "metrics.csv").write_text("\n".join(lines) + "\n")
    return folder / "metrics.csv"


def test_windowed_means_group_whole_windows_and_measure_l_c_against_chance(tmp_path):
    # diagnostics (share_C) are logged on fewer rows than the losses: their means skip the empty rows
    metrics = write_metrics(tmp_path / "run", [(1, 5.0, 5.5, 0.1, 0.2, 0.0), (2, 4.0, 5.5, 0.3, "", 0.0),
                                               (3, 6.0, 6.0, 0.0, 0.4, 0.1), (4, 7.0, 6.5, 0.0, "", 0.3)])
    means = windowed_means(metrics, every=2)
    assert means.index.tolist() == ["1-2", "3-4"]
    assert means.loc["1-2", "C_below_chance"] == pytest.approx((0.5 + 1.5) / 2)
    assert means.loc["3-4", "C_below_chance"] == pytest.approx((0.0 - 0.5) / 2)
    assert means.loc["1-2", "share_C"] == pytest.approx(0.2) and means.loc["3-4", "k_real"] == pytest.approx(0.2)
    assert "C_margin" not in means  # not logged: not invented


def test_the_command_prints_each_run_and_draws_the_comparison(tmp_path, capsys):
    rows = [(i, 5.0 - 0.01 * i, 5.0, 0.1, 0.2, 0.0) for i in range(1, 41)]
    write_metrics(tmp_path / "a", rows)
    write_metrics(tmp_path / "b", rows)
    assert main(["--run", f"low={tmp_path / 'a'}", "--run", f"high={tmp_path / 'b'}", "--every", "20",
                 "--out", str(tmp_path / "cmp.png")]) == 0
    out = capsys.readouterr().out
    assert "low (" in out and "high (" in out and "| 21-40" in out and (tmp_path / "cmp.png").stat().st_size > 10_000
    with pytest.raises(UserError, match="metrics.csv does not exist"):
        main(["--run", f"x={tmp_path / 'missing'}"])
    with pytest.raises(UserError, match="give NAME=FOLDER"):
        main(["--run", str(tmp_path / "a")])
