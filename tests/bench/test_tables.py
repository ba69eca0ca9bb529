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


# ------------------------------------------------------------------ paired comparisons (issue 19)

def test_paired_comparison_on_hand_made_numbers():
    from bench.tables import paired_comparison

    control = pd.Series([70.0, 71.0, 72.0, 69.5], index=[0, 1, 2, 3])
    differences = np.array([2.0, 2.1, 1.9, 2.05])
    clear = paired_comparison(control + differences, control)
    expected_t = differences.mean() / (differences.std(ddof=1) / 2)  # by hand: mean / (sd / sqrt(4))
    assert clear["pairs"] == 4 and clear["gain"] == pytest.approx(2.0125) and clear["t"] == pytest.approx(expected_t)
    assert clear["p"] < 1e-4 and clear["verdict"].startswith("higher")
    assert paired_comparison(control - differences, control)["verdict"].startswith("lower")
    none = paired_comparison(control + np.array([1.0, -1.0, 0.5, -0.6]), control)
    assert none["p"] > 0.05 and none["verdict"] == f"cannot tell (p = {none['p']:.3f})"
    assert none["gain"] == pytest.approx(-0.025)
    # seeds are matched, not positions: the same numbers under other seeds pair with nothing
    other_seeds = pd.Series((control + differences).to_numpy(), index=[4, 5, 6, 7])
    mismatched = paired_comparison(other_seeds, control)
    assert mismatched["pairs"] == 0 and mismatched["unmatched"] == 8 and mismatched["verdict"].startswith("cannot tell")
    one = paired_comparison(pd.Series([80.0, 81.0], index=[3, 9]), control)
    assert (one["pairs"], one["gain"], one["verdict"]) == (1, 10.5, "cannot tell (1 seed pair)")
    # a large gain on shuffled seeds is not a paired gain: seed 0's treatment pairs with seed 0's control
    shuffled = pd.Series([72.0, 73.0, 74.0, 71.5], index=[3, 2, 1, 0])  # = control + 2 only if paired by position
    assert paired_comparison(shuffled, control)["gain"] == pytest.approx(np.mean([71.5 - 70, 74 - 71, 73 - 72, 72 - 69.5]))


def test_one_small_p_among_many_comparisons_is_not_a_finding():
    """Benjamini-Hochberg by hand: p = (0.035, 0.30, 0.50, 0.70, 0.90) of one preset give q_1 = min over k >= 1 of
    p_k * 5 / k = 0.175, so the p = 0.035 row reads "cannot tell"; p = 0.001 among them stays a finding (q 0.005)."""
    from bench.tables import adjust_for_multiplicity

    def family(first_p):
        gains = pd.DataFrame({"preset": ["cpu"] * 5 + ["paper"], "q (BH)": None,
                              "verdict": ["higher (p = x)"] + ["cannot tell"] * 4 + ["higher (p = y)"]})
        return adjust_for_multiplicity(gains, [first_p, 0.30, 0.50, 0.70, 0.90, 0.035])

    chance = family(0.035)
    assert chance.loc[0, "q (BH)"] == "0.175"
    assert chance.loc[0, "verdict"] == "cannot tell (p = 0.035 alone, q = 0.175 over 5 comparisons)"
    assert chance.loc[4, "q (BH)"] == "0.900"
    assert chance.loc[5, "q (BH)"] == "0.035" and chance.loc[5, "verdict"] == "higher (p = y)"  # its own family of 1
    clear = family(0.001)
    assert clear.loc[0, "q (BH)"] == "0.005" and clear.loc[0, "verdict"] == "higher (p = x)"
    untested = adjust_for_multiplicity(pd.DataFrame({"preset": ["cpu"], "q (BH)": None, "verdict": ["cannot tell"]}),
                                       [float("nan")])
    assert untested.loc[0, "q (BH)"] == "-"


def test_gains_and_fig7_from_runs_labelled_as_the_fixture(tmp_path):
    """GANFaces 2 points above real-only for 3 matched seeds at 20%, level at 100%: the gains table says so, with
    the paper's gain beside it; IJB-A numbers from the LFW fixture are labelled as such; Fig. 7 is drawn."""
    out = tmp_path / "runs"
    out.mkdir()
    for seed, base in enumerate((60.0, 61.0, 59.5)):
        finished_run(out, f"n2{seed}", "cpu", 0.2, "none", seed, base, ijba=(0.30, 0.10))
        finished_run(out, f"g2{seed}", "cpu", 0.2, "ganfaces", seed, base + 2 + 0.1 * seed, ijba=(0.31, 0.10))
        finished_run(out, f"n1{seed}", "cpu", 1.0, "none", seed, 70.0 + seed)
        finished_run(out, f"g1{seed}", "cpu", 1.0, "ganfaces", seed, 70.0 + (-0.5, 0.6, 1.9)[seed])
    for results in out.glob("evaluation-*/results.json"):
        stored = json.loads(results.read_text())
        if "ijba" in stored:
            stored["ijba"]["source"] = "IJB-A format fixture from LFW"
            results.write_text(json.dumps(stored))
    tables = write_tables(out, tmp_path / "tables")
    gains = tables["gains"].set_index(["real", "comparison", "metric"])
    low = gains.loc[("20%", "ganfaces - none", "LFW acc. (%)")]
    assert low["seed pairs"] == 3 and low["gain"] == "2.10 ± 0.10" and low["verdict"].startswith("higher")
    high = gains.loc[("100%", "ganfaces - none", "LFW acc. (%)")]
    assert high["verdict"].startswith("cannot tell") and high["paper's gain"].startswith("+0.5 (Table 1")
    fixture = gains.loc[("20%", "ganfaces - none", "IJB-A format fixture from LFW TAR@0.01")]
    assert fixture["verdict"] == "cannot tell (no spread across seeds to test)"
    assert ("100%", "ganfaces - none", "IJB-A format fixture from LFW TAR@0.01") not in gains.index  # not measured
    assert "IJB-A format fixture from LFW TAR@0.01" in tables["recognition"].columns
    assert "IJB-A TAR@0.01" not in tables["recognition"].columns
    text = (tmp_path / "tables" / "tables.md").read_text()
    assert "not on IJB-A" in text and "fig7.png" in text and (tmp_path / "tables" / "fig7.png").stat().st_size > 0
    # a folder mixing real IJB-A and fixture numbers is refused rather than shown under one label
    finished_run(out, "x0", "cpu", 0.5, "none", 0, 65.0, ijba=(0.5, 0.2))
    with pytest.raises(UserError, match="mix IJB-A evaluations"):
        write_tables(out, tmp_path / "mixed")
