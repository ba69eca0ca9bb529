"""300W-LP / AFLW2000-3D fits: the reader, and pairs rendered from a fit, on a fixture written by the test.

The fixture plays 3DDFA: a known face of the ICT model (standing in for the BFM, which cannot be had
here) is posed with 3DDFA's conventions, its 68 landmarks and the photo are produced from that pose,
and the .mat is written with scipy in 300W-LP's variable layout.
"""
import numpy as np
import pytest
from PIL import Image
from scipy.io import savemat

from bench.common.cli import UserError
from recognition.faces.align import CropGeometry
from generators.morphable.decimate import decimate
from generators.morphable.render import FaceRenderer, RenderBatch
from generators.morphable.w300lp import W300LPFit, read_300wlp, schema_coefficients
from generators.pairs import PairsConfig, W300LPPairMaker, make_pairs, w300lp_photos

UNIT = 1000.0  # the fixture's "file units" per mm, as BFM's micrometres


def write_fit(path, pose, shape, expression, landmarks):
    savemat(path, {"Pose_Para": np.asarray(pose)[None], "Shape_Para": shape[:, None], "Exp_Para": expression[:, None],
                   "Tex_Para": np.zeros((199, 1)), "Illum_Para": np.zeros((1, 10)), "pt3d_68": landmarks.T})


def test_reader_validates_variables(tmp_path):
    path = tmp_path / "a.mat"
    savemat(path, {"Shape_Para": np.zeros((199, 1))})
    with pytest.raises(UserError, match="missing variable 'Pose_Para'"):
        read_300wlp(path)
    write_fit(path, np.zeros(6), np.zeros(199), np.zeros(29), np.zeros((68, 3)))
    with pytest.raises(UserError, match="Pose_Para has 6 values"):
        read_300wlp(path)
    write_fit(path, np.zeros(7), np.zeros(199), np.zeros(29), np.zeros((60, 2)))
    with pytest.raises(UserError, match="pt3d_68 has shape"):
        read_300wlp(path)


@pytest.mark.data
def test_pairs_from_a_3ddfa_fit_line_up(ict_model, tmp_path):
    model = decimate(ict_model, 0.3)
    rng = np.random.default_rng(2)
    identity = np.zeros(len(model.identity_basis), np.float32)
    identity[:40] = rng.normal(0, 1, 40)
    expression = np.zeros(len(model.expression_basis), np.float32)
    expression[model.expression_names.index("jawOpen")] = 0.4
    raw_shape = identity * UNIT * np.linalg.norm(model.identity_basis.reshape(len(identity), -1), axis=1)
    raw_expression = expression * UNIT * np.linalg.norm(model.expression_basis.reshape(len(expression), -1), axis=1)
    pose = [0.1, 0.45, -0.05, 125.0, 118.0, 0.0, 0.7 / UNIT]  # pitch, yaw, roll (rad), t, scale
    fit = W300LPFit(tmp_path, *pose[:3], np.array(pose[3:6]), pose[6], raw_shape, raw_expression, None, None,
                    np.zeros((68, 2)))
    rotation = fit.rotation()
    shape = model.shape(identity, expression)
    a = pose[6] * UNIT
    posed = (shape + model.origin_mm) @ rotation.T
    image_xy = np.stack([a * posed[:, 0] + pose[3], 249 - (a * posed[:, 1] + pose[4])], axis=1)
    write_fit(tmp_path / "face.mat", pose, raw_shape, raw_expression, image_xy[model.landmarks_68])
    # the "photo": the same face drawn in the image frame
    offset = a * (rotation @ model.origin_mm)
    to_image = np.array([[a, 0, offset[0] + pose[3]], [0, -a, 249 - (offset[1] + pose[4])]])
    sh = np.zeros((1, 9, 3), np.float32)
    sh[0, 0], sh[0, 2] = 1.0, 0.3
    albedo = np.full((1, model.num_vertices, 3), 0.6, np.float32)
    photo, _ = FaceRenderer(model, CropGeometry(250, 0.25), 1).render(RenderBatch(
        shape[None], albedo, rotation[None], sh, np.array([3000.0]), model_to_crop=to_image[None]))
    Image.fromarray(photo[0]).save(tmp_path / "face.png")

    coefficients, _ = schema_coefficients(read_300wlp(tmp_path / "face.mat"), model, UNIT)
    np.testing.assert_allclose(coefficients[:40], identity[:40], atol=1e-4)

    summary = make_pairs(PairsConfig(limit=4, chunk=2), w300lp_photos(tmp_path), tmp_path / "out", progress=False,
                         maker_factory=lambda config: W300LPPairMaker(config, model, UNIT))
    assert summary["pairs"] == 1
    real = np.asarray(Image.open(tmp_path / "out" / "real" / "000000.png")).astype(int)
    render = np.asarray(Image.open(tmp_path / "out" / "render" / "000000.png")).astype(int)
    mask_real, mask_render = real.max(2) > 10, render.max(2) > 10
    iou = (mask_real & mask_render).sum() / (mask_real | mask_render).sum()
    assert iou > 0.9, f"real and render silhouettes overlap {iou:.2f}"
