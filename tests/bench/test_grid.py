"""bench.grid: issue 19's grid of bench.run runs, its budget, and the records that let it span machines (stage
bodies replaced by recorders that write what the real stages write)."""
import json

import pytest

from bench.common.cli import UserError
from bench.grid import GridRun, grid_runs, grid_table, plan_grid, recorded_keys, run_grid
from bench.run import main
from bench.tables import collect_runs, write_tables


def test_the_grid_plans_every_run_with_one_translator_per_variant(tmp_path):
    """Issue 19's grid: 3 fractions x {none, 3dmm, ganfaces} and the three ablations at 0.5, for each seed; the
    recognizer seeds share one translator (and its GANFaces) per synthetic variant, whatever the seeds."""
    for seeds in ((0, 1, 2), (3, 7)):
        planned = plan_grid("cpu", tmp_path, seeds=seeds)
        assert len(planned) == (9 + 3) * len(seeds)
        runs = [run for run, _ in planned]
        assert len(set(runs)) == len(runs) and {run.seed for run in runs} == set(seeds)
        assert sorted({run.synth for run in runs if run.real != 0.5}) == ["3dmm", "ganfaces", "none"]
        assert {run.real for run in runs if "-no-" in run.synth} == {0.5}
        by_variant = {}
        for run, stages in planned:
            for stage in stages:
                if stage.name in ("translator", "ganfaces"):
                    by_variant.setdefault((run.synth, stage.name), set()).add(stage.folder)
        assert set(by_variant) == {(synth, name) for synth in ("ganfaces", "ganfaces-no-lc", "ganfaces-no-ldp",
                                                                "ganfaces-no-cyc") for name in ("translator", "ganfaces")}
        assert all(len(folders) == 1 for folders in by_variant.values())
        recognizers = {stage.folder for _, stages in planned for stage in stages if stage.name == "recognizer"}
        assert len(recognizers) == len(planned)  # every run trains its own recognizer
        fixtures = {stage.folder for _, stages in planned for stage in stages if stage.name == "fixture"}
        assert len(fixtures) == 1  # one IJB-A-format fixture for every run
    # a different translator seed is another translator
    other = plan_grid("cpu", tmp_path, seeds=(0,), synth_seed=1)
    assert {s.folder for _, st in other for s in st if s.name == "translator"}.isdisjoint(
        {s.folder for _, st in plan_grid("cpu", tmp_path, seeds=(0,)) for s in st if s.name == "translator"})
    assert grid_runs((0,))[:2] == [GridRun(0.2, "none", 0), GridRun(0.2, "ganfaces", 0)]  # the paper's claim first


def test_the_grid_counts_shared_stages_once_and_cuts_at_the_budget(tmp_path):
    seconds = {"real_faces": 1, "fixture": 1, "pairs": 1, "translator": 100, "ganfaces": 10, "renders": 5,
               "recognizer": 20, "evaluation": 2, "evaluation_first": 7}
    planned = plan_grid("cpu", tmp_path, seeds=(0, 1))
    table = grid_table(planned, seconds, hours=0)
    # 24 recognizers + evaluations, 4 translators + GANFaces, one renders, real faces, fixture, pairs
    assert table.seconds.sum() == 24 * 20 + 23 * 2 + 7 + 4 * 110 + 5 + 1 + 1 + 1
    assert table.seconds.iloc[0] == 1 + 1 + 20 + 7 and table.seconds.iloc[1] == 1 + 110 + 20 + 2
    assert table["in budget"].all()
    budget = grid_table(planned, seconds, hours=200 / 3600)
    assert budget["in budget"].tolist() == [True, True, True] + [False] * 21  # 29 + 133 + 22 <= 200 < 206
    # finished stages cost nothing: the first run done, the next plan starts after it
    for stage in planned[0][1]:
        stage.folder.mkdir(parents=True)
        (stage.folder / "stage.json").write_text("{}")
    again = grid_table(plan_grid("cpu", tmp_path, seeds=(0, 1)), seconds, hours=0)
    assert again.status.iloc[0] == "cached" and again.seconds.iloc[0] == 0
    assert again.seconds.iloc[1] == 1 + 110 + 20 + 2  # chips cached by the finished evaluation: no first pass
    assert again.status.iloc[1] == "to do"
    translator = next(s for s in plan_grid("cpu", tmp_path, seeds=(0,))[1][1] if s.name == "translator")
    translator.folder.mkdir(parents=True)  # a killed translator: its run resumes
    assert grid_table(plan_grid("cpu", tmp_path, seeds=(0, 1)), seconds, hours=0).status.tolist()[:3] == [
        "cached", "resume", "to do"]
    # a cached run past the budget is still taken: it costs nothing, and the grid records it
    late = plan_grid("cpu", tmp_path, seeds=(0, 1))[10][1]
    for stage in late:
        stage.folder.mkdir(parents=True, exist_ok=True)
        (stage.folder / "stage.json").write_text("{}")
    cut = grid_table(plan_grid("cpu", tmp_path, seeds=(0, 1)), seconds, hours=200 / 3600)
    assert cut.status.iloc[10] == "cached" and cut["in budget"].iloc[10] and not cut["in budget"].iloc[9]


