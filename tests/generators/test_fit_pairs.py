"""Landmark fitting of the 3DMM and the pairs pipeline, on the real ICT model and real LFW photos."""
import shutil

import numpy as np
import pytest
from PIL import Image

from bench.common.cli import UserError
from recognition.faces.align import CANONICAL_CROP
from generators.morphable.decimate import decimate
from generators.morphable.fit import FitConfig, fit_landmarks
from generators.morphable.render import FaceRenderer, RenderBatch, rotation_matrix
from generators.pairs import PairsConfig, folder_photos, lfw_photos, make_pairs

pytestmark = pytest.mark.data


def synthetic_landmarks(model, rng, count):
    """Landmarks of known faces under a weak-perspective camera, with 0.5 px noise."""
    truth = {"identity": rng.normal(0, 1, (count, 40)).astype(np.float32),
             "jaw": rng.uniform(0, 0.8, count), "yaw": rng.uniform(-45, 45, count),
             "pitch": rng.uniform(-15, 15, count), "roll": rng.uniform(-10, 10, count)}
    jaw = model.expression_names.index("jawOpen")
    marks, shapes = [], []
    for n in range(count):
        identity = np.zeros(len(model.identity_basis), np.float32)
        identity[:40] = truth["identity"][n]
        expression = np.zeros(len(model.expression_basis), np.float32)
        expression[jaw] = truth["jaw"][n]
        shape = model.shape(identity, expression)[model.landmarks_68]
        shapes.append(shape)
        rotated = shape @ rotation_matrix(truth["yaw"][n], truth["pitch"][n], truth["roll"][n]).T
        marks.append(0.5 * rotated[:, :2] * np.array([1, -1]) + 54)
    return np.array(marks) + rng.normal(0, 0.5, (count, 68, 2)), truth, np.array(shapes)


def test_fit_recovers_known_pose_expression_and_shape(ict_model):
    """Documented tolerances: yaw 8 deg, pitch and roll 4 deg (mean abs), jawOpen 0.2; the fitted 3-D inner
    landmarks at most 4 mm RMS from the truth and clearly closer than the mean face (depth is weakly
    determined by 2-D landmarks, so 3-D shape is only partly recoverable)."""
    rng = np.random.default_rng(1)
    marks, truth, shapes = synthetic_landmarks(ict_model, rng, 24)
    fit = fit_landmarks(ict_model, marks)
    assert fit.error.mean() < 1.5  # pixels, against 0.5 px of noise
    assert np.abs(fit.yaw - truth["yaw"]).mean() < 8
    assert np.abs(fit.pitch - truth["pitch"]).mean() < 4 and np.abs(fit.roll - truth["roll"]).mean() < 4
    jaw = ict_model.expression_names.index("jawOpen")
    assert np.abs(fit.expression[:, jaw] - truth["jaw"]).mean() < 0.2
    fitted_shapes = []
    for n in range(24):
        identity = np.zeros(len(ict_model.identity_basis), np.float32)
        identity[:40] = fit.identity[n]
        fitted_shapes.append(ict_model.shape(identity, fit.expression[n])[ict_model.landmarks_68])
    inner = slice(17, 68)  # the contour is re-assigned to other vertices, compare the inner landmarks
    rms = np.sqrt(((np.array(fitted_shapes)[:, inner] - shapes[:, inner]) ** 2).sum(-1).mean())
    mean_face = ict_model.mean_shape[ict_model.landmarks_68][inner]
    baseline = np.sqrt(((mean_face[None] - shapes[:, inner]) ** 2).sum(-1).mean())
    assert rms < 4.0 and rms < 0.75 * baseline, f"3-D landmark RMS {rms:.2f} mm, mean face {baseline:.2f} mm"


def test_round_trip_render_fit_render(ict_model):
    model = decimate(ict_model, 0.3)
    renderer = FaceRenderer(model, CANONICAL_CROP, batch_size=2)
    rng = np.random.default_rng(5)
    identity = np.zeros(len(model.identity_basis), np.float32)
    identity[:40] = rng.normal(0, 1, 40)
    expression = np.zeros(len(model.expression_basis), np.float32)
    expression[model.expression_names.index("jawOpen")] = 0.5
    albedo = np.full((1, model.num_vertices, 3), 0.7, np.float32)
    sh = np.zeros((1, 9, 3), np.float32)
    sh[0, 0], sh[0, 2] = 1.0, 0.4

    def render(identity, expression, rotation):
        return renderer.render(RenderBatch(model.shape(identity, expression)[None], albedo, rotation[None], sh,
                                           np.array([3000.0])))

    original, landmarks = render(identity, expression, rotation_matrix(25, 5, 0))
    fit = fit_landmarks(ict_model, landmarks, FitConfig())
    fitted_identity = np.zeros_like(identity)
    fitted_identity[:40] = fit.identity[0]
    again, _ = render(fitted_identity, fit.expression[0], fit.rotation[0])
    mask_a, mask_b = original[0].max(2) > 0, again[0].max(2) > 0
    iou = (mask_a & mask_b).sum() / (mask_a | mask_b).sum()
    assert iou > 0.9, f"silhouettes overlap {iou:.2f}"
    assert np.abs(original[0].astype(int) - again[0]).mean() < 12


def test_lfw_guard_refuses_evaluation_people():
    with pytest.raises(UserError, match="only use LFW's training people"):
        lfw_photos("peopleDevTest", 1)


def test_bad_inputs_are_counted_not_fatal(lfw_root, tmp_path):
    from protocols.lfw_files import LFWLayout

    layout = LFWLayout(lfw_root)
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(layout.image_path("Colin_Powell", 1), photos / "a_good.jpg")
    shutil.copy(layout.image_path("Colin_Powell", 2), photos / "b_bad_landmarks.jpg")
    (photos / "b_bad_landmarks.pts").write_text("version: 1\nn_points: 68\n{\n1 2\n}\n")
    (photos / "c_corrupt.jpg").write_bytes(b"not a jpeg at all")
    Image.new("RGB", (250, 250), (90, 90, 90)).save(photos / "d_no_face.png")
    summary = make_pairs(PairsConfig(limit=10, chunk=4), folder_photos(photos), tmp_path / "out", progress=False)
    assert summary["pairs"] == 1
    assert summary["dropped"] == {"bad landmark file": 1, "unreadable image": 1, "no face found": 1}
    assert summary["mean_landmark_error_px_kept"] < 3.0
    assert (tmp_path / "out" / "real" / "000000.png").exists() and (tmp_path / "out" / "render" / "000000.png").exists()
    again = make_pairs(PairsConfig(limit=10, chunk=4), folder_photos(photos), tmp_path / "out", progress=False)
    assert again["pairs"] == 1 and again["seconds_per_photo_this_run"] is None  # resumed: nothing redone
