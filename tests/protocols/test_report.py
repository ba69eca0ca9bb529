"""protocols.report: metrics.json names the machine that computed it and no folder of that machine."""
import json

import numpy as np
import pandas as pd

from bench.common.machine import machine
from protocols.report import portable_config, write_report


def test_metrics_json_records_the_machine_and_portable_paths(tmp_path, monkeypatch):
    root = tmp_path / "data"
    root.mkdir()
    monkeypatch.setenv("FACEBENCH_DATA", str(root))
    monkeypatch.chdir(tmp_path)
    config = {"embedder": "lbp", "data_root": str(root), "image_root": root / "IJB-A" / "images",
              "bin": str(tmp_path / "runs" / "lfw.bin"), "protocol_dir": "/elsewhere/ijba", "flip": False,
              "note": "built under data root /somewhere"}
    labels = np.repeat([1, 0], 20)
    scores = labels + np.random.default_rng(0).normal(0, 0.5, 40)
    write_report(tmp_path / "report", "a report", {"auc": 0.9}, config, {"folds": pd.DataFrame({"fold": [1]})},
                 {"lbp": (scores, labels)})
    stored = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert stored["config"] == {"embedder": "lbp", "data_root": "$FACEBENCH_DATA",
                                "image_root": "$FACEBENCH_DATA/IJB-A/images",
                                "bin": "runs/lfw.bin", "protocol_dir": "/elsewhere/ijba", "flip": False,
                                "note": "built under data root /somewhere"}  # text is not a path
    assert stored["machine"] == json.loads(json.dumps(machine()))


def test_portable_config_compares_old_absolute_records_with_new_ones(tmp_path, monkeypatch):
    monkeypatch.setenv("FACEBENCH_DATA", str(tmp_path))
    assert portable_config({"data_root": str(tmp_path)}) == portable_config({"data_root": "$FACEBENCH_DATA"})
