"""bench.tables on a fixture of finished runs written by the test (stage markers, results, LFW scores)."""
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench.common.cli import UserError
from bench.tables import collect_runs, summary_table, write_tables


def marker(folder, stage, key, config, outputs=None):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "stage.json").write_text(json.dumps({"stage": stage, "key": key, "outputs": outputs or {}, "config": config}))


def finished_run(out, key, preset, real, synth, seed, accuracy, ijba=None, synthetic=None):
    """The folders bench.run leaves for one finished recognizer and its evaluation."""
    recognizer = out / f"recognizer-{key}"
    (recognizer / "run" / "lfw-view1").mkdir(parents=True)
    marker(recognizer, "recognizer", key, {"preset": preset, "real": real, "synth": synth, "seed": seed,
                                           "synthetic": synthetic}, {"run": "run"})
    rng = np.random.default_rng(seed)
    iterations = [10, 20, 20, 30]  # a resumed run logs iteration 20 twice
    pd.DataFrame({"iteration": iterations, "ce_real": [5.0, 4.0, 4.0, 3.0], "accuracy_real": [0.0, 0.1, 0.1, 0.2]}).to_csv(
        recognizer / "run" / "metrics.csv", index=False)
    labels = np.repeat([1, 0], 50)
    np.savez(recognizer / "run" / "lfw-view1" / "scores.npz",
             **{"recognizer/scores": labels + rng.normal(0, 0.7, 100), "recognizer/labels": labels})
    evaluation = out / f"evaluation-e{key}"
    evaluation.mkdir()
    results = {"lfw": {"accuracy_percent": accuracy, "100-eer_percent": accuracy - 1}}
    if ijba:
        results["ijba"] = {"tar@far=0.01_mean": ijba[0], "tar@far=0.001_mean": ijba[1]}
    (evaluation / "results.json").write_text(json.dumps(results))
    (evaluation / "stage.json").write_text(json.dumps({
        "stage": "evaluation", "key": f"e{key}", "outputs": {"results": "results.json"},
        "config": {"recognizer": key, "lfw": "view1"}}))


@pytest.fixture
def runs(tmp_path):
    out = tmp_path / "runs"
    out.mkdir()
    finished_run(out, "a0", "cpu", 1.0, "none", 0, 70.0)
    finished_run(out, "a1", "cpu", 1.0, "none", 1, 72.0)
    finished_run(out, "b0", "cpu", 1.0, "ganfaces", 0, 75.0, ijba=(0.4, 0.1))
    finished_run(out, "c0", "cpu", 0.5, "ganfaces-no-lc", 0, 60.0)
    (out / "recognizer-zz").mkdir()  # an unfinished stage is ignored
    return out


def test_runs_are_collected_and_averaged_over_seeds(runs):
    table = collect_runs(runs)
    assert len(table) == 4 and set(table.synth) == {"none", "ganfaces", "ganfaces-no-lc"}
    summary = summary_table(table).set_index(["real", "synth"])
    assert summary.loc[(1.0, "none"), "seeds"] == 2
    assert summary.loc[(1.0, "none"), "lfw_accuracy_mean"] == 71.0
    assert summary.loc[(1.0, "none"), "lfw_accuracy_std"] == pytest.approx(np.std([70, 72], ddof=1))


def test_the_translator_seed_behind_each_run_is_reported(tmp_path):
    marker(tmp_path / "translator-t0", "translator", "t0", {"seed": 0})
    marker(tmp_path / "ganfaces-g0", "ganfaces", "g0", {"translator": "t0"})
    for seed in (0, 1, 2):
        finished_run(tmp_path, f"r{seed}", "cpu", 1.0, "ganfaces", seed, 70.0 + seed, synthetic="g0")
    finished_run(tmp_path, "n0", "cpu", 1.0, "none", 0, 70.0)
    table = collect_runs(tmp_path).set_index(["synth", "seed"])
    assert table.loc[("ganfaces", 2), "synth_seed"] == 0 and pd.isna(table.loc[("none", 0), "synth_seed"])
    assert summary_table(collect_runs(tmp_path)).set_index("synth").loc["ganfaces", "seeds"] == 3


def test_tables_sit_beside_the_papers_numbers(runs, tmp_path):
    tables = write_tables(runs, tmp_path / "tables")
    recognition = tables["recognition"].set_index("synthetic")
    assert recognition.loc["none", "LFW acc. (%)"] == "71.00 ± 1.41"
    assert recognition.loc["none", "paper: LFW acc. / 100%-EER"] == "94.6 / 94.8 (VGG(100%))"
    assert recognition.loc["ganfaces", "paper: LFW acc. / 100%-EER"] == "95.1 / 94.9 (VGG(100%) + GANFaces)"
    assert recognition.loc["ganfaces", "IJB-A TAR@0.01"] == "0.40" and recognition.loc["none", "IJB-A TAR@0.01"] == "n/a"
    ablation = tables["ablation"].set_index("synthetic")
    assert ablation.loc["ganfaces-no-lc", "LFW acc. (%)"] == "60.00"
    assert ablation.loc["ganfaces-no-lc", "paper IJB-A TAR@0.01"] == "0.50532 ± 0.00433"
    assert ablation.loc["none", "seeds"] == 0  # not run at 50%: the paper's row stays, ours is empty
    assert (tmp_path / "tables" / "roc.png").exists() and "roc.png" in (tmp_path / "tables" / "tables.md").read_text()
    assert pd.read_csv(tmp_path / "tables" / "runs.csv").shape[0] == 4
    assert (tmp_path / "tables" / "training.png").exists() and "training.png" in (tmp_path / "tables" / "tables.md").read_text()


def test_written_tables_name_no_folder_of_this_machine(runs, tmp_path, monkeypatch):
    """Issue 20, item 10: tables.md and runs.csv carried the absolute runs folder of the machine that made them."""
    monkeypatch.chdir(tmp_path)  # the checkout: --runs runs, absolute as a script might pass it
    write_tables(runs.resolve(), Path("tables"))
    recorded = pd.read_csv(tmp_path / "tables" / "runs.csv")
    assert sorted(recorded.run) == ["recognizer-a0/run", "recognizer-a1/run", "recognizer-b0/run", "recognizer-c0/run"]
    text = (tmp_path / "tables" / "tables.md").read_text()
    assert "Runs: `runs`; 4 finished evaluations." in text and str(tmp_path) not in text
    assert "roc.png" in text, "the plots still find each run's scores"
    assert "Machines: not recorded (4 runs)" in text  # the fixture's runs have no LFW metrics.json


def test_tables_name_the_machines_their_runs_were_computed_on(runs, tmp_path):
    host = {"cpu_model": "Example CPU", "cpu_vector_flags": "avx2", "torch": "2.14.1", "torch_threads": 2}
    for key in ("a0", "a1", "b0"):
        (runs / f"recognizer-{key}" / "run" / "lfw-view1" / "metrics.json").write_text(json.dumps({"machine": host}))
    write_tables(runs, tmp_path / "tables")
    text = (tmp_path / "tables" / "tables.md").read_text()
    assert "Machines: Example CPU (avx2), torch 2.14.1, 2 threads (3 runs); not recorded (1 run)" in text


def test_no_finished_runs_is_a_clear_error(tmp_path):
    with pytest.raises(UserError, match="no finished runs"):
        write_tables(tmp_path, tmp_path / "tables")
