"""Perf records are committed from one machine and read on others: their command lines must not name this one's folders."""
import json

from bench.perf.record import write_record


def test_a_records_command_names_data_and_checkout_paths_portably(tmp_path, monkeypatch):
    data, checkout = tmp_path / "data", tmp_path / "checkout"
    (data / "lfw-py").mkdir(parents=True)
    (checkout / "runs" / "real").mkdir(parents=True)
    monkeypatch.setenv("FACEBENCH_DATA", str(data))
    monkeypatch.chdir(checkout)
    command = (f"python -m bench.perf.train --real {checkout / 'runs' / 'real'} --lfw {data / 'lfw-py'} "
               f"--iterations 6 --elsewhere {tmp_path / 'outside'}")
    write_record("train", "title", command, [{"seconds": 1.0}], out_dir=tmp_path / "perf")
    recorded = json.loads((tmp_path / "perf" / "train.json").read_text())["command"]
    assert recorded == (f"python -m bench.perf.train --real runs/real --lfw $FACEBENCH_DATA/lfw-py "
                        f"--iterations 6 --elsewhere {tmp_path / 'outside'}")
    assert f"`{recorded}`" in (tmp_path / "perf" / "train.md").read_text()
