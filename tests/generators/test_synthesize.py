"""GANFaces synthesis on small runs: layout, metadata, determinism, shards and merge, resume after a kill."""
import hashlib
import os
import signal
import subprocess
import sys
import tarfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from bench.common.cli import UserError
from generators.synthesis_plan import PRESETS, chunk_ranges, merge, read_image
from generators.synthesize import main, synthesize
from generators.translator import load_translator, save_untrained_translator

pytestmark = pytest.mark.data

SMOKE = replace(PRESETS["smoke"], scores=True)


@pytest.fixture(scope="module")
def translator(tmp_path_factory, ict_archive) -> Path:
    """A translator checkpoint in generators.train's format with seeded random weights (what G learnt is not under test)."""
    return save_untrained_translator(tmp_path_factory.mktemp("translator") / "checkpoint.pt", "smoke")


@pytest.fixture(scope="module")
def reference(translator, tmp_path_factory) -> Path:
    """One uninterrupted, unsharded run that the other runs must reproduce byte for byte."""
    out = tmp_path_factory.mktemp("reference")
    synthesize(SMOKE, translator, out, progress=False)
    return out


def digests(out: Path) -> dict[str, str]:
    return {p.relative_to(out).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for folder in ("ganfaces", "renders", "webdataset", "parts") if (out / folder).is_dir()
            for p in sorted((out / folder).rglob("*")) if p.is_file()}


def test_identity_folders_counts_and_metadata_match_images(reference):
    config = SMOKE
    folders = sorted(p.name for p in (reference / "ganfaces").iterdir())
    assert folders == [f"id_{i:05d}" for i in range(config.identities)]
    for folder in folders:
        assert len(list((reference / "ganfaces" / folder).glob("*.jpg"))) == config.per_identity
        assert len(list((reference / "renders" / folder).glob("*.jpg"))) == config.per_identity
    table = pd.read_csv(reference / "metadata.csv")
    assert len(table) == config.identities * config.per_identity and not table.file.duplicated().any()
    for row in table.itertuples():
        assert row.file == f"ganfaces/id_{row.identity:05d}/{row.image:03d}.jpg"
        assert row.render_file == row.file.replace("ganfaces/", "renders/")
        assert Image.open(reference / row.file).size == (config.output_size, config.output_size)
    landmarks = table[[c for c in table if c.startswith("lm")]].to_numpy().reshape(len(table), 68, 2)
    inner = landmarks[:, 17:]  # brows, eyes, nose, mouth: inside the crop at any pose (the jaw line may not be)
    assert (inner > 0).all() and (inner < config.output_size).all()
    assert np.abs(landmarks[:, 30].mean(0) - config.output_size / 2).max() < 0.15 * config.output_size  # nose tip
    assert {"yaw", "exp_jawOpen", "sh_0_r", "id_0", "exposure"} <= set(table.columns)
    for column in ("d_error", "cycle_error", "centroid_distance"):
        assert np.isfinite(table[column]).all() and (table[column] >= 0).all()
    # the 3DMM parameters differ between images of one identity (new expression, pose, light) but not its shape
    first = table[table.identity == 0]
    assert first.yaw.nunique() == config.per_identity and first.id_0.nunique() == 1
    assert table.groupby("identity").id_0.first().nunique() == config.identities
    assert (reference / "contact_sheet.png").exists()


def test_same_seed_is_byte_identical_and_another_seed_is_not(reference, translator, tmp_path):
    synthesize(SMOKE, translator, tmp_path / "again", progress=False)
    assert digests(tmp_path / "again") == digests(reference)
    synthesize(replace(SMOKE, seed=2), translator, tmp_path / "other", progress=False)
    other = digests(tmp_path / "other")
    assert other.keys() == digests(reference).keys()
    assert not set(other.values()) & set(digests(reference).values())


def test_render_workers_write_the_same_images_as_one_process(reference, translator, tmp_path):
    """Issue 17: chunks rendered ahead by two spawned workers (one EGL context each) are the chunks rendered
    in process, so the images and tables are byte-identical; the time split says the main process rendered
    nothing and how long it waited for the workers."""
    summary = synthesize(SMOKE, translator, tmp_path / "ahead", progress=False, render_workers=2)
    assert digests(tmp_path / "ahead") == digests(reference)
    assert summary["split"]["render"] == 0 and summary["split"]["render_wait"] > 0
    in_process = synthesize(SMOKE, translator, tmp_path / "here", progress=False)
    assert in_process["split"]["render"] > 0 and in_process["split"]["render_wait"] == 0


