"""Realism figures: the Fréchet distance and the image statistics behave as their definitions say."""
import numpy as np
import pytest
from PIL import Image, ImageFilter

from protocols.realism import (
    colourfulness,
    frechet_distance,
    high_frequency_energy,
    image_statistics,
    realism_table,
)


def test_frechet_distance_of_gaussians_matches_the_closed_form():
    rng = np.random.default_rng(0)
    a = rng.normal(0, 1, (20_000, 4))
    b = rng.normal(0, 2, (20_000, 4)) + np.array([3, 0, 0, 0])
    # diagonal covariances: |mu|^2 + sum (sigma_a - sigma_b)^2 = 9 + 4 * (1 - 2)^2 = 13
    assert frechet_distance(a, b) == pytest.approx(13, rel=0.03)
    assert frechet_distance(a, a) == pytest.approx(0, abs=1e-6)
    assert frechet_distance(a, b) == pytest.approx(frechet_distance(b, a), rel=1e-6)


def test_high_frequency_energy_separates_noise_from_smooth_images():
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (4, 108, 108, 3)).astype(np.uint8)
    ramp = np.broadcast_to(np.linspace(0, 255, 108)[None, :, None, None], (4, 108, 108, 3)).astype(np.uint8)
    blurred = np.stack([np.asarray(Image.fromarray(n).filter(ImageFilter.GaussianBlur(2))) for n in noise])
    assert high_frequency_energy(noise).mean() > 0.5  # white noise: the share of the band's area (~0.8)
    assert high_frequency_energy(ramp).mean() < 0.01
    assert high_frequency_energy(blurred).mean() < 0.1 * high_frequency_energy(noise).mean()


def test_colourfulness_and_face_colour():
    gray = np.full((2, 108, 108, 3), 128, np.uint8)
    red = gray.copy()
    red[..., 0] = 220
    assert colourfulness(gray).max() == 0 and colourfulness(red).min() > 20
    stats = image_statistics(red)
    assert stats["mean_r"] == 220 and stats["mean_g"] == 128 and stats["std_r"] == 0


def test_realism_table_floor_is_below_a_shifted_set():
    rng = np.random.default_rng(1)
    real = rng.normal(0, 1, (400, 8))
    features = {"real": real, "near": rng.normal(0, 1, (300, 8)), "far": rng.normal(1, 1, (300, 8))}
    crops = {name: rng.integers(0, 256, (3, 108, 108, 3)).astype(np.uint8) for name in features}
    table = realism_table(features, crops, "real").set_index("dataset")
    assert (table.fd_samples == 200).all()  # half of the reference, the largest size every set can give
    distance = table["frechet_to_real"]
    assert distance["real"] < distance["far"] and distance["near"] < distance["far"]
    assert distance["far"] == pytest.approx(8, rel=0.3)  # |mu|^2 = 8 in 8 dimensions


def test_a_sets_frechet_distance_does_not_depend_on_the_other_sets_in_the_table():
    rng = np.random.default_rng(2)
    features = {"real": rng.normal(0, 1, (400, 8)), "a": rng.normal(0.5, 1, (300, 8)), "b": rng.normal(1, 1, (300, 8))}
    crops = {name: rng.integers(0, 256, (2, 108, 108, 3)).astype(np.uint8) for name in features}
    with_both = realism_table(features, crops, "real").set_index("dataset")["frechet_to_real"]
    without_a = realism_table({k: v for k, v in features.items() if k != "a"}, crops, "real")
    without_a = without_a.set_index("dataset")["frechet_to_real"]
    assert with_both["b"] == without_a["b"] and with_both["real"] == without_a["real"]
    # and the subsample is a real draw: a different seed gives a different distance
    assert realism_table(features, crops, "real", seed=1).set_index("dataset")["frechet_to_real"]["b"] != with_both["b"]