def test_grid_plan_prints_every_run_and_stops(tmp_path, capsys):
    assert main(["--grid", "cpu", "--plan", "--seeds", "0,1", "--hours", "6", "--out", str(tmp_path / "runs"),
                 "--record", str(tmp_path / "records")]) == 0
    out = capsys.readouterr().out
    assert "grid: preset cpu, 24 runs (0 recorded, 0 cached here), 4 translators" in out and "budget 6 h" in out
    assert out.count("| to do ") == 24
    assert not any(tmp_path.iterdir())  # a plan writes nothing, not even the records folder
    with pytest.raises(UserError, match="--seeds x"):
        main(["--grid", "cpu", "--plan", "--seeds", "x", "--out", str(tmp_path)])


def fake_stages(stages, log, accuracy):
    """Each stage's work replaced: notes its name; the recognizer writes an LFW metrics.json with a machine, the
    evaluation a results.json with `accuracy` (what the real stages leave for the record)."""
    for stage in stages:
        def run(folder, name=stage.name):
            log.append(name)
            if name == "recognizer":
                (folder / "run" / "lfw-view1").mkdir(parents=True)
                (folder / "run" / "lfw-view1" / "metrics.json").write_text(json.dumps({"machine": {"cpu_model": "Test CPU"}}))
            if name == "evaluation":
                (folder / "results.json").write_text(json.dumps({
                    "checkpoint": f"{folder}/checkpoint.pt", "lfw": {"accuracy_percent": accuracy, "100-eer_percent": accuracy + 1},
                    "ijba": {"source": "IJB-A format fixture from LFW", "tar@far=0.01_mean": 0.25, "tar@far=0.001_mean": 0.1}}))
            return {"images": "images", "run": "run", "results": "results.json", "protocol_dir": "ijba"}

        stage.run = run
    return stages


def test_finished_runs_are_recorded_and_not_run_again_on_another_machine(tmp_path):
    """The grid outlasts a machine: each finished run leaves a record; a fresh runs folder (another machine)
    with the same records plans those runs as recorded and costs them nothing, and bench.tables reads them."""
    records = tmp_path / "records"
    seconds = {"real_faces": 1, "fixture": 1, "pairs": 1, "translator": 100, "ganfaces": 10, "renders": 5,
               "recognizer": 20, "evaluation": 2, "evaluation_first": 7}
    log = []
    planned = plan_grid("cpu", tmp_path / "machine-a", seeds=(0,))
    for number, (_, stages) in enumerate(planned):
        fake_stages(stages, log, accuracy=70.0 + number)
    table = grid_table(planned, seconds, hours=200 / 3600, recorded=recorded_keys(records))
    written = run_grid(planned, table, "cpu", records)
    assert [path.name.split("-")[:3] for path in written] == [["real0.2", "none", "seed0"], ["real0.2", "ganfaces", "seed0"],
                                                              ["real0.5", "none", "seed0"]]
    record = json.loads(written[1].read_text())
    assert record["keys"]["evaluation"] == planned[1][1][-1].key and record["synth_seed"] == 0
    assert record["results"]["lfw"]["accuracy_percent"] == 71.0 and "checkpoint" not in record["results"]
    assert record["machine"] == {"cpu_model": "Test CPU"} and str(tmp_path) not in written[1].read_text()
    # another machine: empty runs folder, same records
    again = grid_table(plan_grid("cpu", tmp_path / "machine-b", seeds=(0,)), seconds, hours=0,
                       recorded=recorded_keys(records))
    assert again.status.tolist()[:4] == ["recorded", "recorded", "recorded", "to do"]
    assert again.seconds.iloc[:3].sum() == 0
    # the next GANFaces run needs the translator again there: counted where it is first needed
    assert again.seconds.iloc[3] == 1 + 1 + 1 + 110 + 20 + 7  # 100% + GANFaces: faces, fixture, pairs, translator
    log.clear()
    rest = plan_grid("cpu", tmp_path / "machine-b", seeds=(0,))
    for number, (_, stages) in enumerate(rest):
        fake_stages(stages, log, accuracy=70.0 + number)
    run_grid(rest, grid_table(rest, seconds, hours=0, recorded=recorded_keys(records)), "cpu", records)
    assert log.count("recognizer") == len(rest) - 3  # the recorded runs were not run again
    assert len(recorded_keys(records)) == len(rest)
    # the tables: every run once, from records (machine a) and from machine b's folder
    runs = collect_runs(tmp_path / "machine-b", [records])
    assert len(runs) == len(rest) and runs.evaluation_key.is_unique
    assert (runs.source == "here").sum() == len(rest) - 3
    assert set(runs[runs.source != "here"].lfw_accuracy) == {70.0, 71.0, 72.0}
    assert set(runs.machine) == {"Test CPU (flags unknown), torch ?, ? threads"}
    tables = write_tables(tmp_path / "machine-b", tmp_path / "tables", records=[records])
    assert "(3 from records)" in (tmp_path / "tables" / "tables.md").read_text()
    assert len(tables["runs"]) == len(rest)


