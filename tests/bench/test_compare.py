"""bench.compare on run folders the test writes (results.json and config.json as recognition.train leaves them)."""
import json

import pytest

from bench.common.cli import UserError
from bench.compare import compare, main


def write_run(folder, seed, accuracy, split="view1"):
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"seed": seed}))
    (folder / "results.json").write_text(json.dumps({"lfw": {"split": split, "accuracy_percent": accuracy,
                                                             "100-eer_percent": accuracy + 1, "auc": accuracy / 100}}))
    return folder


def test_groups_are_summarised_and_tested_seed_by_seed(tmp_path):
    """Treatment = control + 10 +- 1 on every seed: a clear gain; seed order inside a group does not matter."""
    control = [write_run(tmp_path / f"c{s}", s, a) for s, a in [(0, 67.0), (1, 68.0), (2, 66.0)]]
    treatment = [write_run(tmp_path / f"t{s}", s, a) for s, a in [(2, 76.0), (0, 78.0), (1, 77.5)]]
    runs, summary = compare({"scratch": control, "ImageNet": treatment})
    assert len(runs) == 6
    row = summary[(summary.group == "ImageNet") & (summary.metric == "LFW accuracy (%)")].iloc[0]
    assert row["mean"] == pytest.approx(77.1667, abs=1e-3) and row["pairs"] == 3
    assert row["minus scratch"] == pytest.approx(10.1667, abs=1e-3)
    assert row["verdict"].startswith("higher (p = ")
    base = summary[(summary.group == "scratch") & (summary.metric == "LFW accuracy (%)")].iloc[0]
    assert base["mean"] == pytest.approx(67.0) and base["std"] == pytest.approx(1.0)


def test_the_cli_writes_markdown_and_csv_and_refuses_bad_groups(tmp_path, capsys):
    a = [write_run(tmp_path / f"a{s}", s, 60.0 + s) for s in range(2)]
    b = [write_run(tmp_path / f"b{s}", s, 60.5 + s) for s in range(2)]
    out = tmp_path / "report" / "cmp"
    assert main(["--group", f"A={a[0]},{a[1]}", "--group", f"B={b[0]},{b[1]}", "--out", str(out)]) == 0
    assert "cannot tell" in out.with_suffix(".md").read_text() and out.with_suffix(".csv").is_file()
    with pytest.raises(UserError, match="no results.json"):
        main(["--group", f"A={tmp_path}", "--group", f"B={b[0]}"])
    with pytest.raises(UserError, match="expected NAME=RUN"):
        main(["--group", "A", "--group", f"B={b[0]}"])
    with pytest.raises(UserError, match="at least two groups"):
        main(["--group", f"A={a[0]}"])
    other = write_run(tmp_path / "ten-fold", 0, 70.0, split="10fold")
    with pytest.raises(UserError, match="different LFW splits"):
        main(["--group", f"A={a[0]}", "--group", f"B={other}"])
