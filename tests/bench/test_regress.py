"""bench.regress: passes on the committed baseline, fails with a readable diff on a planted regression."""
import json

import pytest

from bench.common.cli import UserError
from bench.regress import BASELINE, compare, main

pytestmark = pytest.mark.data


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


def test_missing_metric_and_user_errors(tmp_path):
    table = compare({"separation": {"auc": {"value": 0.8, "tolerance": 0.01}, "gone": {"value": 1, "tolerance": 0}}},
                    {"separation": {"auc": 0.805, "new_one": 2.0}})
    assert dict(zip(table.metric, table.status)) == {"auc": "ok", "gone": "MISSING", "new_one": "new"}
    with pytest.raises(UserError, match="unknown"):
        main(["--probe", "nope"])
    with pytest.raises(UserError, match="create it deliberately with --update"):
        main(["--baseline", str(tmp_path / "none.json")])
