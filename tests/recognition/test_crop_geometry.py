"""Crop geometries with an offset (recognition.faces.align): ArcFace's template in the project's frame,
the least-squares fit, and every aligner honouring the offset on real LFW photos."""
import numpy as np
import pytest
from PIL import Image

from recognition.faces.align import (ARCFACE_112_POINTS, ARCFACE_CROP, CANONICAL_CROP, DLIB_CHIP, CropGeometry,
                                     DlibChipAligner, MTCNNAligner, PrealignedAligner)


def test_arcface_template_in_the_projects_frame():
    """ARCFACE_CROP puts our template within 2 px of ArcFace's points (1.29 px rms); fitted() inverts template()."""
    distances = np.linalg.norm(ARCFACE_CROP.template() - ARCFACE_112_POINTS, axis=1)
    assert distances.max() < 2.0 and np.sqrt((distances ** 2).mean()) == pytest.approx(1.288, abs=0.005)
    assert ARCFACE_CROP.offset[1] == pytest.approx(0.2222, abs=1e-4)  # room above the face: the forehead
    geometry = CropGeometry(96, 0.3, (0.02, -0.1))
    assert CropGeometry.fitted(geometry.template(), 96) == geometry
    assert CropGeometry.fitted(CANONICAL_CROP.template(), 108) == CANONICAL_CROP
    assert ARCFACE_CROP.resized(224).template() == pytest.approx(ARCFACE_CROP.template() * 2)
    assert CANONICAL_CROP.tag == "108-0.25" and ARCFACE_CROP.tag == "112-0.349735-0.0056+0.2222"


SHIFTED = CropGeometry(150, 0.25, (0.0, 0.1))  # the face 0.1 unit lower: 0.1 * 150 / 1.5 = 10 px


def assert_shifted_down_10_px(centred, shifted):
    for a, b in zip(centred, shifted):
        a, b = np.asarray(a, float), np.asarray(b, float)
        assert np.abs(b[10:] - a[:-10]).mean() < 4  # same content 10 rows lower (bilinear resampling apart)
        assert np.abs(b - a).mean() > 3 * np.abs(b[10:] - a[:-10]).mean()


@pytest.mark.data
@pytest.mark.parametrize("aligner", ["mtcnn", "dlib", "prealigned"])
def test_aligners_honour_the_offset(aligner, lfw_root):
    from protocols.lfw_files import LFWLayout

    layout = LFWLayout(lfw_root)
    images = [Image.open(layout.image_path("Colin_Powell", i)).convert("RGB") for i in (1, 2)]
    if aligner == "dlib":
        pytest.importorskip("dlib", reason="the dlib aligner needs dlib-bin")
        built = DlibChipAligner()
    elif aligner == "mtcnn":
        built = MTCNNAligner()
    else:
        images, _ = MTCNNAligner().chips(images, DLIB_CHIP)
        built = PrealignedAligner(DLIB_CHIP)
    centred, found = built.chips(images, DLIB_CHIP)
    shifted, found_again = built.chips(images, SHIFTED)
    assert found.all() and found_again.all() and all(c.size == (150, 150) for c in shifted)
    assert_shifted_down_10_px(centred, shifted)
