"""One process per output folder: a second one is refused with the holder named, a dead holder frees it."""
import os
import subprocess
import sys

import pytest

from bench.common.cli import UserError
from bench.common.locks import exclusive_folder, lock_path

HOLD = "import sys, time\nfrom bench.common.locks import exclusive_folder\nwith exclusive_folder(sys.argv[1]):\n" \
       "    print('held', flush=True)\n    time.sleep(120)\n"


@pytest.fixture
def holder(tmp_path):
    """Another process holding the lock of tmp_path / 'run'."""
    process = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path / "run")], stdout=subprocess.PIPE, text=True,
                               cwd=os.getcwd())
    assert process.stdout.readline().strip() == "held"
    yield process
    process.kill()
    process.wait()


def test_a_second_process_is_refused_and_a_killed_holder_frees_the_folder(tmp_path, holder):
    with pytest.raises(UserError, match=rf"in use by process {holder.pid} on .*choose another --out"):
        with exclusive_folder(tmp_path / "run"):
            pass
    holder.kill()
    holder.wait()
    with exclusive_folder(tmp_path / "run"):  # the kernel dropped the dead holder's lock
        assert f"process {os.getpid()}" in lock_path(tmp_path / "run").read_text()


def test_the_lock_lives_beside_the_folder(tmp_path):
    (tmp_path / "run").mkdir()
    with exclusive_folder(tmp_path / "run"):
        assert list((tmp_path / "run").iterdir()) == []  # a finished run's files stay as they were


def test_both_trainers_and_bench_run_refuse_a_folder_in_use(tmp_path, holder):
    from bench.run import plan_stages, run_stages
    from generators.train import PRESETS as TRANSLATOR
    from generators.train import train as train_translator
    from recognition.train import PRESETS as RECOGNIZER
    from recognition.train import train as train_recognizer

    with pytest.raises(UserError, match="another translator run"):
        train_translator(TRANSLATOR["smoke"], tmp_path, tmp_path, tmp_path / "run", device="cpu")
    with pytest.raises(UserError, match="another recognizer run"):
        train_recognizer(RECOGNIZER["smoke"], tmp_path / "run", device="cpu")
    stage = plan_stages("smoke", 1.0, "none", 0, tmp_path)[0]
    other = subprocess.Popen([sys.executable, "-c", HOLD, str(stage.folder)], stdout=subprocess.PIPE, text=True)
    try:
        assert other.stdout.readline().strip() == "held"
        with pytest.raises(UserError, match=rf"in use by process {other.pid} .*the real_faces stage"):
            run_stages([stage])
        assert not stage.folder.exists()  # refused before writing anything
    finally:
        other.kill()
        other.wait()
