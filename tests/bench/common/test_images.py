"""to_rgb: 16-bit files read at their brightness, not clipped white (issue 20, item 6)."""
import io

import numpy as np
import pytest
from PIL import Image

from bench.common.images import to_rgb


def _png(array: np.ndarray) -> Image.Image:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, "PNG")
    buffer.seek(0)
    return Image.open(buffer)


def test_a_16_bit_grey_png_keeps_its_brightness():
    gradient = np.linspace(0, 65535, 64 * 64).reshape(64, 64).astype(np.uint16)
    image = _png(gradient)
    assert image.mode.startswith("I")
    clipped = np.asarray(image.convert("RGB"))
    assert (clipped == 255).mean() > 0.9  # what Pillow alone does: the bug
    rgb = np.asarray(to_rgb(image))
    assert rgb.shape == (64, 64, 3) and rgb.dtype == np.uint8
    np.testing.assert_allclose(rgb[..., 0], gradient / 257.0, atol=0.51)


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "RGB"])
def test_8_bit_modes_are_as_pillow_converts_them(mode):
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).convert(mode)
    np.testing.assert_array_equal(np.asarray(to_rgb(image)), np.asarray(image.convert("RGB")))


def test_float_and_32_bit_grey():
    ones = Image.fromarray(np.full((4, 4), 0.5, dtype=np.float32), "F")
    assert np.asarray(to_rgb(ones))[0, 0, 0] == 128
    eight_bit_in_int = Image.fromarray(np.full((4, 4), 200, dtype=np.int32), "I")
    assert np.asarray(to_rgb(eight_bit_in_int))[0, 0, 0] == 200