def test_the_plan_takes_stage_times_from_records_of_a_machine_like_this_one(tmp_path):
    """A grid continued on another session's VM is estimated with the times its records measured on the same
    CPU (model, vector extensions, cores), not with another host's: AVX-512 BF16 and AVX2 hosts were 3.5x apart."""
    from bench.grid import recorded_seconds
    from bench.run import measured_seconds

    fast = {"cpu_model": "Xeon", "cpu_vector_flags": "avx2 avx512f avx512_bf16", "cpu_count": 2}
    slow = {"cpu_model": "EPYC", "cpu_vector_flags": "avx2", "cpu_count": 2}
    records = tmp_path / "records"
    records.mkdir()
    for name, host, recognizer in (("a", fast, 400.0), ("b", fast, 440.0), ("c", fast, 420.0), ("d", slow, 900.0)):
        (records / f"{name}.json").write_text(json.dumps({"machine": host, "stage_seconds": {
            "recognizer": recognizer, "translator": 1200.0 if name == "a" else None}}))
    assert recorded_seconds(records, {**fast, "torch_threads": 2}) == {"recognizer": 420.0, "translator": 1200.0}
    assert recorded_seconds(records, slow) == {"recognizer": 900.0}
    assert recorded_seconds(records, {**fast, "cpu_count": 8}) == {} and recorded_seconds(None, fast) == {}
    planned = measured_seconds("cpu", tmp_path / "runs", recorded=recorded_seconds(records, fast))
    assert planned["recognizer"] == 420.0 and planned["translator"] == 1200.0
    assert planned["evaluation"] == measured_seconds("cpu", tmp_path / "runs")["evaluation"]  # not recorded: kept


def test_a_damaged_record_is_named(tmp_path):
    records = tmp_path / "records"
    records.mkdir()
    (records / "real0.5-none-seed0-abc.json").write_text("{not json")
    with pytest.raises(UserError, match="real0.5-none-seed0-abc.json: not a grid record"):
        recorded_keys(records)
    with pytest.raises(UserError, match="not a grid record"):
        collect_runs(tmp_path / "runs", [records])
    with pytest.raises(UserError, match="--records .*no such folder"):
        collect_runs(tmp_path / "runs", [tmp_path / "missing"])


def test_bench_grid_is_the_same_command_as_bench_run_grid(tmp_path, capsys):
    from bench.grid import main as grid_command

    options = ["--plan", "--seeds", "0", "--hours", "1", "--out", str(tmp_path / "runs"), "--record", str(tmp_path / "r")]
    assert grid_command(["--preset", "cpu", *options]) == 0
    direct = capsys.readouterr().out
    assert main(["--grid", "cpu", *options]) == 0
    assert capsys.readouterr().out == direct and "12 runs (0 recorded, 0 cached here)" in direct
    with pytest.raises(UserError, match="--hours -1"):
        grid_command(["--preset", "cpu", "--plan", "--hours", "-1", "--out", str(tmp_path / "runs")])
