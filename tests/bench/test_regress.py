"""bench.regress: passes on the committed baseline, fails with a readable diff on a planted regression, and
names the machine the baseline was recorded on beside this one."""
import json

import pytest

from bench import regress
from bench.common.cli import UserError
from bench.common.machine import describe_machine, machine
from bench.regress import BASELINE, compare, machine_lines, main, register_probe


@pytest.mark.data
def test_committed_baseline_passes_and_a_planted_regression_fails(lfw_root, tmp_path, capsys):
    assert main(["--probe", "separation"]) == 0, "the committed baseline reproduces here"
    assert "within tolerance" in capsys.readouterr().out
    planted = json.loads(BASELINE.read_text())
    planted["separation"]["d_prime"]["value"] += 0.5  # as if d' had dropped by 0.5
    path = tmp_path / "baseline.json"
    path.write_text(json.dumps(planted))
    assert main(["--probe", "separation", "--baseline", str(path)]) == 1
    out = capsys.readouterr().out
    assert "1 metric(s) outside tolerance" in out and "d_prime" in out.split("outside tolerance")[1]
    # --update rewrites the value and keeps the stated tolerance
    planted["separation"]["d_prime"]["tolerance"] = 0.03
    path.write_text(json.dumps(planted))
    assert main(["--probe", "separation", "--baseline", str(path), "--update"]) == 0
    rewritten = json.loads(path.read_text())["separation"]["d_prime"]
    committed = json.loads(BASELINE.read_text())["separation"]["d_prime"]
    assert rewritten["tolerance"] == 0.03 and abs(rewritten["value"] - committed["value"]) <= committed["tolerance"]


@pytest.mark.data
def test_missing_metric_and_user_errors(tmp_path):
    table = compare({"separation": {"auc": {"value": 0.8, "tolerance": 0.01}, "gone": {"value": 1, "tolerance": 0}}},
                    {"separation": {"auc": 0.805, "new_one": 2.0}})
    assert dict(zip(table.metric, table.status)) == {"auc": "ok", "gone": "MISSING", "new_one": "new"}
    with pytest.raises(UserError, match="unknown"):
        main(["--probe", "nope"])
    with pytest.raises(UserError, match="create it deliberately with --update"):
        main(["--baseline", str(tmp_path / "none.json")])


@pytest.fixture
def tiny_probe(tmp_path, monkeypatch):
    """Only a probe of one constant metric, and a data root that passes main's LFW check: the machinery
    around the probes, without the minutes the real ones take."""
    monkeypatch.setattr(regress, "PROBES", {})
    register_probe("tiny", {"": 0.01}, "one constant metric")(lambda scratch: {"value": 1.0})
    (tmp_path / "data" / "lfw-py").mkdir(parents=True)
    monkeypatch.setenv("FACEBENCH_DATA", str(tmp_path / "data"))
    return tmp_path / "baseline.json"


def test_update_records_the_machine_and_a_run_prints_it_beside_the_baseline(tiny_probe, capsys):
    """Issue 20, item 10: a difference between machines is read against the machine the baseline came from."""
    assert main(["--probe", "tiny", "--baseline", str(tiny_probe), "--update"]) == 0
    stored = json.loads(tiny_probe.read_text())
    assert stored["tiny"] == {"value": {"value": 1.0, "tolerance": 0.01}}
    assert stored["machine"] == json.loads(json.dumps(machine()))
    capsys.readouterr()
    assert main(["--probe", "tiny", "--baseline", str(tiny_probe)]) == 0
    out = capsys.readouterr().out
    here = describe_machine(machine())
    assert f"baseline recorded on: {here}\nthis machine:         {here}\n" in out
    assert "another machine" not in out and "all 1 metrics within tolerance" in out
    assert out.index("baseline recorded on") < out.index("| probe"), "the machines head the comparison table"


def test_another_machine_or_an_old_baseline_is_named():
    here = {"cpu_model": "Example CPU", "cpu_vector_flags": "avx2", "torch": "2.14.1", "torch_threads": 2}
    elsewhere = {**here, "cpu_vector_flags": "avx2 avx512f"}
    lines = machine_lines({"machine": elsewhere}, here).splitlines()
    assert lines[0] == "baseline recorded on: Example CPU (avx2 avx512f), torch 2.14.1, 2 threads"
    assert lines[1] == "this machine:         Example CPU (avx2), torch 2.14.1, 2 threads"
    assert "another machine" in lines[2] and "within the tolerances" in lines[2]
    old = machine_lines({"tiny": {}}, here)
    assert "baseline recorded on: not recorded" in old and "--update records the machine" in old


def test_no_probe_may_take_the_machine_entrys_name(monkeypatch):
    monkeypatch.setattr(regress, "PROBES", {})
    with pytest.raises(ValueError, match="machine entry"):
        register_probe("machine", {"": 0.1}, "a clash")
