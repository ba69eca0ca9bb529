"""bench.run: the plan, stage caching by configuration, and clean errors (stage bodies replaced by recorders)."""
import pytest

from bench.common.cli import UserError
from bench.run import main, plan_stages, run_stages


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


@pytest.mark.parametrize("argv, message", [
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