def test_shards_split_without_overlap_and_merge_checks_completeness(reference, translator, tmp_path):
    out = tmp_path / "sharded"
    first = synthesize(SMOKE, translator, out, shard=(0, 2), progress=False)
    assert not first["complete"]
    done = sorted(p.name for p in (out / "parts").iterdir())
    assert done == [f"chunk-{c:06d}.csv" for c in range(0, len(chunk_ranges(SMOKE)), 2)]
    with pytest.raises(UserError, match="chunks are not done"):
        merge(out)
    second = synthesize(SMOKE, translator, out, shard=(1, 2), progress=False)
    assert second["complete"] and second["images"] + first["images"] == SMOKE.identities * SMOKE.per_identity
    assert digests(out) == digests(reference)
    # a stray image of no identity of this run, or a lost one, makes the merge fail
    stray = out / "ganfaces" / "id_00099" / "000.jpg"
    stray.parent.mkdir()
    stray.write_bytes(b"x")
    with pytest.raises(UserError, match="belong to no identity"):
        merge(out)
    stray.unlink()
    (out / "renders" / "id_00002" / "001.jpg").unlink()
    with pytest.raises(UserError, match="listed images are missing"):
        merge(out)


def test_resume_after_a_kill_reproduces_the_uninterrupted_run(reference, translator, tmp_path):
    out = tmp_path / "killed"
    command = [sys.executable, "-m", "generators.synthesize", "--generator", str(translator), "--preset", "smoke",
               "--out", str(out)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not list((out / "parts").glob("chunk-*.csv")) and time.time() < deadline and process.poll() is None:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    parts = list((out / "parts").glob("chunk-*.csv"))
    assert 1 <= len(parts) < len(chunk_ranges(SMOKE)), "killed between the first and the last chunk"
    for image in (out / "ganfaces").rglob("*.jpg"):  # whatever was written under a final name is whole
        Image.open(image).load()
    assert main(["--generator", str(translator), "--preset", "smoke", "--out", str(out)]) == 0
    assert not list(out.rglob(".tmp-*"))
    assert digests(out) == digests(reference)


def test_webdataset_tars_hold_every_image_and_label(translator, reference, tmp_path):
    out = tmp_path / "wds"
    config = replace(SMOKE, layout="webdataset", images_per_tar=6)
    synthesize(config, translator, out, progress=False)
    tars = sorted((out / "webdataset").glob("*.tar"))
    assert len(tars) == len(chunk_ranges(config)) == 3
    table = pd.read_csv(out / "metadata.csv")
    with tarfile.open(tars[0]) as archive:
        names = archive.getnames()
        assert names[:3] == ["id_00000_000.jpg", "id_00000_000.cls", "id_00000_000.render.jpg"]
        assert archive.extractfile("id_00001_002.cls").read() == b"1"
    # the same pixels as the folder layout (batches differ, so compare decoded images loosely)
    row = table.iloc[4]
    from_tar = np.asarray(read_image(out, row.file), dtype=float)
    from_folder = np.asarray(Image.open(reference / f"ganfaces/id_{row.identity:05d}/{row.image:03d}.jpg"), dtype=float)
    assert np.abs(from_tar - from_folder).mean() < 3
    again = tmp_path / "wds-again"
    synthesize(config, translator, again, progress=False)
    assert digests(again) == digests(out)


def test_user_errors(translator, tmp_path, capsys):
    assert _exit_code(["--generator", str(tmp_path / "nothing"), "--out", str(tmp_path / "a")]) == 2
    assert "no checkpoint.pt" in capsys.readouterr().err
    assert _exit_code(["--generator", str(translator), "--shard", "3/2", "--out", str(tmp_path / "b")]) == 2
    assert "0 <= i < n" in capsys.readouterr().err
    synthesize(replace(SMOKE, identities=2), translator, tmp_path / "c", progress=False)
    with pytest.raises(UserError, match="identities differ"):
        synthesize(SMOKE, translator, tmp_path / "c", progress=False)
    with pytest.raises(UserError, match="no GANFaces run"):
        merge(tmp_path / "empty")


def _exit_code(argv) -> int:
    from bench.common.cli import run_main

    with pytest.raises(SystemExit) as stopped:
        run_main(main, argv)
    return stopped.value.code


def test_torchrun_ranks_split_the_work_and_rank_0_merges(translator, reference, tmp_path):
    out = tmp_path / "torchrun"
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port",
                             "29533", "-m", "generators.synthesize", "--generator", str(translator), "--preset", "smoke",
                             "--out", str(out)], env=environment, capture_output=True, text=True, timeout=300,
                            check=False)
    # a rank's own message ("error: ...", exit 2) comes before torchrun's report, which fills the tail
    messages = [line for line in result.stderr.splitlines() if line.startswith(("error:", "Traceback", "RuntimeError"))]
    assert result.returncode == 0, "\n".join(messages) + "\n...\n" + result.stderr[-1500:]
    assert (out / "metadata.csv").exists() and digests(out).keys() == digests(reference).keys()


