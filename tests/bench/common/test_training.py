"""metrics.csv: one header for every row, widened when a value is logged for the first time."""
import pandas as pd

from bench.common.training import MetricsLog


def test_rows_with_other_values_keep_one_table(tmp_path):
    log = MetricsLog(tmp_path, enabled=False)
    log.write(10, {"G": 0.5, "C": -1.0})
    log.write(20, {"G": 0.4, "C": -2.0, "grad_C": 0.3})  # diagnostics only on some rows
    log.write(30, {"G": 0.3, "C": -3.0})
    log.close()
    table = pd.read_csv(tmp_path / "metrics.csv")
    assert list(table.columns) == ["iteration", "G", "C", "grad_C"]
    assert list(table.iteration) == [10, 20, 30] and list(table.C) == [-1.0, -2.0, -3.0]
    assert table.grad_C.isna().tolist() == [True, False, True] and table.grad_C[1] == 0.3
    assert not list(tmp_path.glob(".tmp-*"))


def test_a_resumed_log_drops_the_rows_after_its_checkpoint(tmp_path):
    """Issue 20, item 8: rows logged between the last checkpoint and a kill were written twice after --resume."""
    log = MetricsLog(tmp_path, enabled=False)
    for iteration in (10, 20, 30):
        log.write(iteration, {"G": iteration / 100})
    log.close()
    resumed = MetricsLog(tmp_path, enabled=True, resume_from=20)  # the checkpoint was at 20
    assert resumed.purge_step == 21  # TensorBoard drops its events after the checkpoint too
    resumed.write(30, {"G": 0.33})
    resumed.close()
    table = pd.read_csv(tmp_path / "metrics.csv")
    assert list(table.iteration) == [10, 20, 30] and table.G.iloc[-1] == 0.33
    untouched = MetricsLog(tmp_path, enabled=True, resume_from=30)
    assert untouched.purge_step is None and len(pd.read_csv(tmp_path / "metrics.csv")) == 3
