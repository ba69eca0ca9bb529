"""The ICT model, sampling and rendering on the real ICT Face Model of the data root."""
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from recognition.faces.align import CANONICAL_CROP
from generators.morphable.decimate import decimate
from generators.morphable.ict import load_ict
from generators.morphable.model import MorphableModel
from generators.morphable.render import FaceRenderer, RenderBatch, five_points, rotation_matrix
from generators.morphable.sampling import sample_identity, sample_image

pytestmark = pytest.mark.data


def test_ict_conversion(ict_model):
    model = ict_model
    assert model.expression_kind == "blendshapes" and model.identity_basis.shape[0] == 100
    assert model.expression_basis.shape[0] == 53 and "jawOpen" in model.expression_names
    width = np.ptp(model.mean_shape[model.regions["face"]][:, 0])
    assert 120 < width < 220, f"face width {width:.0f} mm: units should be millimetres"
    nose, left_eye, right_eye = (model.mean_shape[model.landmarks_68[k]] for k in (30, 36, 45))
    assert nose[2] > left_eye[2] and left_eye[0] < 0 < right_eye[0]  # nose out of the face, x to image right
    assert 40 < right_eye[0] - left_eye[0] < 120
    # identity components are std-scaled: first component moves vertices by a few millimetres
    rms = np.sqrt((model.identity_basis[0] ** 2).sum(-1).mean())
    assert 1 < rms < 15
    for region in ("lips", "brows", "eye_sockets"):
        assert 20 < model.regions[region].sum() < 3000


def test_ict_cache_is_keyed_by_source_and_reused(ict_archive, isolated_cache, monkeypatch):
    cached = list((isolated_cache / "morphable").glob("ict-*.npz"))
    assert len(cached) == 1
    monkeypatch.setattr("generators.morphable.ict.convert_ict", lambda path: pytest.fail("converted again"))
    again = load_ict(ict_archive)
    assert isinstance(again, MorphableModel) and again.num_vertices > 10000


def test_sampling_is_deterministic_per_identity_and_image(ict_model):
    a, b = sample_identity(ict_model, 7, 3), sample_identity(ict_model, 7, 3)
    np.testing.assert_array_equal(a.identity, b.identity)
    np.testing.assert_array_equal(a.albedo, b.albedo)
    assert not np.array_equal(a.identity, sample_identity(ict_model, 7, 4).identity)
    assert not np.array_equal(a.identity, sample_identity(ict_model, 8, 3).identity)
    first, again = sample_image(ict_model, 7, 3, 0), sample_image(ict_model, 7, 3, 0)
    np.testing.assert_array_equal(first.expression, again.expression)
    assert first.yaw == again.yaw and np.array_equal(first.sh, again.sh)


def test_pose_distribution_covers_the_paper_range(ict_model):
    yaws = np.array([sample_image(ict_model, 0, i, 0).yaw for i in range(400)])
    assert yaws.min() < -60 and yaws.max() > 60 and np.abs(yaws).max() <= 75
    assert (np.abs(yaws) < 30).mean() > 0.4  # mostly near frontal


@pytest.fixture(scope="module")
def small_model(ict_model):
    return decimate(ict_model, 0.3)


@pytest.fixture(scope="module")
def renderer(small_model):
    return FaceRenderer(small_model, CANONICAL_CROP, batch_size=8)


def render_one(model, renderer, identity, expression, yaw=0.0, pitch=0.0):
    person = sample_identity(model, 0, identity)
    sh = np.zeros((1, 9, 3), np.float32)
    sh[0, 0] = 1.0 / 0.886227
    expression = np.zeros(len(model.expression_basis), np.float32) if expression is None else expression
    batch = RenderBatch(model.shape(person.identity, expression)[None], person.albedo[None],
                        rotation_matrix(yaw, pitch, 0)[None], sh, np.array([800.0]))
    images, landmarks = renderer.render(batch)
    return images[0], landmarks[0]


def test_decimation_keeps_the_model_linear(ict_model, small_model):
    assert len(small_model.triangles) < 0.35 * len(ict_model.triangles)
    coefficients = np.linspace(-1, 1, 100).astype(np.float32)
    kept = np.flatnonzero(np.isin(ict_model.mean_shape, small_model.mean_shape).all(1))
    assert len(kept) >= small_model.num_vertices * 0.99  # kept vertices are original vertices
    assert small_model.shape(coefficients).shape == (small_model.num_vertices, 3)


