"""bench.run: the plan, stage caching by configuration, and clean errors (stage bodies replaced by recorders)."""
import pytest

from bench.common.cli import UserError
from bench.run import main, plan_stages, run_stages, until_stage


def recorded(stages, log):
    """Replace each stage's work by a recorder that notes its name (the caching logic is under test)."""
    for stage in stages:
        def run(folder, name=stage.name):
            log.append(name)
            return {"images": "images", "run": "run", "results": "results.json"}

        stage.run = run
    return stages


def test_second_run_does_nothing_and_a_changed_option_redoes_only_what_depends_on_it(tmp_path):
    log = []
    run_stages(recorded(plan_stages("smoke", 1.0, "ganfaces", 0, tmp_path), log))
    assert log == ["real_faces", "pairs", "translator", "ganfaces", "recognizer", "evaluation"]
    log.clear()
    run_stages(recorded(plan_stages("smoke", 1.0, "ganfaces", 0, tmp_path), log))
    assert log == []
    run_stages(recorded(plan_stages("smoke", 0.5, "ganfaces", 0, tmp_path), log))
    assert log == ["recognizer", "evaluation"]
    log.clear()
    run_stages(recorded(plan_stages("smoke", 0.5, "ganfaces-no-lc", 0, tmp_path), log))
    assert log == ["translator", "ganfaces", "recognizer", "evaluation"]  # real faces and pairs are shared
    log.clear()
    run_stages(recorded(plan_stages("smoke", 0.5, "ganfaces-no-ldp", 0, tmp_path), log))
    assert "pairs" not in log and log[0] == "translator"
    log.clear()
    run_stages(recorded(plan_stages("smoke", 0.5, "none", 0, tmp_path), log))
    assert log == ["recognizer", "evaluation"]  # the real faces are shared by every run


def test_an_edited_preset_redoes_its_stage_and_what_depends_on_it(tmp_path, monkeypatch):
    """Stages are keyed by their preset's contents, not only its name: a cached translator trained with the old
    settings of `smoke` is not reused once `smoke` says otherwise; settings of how to compute do not count."""
    from dataclasses import replace

    from generators import train

    log = []
    run_stages(recorded(plan_stages("smoke", 1.0, "ganfaces", 0, tmp_path), log))
    log.clear()
    monkeypatch.setitem(train.PRESETS, "smoke", replace(train.PRESETS["smoke"], precision="bf16", log_every=7))
    run_stages(recorded(plan_stages("smoke", 1.0, "ganfaces", 0, tmp_path), log))
    assert log == []
    monkeypatch.setitem(train.PRESETS, "smoke", replace(train.PRESETS["smoke"], gamma=0.7))
    run_stages(recorded(plan_stages("smoke", 1.0, "ganfaces", 0, tmp_path), log))
    assert log == ["translator", "ganfaces", "recognizer", "evaluation"]
    log.clear()
    run_stages(recorded(plan_stages("smoke", 1.0, "3dmm", 0, tmp_path), log))
    log.clear()
    monkeypatch.setitem(train.PRESETS, "smoke", replace(train.PRESETS["smoke"], pose="lfw"))
    run_stages(recorded(plan_stages("smoke", 1.0, "3dmm", 0, tmp_path), log))
    assert log == ["renders", "recognizer", "evaluation"]  # the renders baseline follows the translator's pose


def test_recognizer_seeds_can_share_one_translator(tmp_path):
    log = []
    run_stages(recorded(plan_stages("smoke", 1.0, "ganfaces", 0, tmp_path), log))
    log.clear()
    run_stages(recorded(plan_stages("smoke", 1.0, "ganfaces", 1, tmp_path, synth_seed=0), log))
    assert log == ["recognizer", "evaluation"]
    log.clear()
    run_stages(recorded(plan_stages("smoke", 1.0, "ganfaces", 1, tmp_path), log))
    assert log == ["translator", "ganfaces", "recognizer", "evaluation"]  # by default the seed seeds both


def test_a_failed_stage_is_not_marked_done(tmp_path):
    stages = plan_stages("smoke", 1.0, "3dmm", 0, tmp_path)

    def fail(folder):
        raise UserError("boom")

    stages[0].run = fail
    with pytest.raises(UserError):
        run_stages(stages)
    assert stages[0].status() == "resume" and not stages[0].done


def test_plan_is_printed_first(tmp_path, capsys):
    assert main(["--plan", "--preset", "smoke", "--real", "0.5", "--synth", "ganfaces", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "plan: preset smoke, real 0.5, synth ganfaces" in out and "estimated time" in out
    for stage in ("real_faces", "pairs", "translator", "ganfaces", "recognizer", "evaluation"):
        assert f"| {stage}" in out
    assert out.count("| run ") == 6


def test_until_cuts_the_plan_and_a_later_full_run_goes_on_from_there(tmp_path, capsys):
    log = []
    run_stages(recorded(until_stage(plan_stages("smoke", 0.5, "ganfaces-no-lc", 0, tmp_path), "ganfaces"), log))
    assert log == ["real_faces", "pairs", "translator", "ganfaces"]
    log.clear()
    run_stages(recorded(plan_stages("smoke", 0.5, "ganfaces-no-lc", 0, tmp_path), log))
    assert log == ["recognizer", "evaluation"]
    assert main(["--plan", "--preset", "smoke", "--synth", "none", "--until", "real_faces", "--out", str(tmp_path)]) == 0
    assert "| recognizer" not in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["--synth", "none", "--until", "translator"], "--until translator: this run's stages are real_faces, "),
    (["--real", "0.3"], "--real 0.3: choose one of 0.2, 0.5, 1.0"),
    (["--synth", "gan"], "--synth gan: choose one of none, 3dmm, ganfaces"),
])
def test_unknown_options_are_user_errors(argv, message, tmp_path):
    with pytest.raises(UserError, match=message.replace("(", r"\(")):
        main([*argv, "--out", str(tmp_path)])


