"""Five-point alignment: the similarity fit, crop geometries, MTCNN on real faces, the fallback."""
import numpy as np
import pytest
from PIL import Image

from recognition.faces.align import (
    CANONICAL_CROP,
    DLIB_CHIP,
    FIVE_POINT_TEMPLATE,
    CropGeometry,
    MTCNNAligner,
    landmarks_in_centred_box,
    similarity_transform,
    warp_to_crop,
)
from protocols.lfw_files import LFWLayout


def test_similarity_transform_recovers_a_known_one():
    angle, scale, shift = 0.3, 1.7, np.array([12.0, -5.0])
    rotation = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    source = FIVE_POINT_TEMPLATE * 100
    target = source @ rotation.T + shift
    matrix = similarity_transform(source, target)
    np.testing.assert_allclose(matrix[:, :2], rotation, atol=1e-9)
    np.testing.assert_allclose(matrix[:, 2], shift, atol=1e-9)


def test_geometries_share_one_template():
    # a canonical crop resized to 150 is a dlib chip: same template up to scale
    np.testing.assert_allclose(CANONICAL_CROP.template() * (150 / 108), DLIB_CHIP.template(), atol=1e-9)
    assert CropGeometry(100, 0.0).template() == pytest.approx(FIVE_POINT_TEMPLATE * 100)


def test_an_offset_moves_the_face_vertically_only():
    centred, higher = CropGeometry(96, 0.1), CropGeometry(96, 0.1, (0.0, -0.1))
    moved = higher.template() - centred.template()
    np.testing.assert_allclose(moved[:, 0], 0, atol=1e-12)
    np.testing.assert_allclose(moved[:, 1], -0.1 / 1.2 * 96)
    (left, top), (right, bottom) = higher.to_pixels([[0, 0], [1, 1]])
    assert (left, right) == pytest.approx((8.0, 88.0)) and (top, bottom) == pytest.approx((0.0, 80.0))
    assert centred.tag == "96-0.1" and CANONICAL_CROP.tag == "108-0.25" and higher.tag != centred.tag


def test_warp_puts_landmarks_on_the_template():
    """Draw dots at known landmarks, warp, and find the dots at the template positions."""
    image = Image.new("RGB", (300, 260), (0, 0, 0))
    landmarks = landmarks_in_centred_box(300, 260) + np.array([7.0, -4.0])
    pixels = np.asarray(image).copy()
    for x, y in landmarks.round().astype(int):
        pixels[y - 1 : y + 2, x - 1 : x + 2] = 255
    crop = np.asarray(warp_to_crop(Image.fromarray(pixels), landmarks, CANONICAL_CROP))[..., 0]
    for x, y in CANONICAL_CROP.template():
        window = crop[int(y) - 3 : int(y) + 4, int(x) - 3 : int(x) + 4]
        assert window.max() > 100, f"no landmark dot near template point ({x:.1f}, {y:.1f})"


@pytest.fixture(scope="module")
def aligner():
    return MTCNNAligner()


def test_no_face_uses_fallback_and_is_counted(aligner):
    before = aligner.misses
    chips, found = aligner.chips([Image.new("RGB", (250, 250), (128, 128, 128))], CANONICAL_CROP)
    assert not found[0] and aligner.misses == before + 1
    assert chips[0].size == (108, 108)


@pytest.mark.data
def test_mtcnn_alignment_of_real_faces_lands_on_the_template(aligner, lfw_root):
    """Aligned crops of real LFW faces, detected again, have their landmarks on the template.

    A loose geometry (padding 1.0) is used because MTCNN itself is unreliable on tight chips."""
    layout = LFWLayout(lfw_root)
    images = [Image.open(layout.image_path("Colin_Powell", i)).convert("RGB") for i in range(1, 9)]
    loose = CropGeometry(200, 1.0)
    chips, found = aligner.chips(images, loose)
    assert found.all()
    points, again = aligner.landmarks(chips)
    assert again.all()
    error = np.linalg.norm(points - loose.template(), axis=2).mean()
    assert error < 2.5, f"re-detected landmarks are {error:.1f} px from the template (eye distance ~36 px)"


@pytest.mark.data
def test_openface_geometry_is_measured_near_the_embedders_crop(lfw_root):
    """30 DevTrain photos already give OPENFACE_CROP's padding and shift to within a few hundredths."""
    pytest.importorskip("dlib", reason="OpenFace's alignment uses dlib-bin's 68-point landmarks")
    from generators.align import derive_openface_geometry
    from recognition.embedders.nn4 import OPENFACE_CROP

    measured = derive_openface_geometry(lfw_root, limit=30)
    assert measured["faces"] >= 28
    assert measured["padding"] == pytest.approx(OPENFACE_CROP.padding, abs=0.03)
    assert measured["shift"] == pytest.approx(OPENFACE_CROP.offset[1], abs=0.03)
    assert abs(measured["horizontal_offset"]) < 0.02 and measured["rms_px"] < 3