def test_a_generator_with_dropout_at_generation_still_synthesises_reproducibly(tmp_path):
    """The authors' G keeps dropout on when it generates; each chunk seeds torch's RNG, so the images do
    not depend on what ran before them in the process (a resume gives the same bytes)."""
    translator = save_untrained_translator(tmp_path / "reference-g.pt", "smoke", variant="reference")
    first, second = tmp_path / "first", tmp_path / "second"
    synthesize(SMOKE, translator, first, progress=False)
    torch.rand(1000)  # move the global RNG on
    synthesize(SMOKE, translator, second, progress=False)
    assert digests(first) == digests(second)
    assert load_translator(translator).G.dropout_at_generation


def test_a_translator_trained_without_l_c_translates_the_same_identities(real_folder, pairs_folder, tmp_path):
    """The GAN ablation compares translators on the same renders: without L_C there are no centroids, and
    the trained identities are then the ones the identity stream showed, which for the same seed are the
    ones whose centroids the full run moved."""
    from generators.train import PRESETS as TRAIN_PRESETS, train

    config = replace(TRAIN_PRESETS["smoke"], seed=4)
    train(config, real_folder, pairs_folder, tmp_path / "all", progress=False, device="cpu")
    without = replace(config, weights=replace(config.weights, use_identity=False))
    train(without, real_folder, pairs_folder, tmp_path / "no-lc", progress=False, device="cpu")
    stored = torch.load(tmp_path / "no-lc" / "checkpoint.pt", weights_only=False)
    assert len(stored["centroids"]["labels"]) == 0
    full, ablated = load_translator(tmp_path / "all"), load_translator(tmp_path / "no-lc")
    assert ablated.trained_identities and ablated.trained_identities == full.trained_identities


def test_synthesis_runs_g_d_and_c_on_the_gpu(translator, fake_cuda, tmp_path):
    """G, G', D_R and C on a (fake) GPU: a render batch from the CPU goes to the device, scores come back
    to the CPU; a translator left on the CPU fails, as it would on a real GPU."""
    from generators.synthesize import Synthesizer

    synthesizer = Synthesizer(SMOKE, load_translator(translator, fake_cuda), tmp_path, fake_cuda)
    rendered = np.zeros((3, 32, 32, 3), dtype=np.uint8)
    result = synthesizer._translate(rendered)
    assert result["generated"].device == fake_cuda and result["x"].device == fake_cuda
    assert {result[k].device.type for k in ("d_error", "cycle_error", "embedding")} == {"cpu"}
    assert result["embedding"].shape == (3, 128)
    stranded = Synthesizer(SMOKE, load_translator(translator), tmp_path, fake_cuda)
    with pytest.raises(RuntimeError, match="same device"):
        stranded._translate(rendered)


def test_trained_identities_are_the_ones_l_c_saw_in_the_translator_s_pose(real_folder, pairs_folder, tmp_path):
    """`identities_from="trained"` renders the identities whose centroids the run moved, keyed by its training
    seed (the same 3DMM parameters G was trained on); without --pose, the translator's own pose is used."""
    from generators.morphable.sampling import POSE_DISTRIBUTIONS, sample_identity
    from generators.render import RenderConfig, load_render_model
    from generators.train import PRESETS as TRAIN_PRESETS, train

    run = tmp_path / "run"
    train(replace(TRAIN_PRESETS["smoke"], pose="lfw", seed=3), real_folder, pairs_folder, run, progress=False, device="cpu")
    translator = load_translator(run)
    assert translator.training_pose == "lfw" and len(translator.trained_identities) >= 2
    out = tmp_path / "trained"
    synthesize(replace(SMOKE, identities=2, identities_from="trained"), run, out, progress=False)
    table = pd.read_csv(out / "metadata.csv")
    assert sorted(table.identity.unique()) == [0, 1]
    keys = table.groupby("identity").identity_key.first()
    assert keys.tolist() == list(translator.trained_identities[:2])
    model = load_render_model(RenderConfig())
    for identity, key in keys.items():
        expected = sample_identity(model, 3, int(key)).identity  # the training seed, not the synthesis seed
        assert table[table.identity == identity].id_0.iloc[0] == pytest.approx(float(expected[0]), rel=1e-6)
    assert table.yaw.abs().max() <= POSE_DISTRIBUTIONS["lfw"]["yaw_max_deg"] + 1e-6
    stored = pd.read_json(out / "config.json", typ="series")
    assert stored["pose"] == "lfw" and stored["seed"] == 3
    with pytest.raises(UserError, match="L_C saw"):
        synthesize(replace(SMOKE, identities=1000, identities_from="trained"), run, tmp_path / "too-many", progress=False)