def test_missing_data_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv("FACEBENCH_DATA", "restored after the test")  # main() sets it from --data-root
    with pytest.raises(UserError, match="lacks what the pipeline needs"):
        main(["--preset", "smoke", "--synth", "none", "--data-root", str(tmp_path / "empty"), "--out", str(tmp_path)])


def test_gpus_launch_the_trainers_and_synthesis_under_torchrun(tmp_path, monkeypatch):
    """--gpus 2: each parallel stage becomes one torchrun command with the stage's own arguments (the
    ablation's switch, --resume when a checkpoint exists); the trainers' keys record the process count."""
    import subprocess

    from bench import run as bench_run

    commands = []
    monkeypatch.setattr(bench_run.subprocess, "run", lambda command: commands.append(command) or
                        subprocess.CompletedProcess(command, 0))
    single = {s.name: s for s in bench_run.plan_stages("cpu", 0.5, "ganfaces-no-lc", 0, tmp_path)}
    stages = {s.name: s for s in bench_run.plan_stages("cpu", 0.5, "ganfaces-no-lc", 0, tmp_path, gpus=2)}
    assert stages["translator"].key != single["translator"].key and stages["real_faces"].key == single["real_faces"].key
    (stages["translator"].folder / "run").mkdir(parents=True)
    (stages["translator"].folder / "run" / "checkpoint.pt").write_bytes(b"")
    stages["translator"].run(stages["translator"].folder)
    stages["ganfaces"].run(stages["ganfaces"].folder)
    stages["ganfaces"].folder.mkdir(parents=True, exist_ok=True)
    (stages["ganfaces"].folder / "stage.json").write_text('{"outputs": {"images": "ganfaces/ganfaces"}}')
    stages["recognizer"].run(stages["recognizer"].folder)
    modules = [c[c.index("-m", 3) + 1] for c in commands]
    assert modules == ["generators.train", "generators.synthesize", "recognition.train"]
    for command in commands:
        assert command[1:5] == ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"]
    translator, _, recognizer = commands
    assert "--no-identity" in translator and "--resume" in translator and "--no-pair" not in translator
    assert recognizer[recognizer.index("--synth") + 1] == str(stages["ganfaces"].folder / "ganfaces/ganfaces")
    assert recognizer[recognizer.index("--real") + 1] == "0.5" and "--resume" not in recognizer


def test_a_failed_distributed_stage_is_a_clear_error(tmp_path, monkeypatch):
    import subprocess

    from bench import run as bench_run

    monkeypatch.setattr(bench_run.subprocess, "run", lambda command: subprocess.CompletedProcess(command, 1))
    stages = {s.name: s for s in bench_run.plan_stages("cpu", 1.0, "ganfaces", 0, tmp_path, gpus=4)}
    with pytest.raises(UserError, match="translator: the distributed run failed"):
        stages["translator"].run(stages["translator"].folder)
    with pytest.raises(UserError, match="--gpus must be at least 0, not -1"):
        bench_run.main(["--gpus", "-1", "--plan", "--out", str(tmp_path)])
    from bench import grid

    for command in (grid.main, lambda argv: bench_run.main(["--grid", "cpu", *argv])):  # the shared options
        with pytest.raises(UserError, match="--synth-seed must be at least 0, not -1"):
            command(["--synth-seed", "-1", "--plan", "--out", str(tmp_path)])


def test_the_evaluation_stage_refuses_a_recognizer_trained_on_a_fixture_subject(tmp_path):
    """The cpu preset's evaluation checks the recognizer's identities against LFW View 1 and the fixture's
    subjects before evaluating anything (a tiny LFW; the fixture stage's folder made by hand)."""
    import json

    from tests.recognition.test_recognizer import write_tiny_lfw

    root = write_tiny_lfw(tmp_path / "data")
    stages = {s.name: s for s in plan_stages("cpu", 0.5, "none", 0, tmp_path / "out", root)}
    assert stages["evaluation"].config["fixture"] == stages["fixture"].key
    assert stages["recognizer"].config["min_images"] == 4
    (stages["fixture"].folder / "ijba").mkdir(parents=True)
    (stages["fixture"].folder / "ijba" / "people.txt").write_text("Person_A\n")
    run = stages["recognizer"].folder / "run"
    run.mkdir(parents=True)
    (run / "identities.json").write_text(json.dumps({"real set": ["Stranger", "Person_A"]}))
    with pytest.raises(UserError, match="identity leakage.*IJB-A format fixture from LFW.*Person_A"):
        stages["evaluation"].run(stages["evaluation"].folder)
    assert not (stages["evaluation"].folder / "results.json").exists()
    # and the recognizer stage refuses before training, from the names of the aligned faces alone
    faces = stages["real_faces"].folder / "faces"
    faces.mkdir(parents=True)
    for name in ("lfw_Stranger_0001.png", "lfw_Person_A_0001.png"):
        (faces / name).write_bytes(b"")
    with pytest.raises(UserError, match="identity leakage.*IJB-A format fixture from LFW.*Person_A"):
        stages["recognizer"].run(stages["recognizer"].folder)
    assert not (stages["recognizer"].folder / "run" / "checkpoint.pt").exists()