def test_render_is_deterministic_and_face_is_centred(small_model, renderer):
    image, landmarks = render_one(small_model, renderer, 0, None)
    again, _ = render_one(small_model, renderer, 0, None)
    np.testing.assert_array_equal(image, again)
    assert image.shape == (108, 108, 3)
    mask = image.max(axis=2) > 0
    assert 0.4 < mask.mean() < 0.98  # a face on a black background
    # the five alignment points land on the template
    # the five alignment points land near the template (a similarity cannot fit all five exactly)
    error = np.linalg.norm(five_points(landmarks) - CANONICAL_CROP.template(), axis=1)
    assert error.mean() < 3.0 and error.max() < 6.0, error
    nose_x, nose_y = landmarks[30].round().astype(int)
    assert mask[nose_y, nose_x], "projected nose tip is not on the rendered face"


def test_expression_and_pose_change_the_render(small_model, renderer):
    neutral, _ = render_one(small_model, renderer, 1, None)
    open_mouth = np.zeros(len(small_model.expression_basis), np.float32)
    open_mouth[small_model.expression_names.index("jawOpen")] = 1.0
    opened, opened_landmarks = render_one(small_model, renderer, 1, open_mouth)
    turned, _ = render_one(small_model, renderer, 1, None, yaw=45)
    assert np.abs(opened.astype(int) - neutral).mean() > 3
    assert np.abs(turned.astype(int) - neutral).mean() > 10
    lip_gap = opened_landmarks[66, 1] - opened_landmarks[62, 1]
    assert lip_gap > 5, f"jawOpen should separate the lips, gap {lip_gap:.1f} px"


def test_render_cli_resumes_after_a_kill(tmp_path, ict_archive):
    out = tmp_path / "renders"
    command = [sys.executable, "-m", "generators.render", "--identities", "12", "--per-identity", "6",
               "--batch-size", "8", "--out", str(out)]
    env = {**os.environ, "FACEBENCH_DATA": str(ict_archive.parent)}
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and len(list(out.glob("id_*/metadata.csv"))) < 2:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    finished_before = len(list(out.glob("id_*/metadata.csv")))
    assert finished_before < 12, "the run finished before it could be killed; make it longer"
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    table = pd.read_csv(out / "metadata.csv")
    assert len(table) == 72 and table.identity.nunique() == 12
    for file in table.file:
        assert (out / file).stat().st_size > 0
    assert (out / "contact_sheet.png").exists()
    assert not list(out.rglob(".tmp-*")), "temporaries of the killed run should be cleared on resume"
    from PIL import Image

    for file in table.file:
        Image.open(out / file).verify()  # no half-written image


def test_content_digest_pins_the_model_whatever_the_container(ict_archive, tmp_path):
    """The digest `bench.data fetch ict-facekit` checks a download against, on the real archive and a zip of it."""
    import tarfile
    import zipfile

    from generators.morphable.ict import CONTENT_SHA256, content_digest

    assert content_digest(ict_archive) == CONTENT_SHA256
    repacked = tmp_path / "ICT-FaceKit-repacked.zip"
    with tarfile.open(ict_archive) as source, zipfile.ZipFile(repacked, "w") as target:
        for member in source:
            if member.isfile() and "/FaceXModel/" in member.name:
                target.writestr(f"ICT-FaceKit-abc/FaceXModel/{member.name.rsplit('/', 1)[1]}",
                                source.extractfile(member).read())
    assert content_digest(repacked) == CONTENT_SHA256


@pytest.mark.parametrize("keep", [0.02, 0.6])
def test_a_truncated_ict_archive_is_named_not_a_traceback(ict_archive, tmp_path, keep):
    """Issue 20, item 7: a cut-off download raised EOFError/LZMAError from deep inside tarfile."""
    from bench.common.cli import UserError
    from generators.morphable.ict import load_ict

    data = ict_archive.read_bytes()
    damaged = tmp_path / "ICT-FaceKit.tar.xz"
    damaged.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(UserError, match=r"ICT-FaceKit.tar.xz: the archive is damaged or truncated .*bench.data check"):
        load_ict(damaged, use_cache=False)
