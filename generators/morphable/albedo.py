"""A procedural albedo model for 3DMMs without a colour model (ICT light), seeded per identity.

- Skin tone: a point on the Monk Skin Tone scale (Monk, 2019; the ten published swatch colours,
  sRGB), drawn per identity from Beta(1.3, 1.6) over the scale's length (every tone occurs, lighter
  and middle tones somewhat more often, roughly as in face datasets), interpolated between swatches.
- Region tints: lips redder and darker; brows in a hair colour (darker on darker skin); eye sockets
  slightly darker; cheeks slightly redder; eyeballs a sclera with an iris (brown, hazel, green or
  blue) and a pupil; the mouth socket dark red.
- Low-frequency variation: a few random sinusoids over the surface, +-5%.

The same identity seed always gives the same colours, so an identity keeps its look across images.
"""
from __future__ import annotations

import numpy as np

from generators.morphable.model import MorphableModel

MONK_SKIN_TONES = np.array([
    [0xF6, 0xED, 0xE4], [0xF3, 0xE7, 0xDB], [0xF7, 0xEA, 0xD0], [0xEA, 0xDA, 0xBA], [0xD7, 0xBD, 0x96],
    [0xA0, 0x7E, 0x56], [0x82, 0x5C, 0x43], [0x60, 0x41, 0x34], [0x3A, 0x31, 0x2A], [0x29, 0x24, 0x20],
]) / 255.0
HAIR_COLOURS = np.array([[0.07, 0.05, 0.04], [0.18, 0.12, 0.07], [0.33, 0.22, 0.13], [0.55, 0.45, 0.28]])
IRIS_COLOURS = np.array([[0.25, 0.14, 0.07], [0.40, 0.30, 0.15], [0.30, 0.40, 0.25], [0.30, 0.42, 0.55]])


def skin_tone(position: float) -> np.ndarray:
    """RGB of a position in [0, 1] along the Monk scale (0 = lightest swatch, 1 = darkest)."""
    scaled = np.clip(position, 0, 1) * (len(MONK_SKIN_TONES) - 1)
    low = int(np.floor(scaled))
    high = min(low + 1, len(MONK_SKIN_TONES) - 1)
    weight = scaled - low
    return (1 - weight) * MONK_SKIN_TONES[low] + weight * MONK_SKIN_TONES[high]


def procedural_albedo(model: MorphableModel, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """(V, 3) albedo in [0, 1] and the parameters drawn, for one identity."""
    tone_position = float(rng.beta(1.3, 1.6))
    undertone = np.array([1.0, 0.97, 0.93]) ** abs(rng.normal(0.5, 0.5))  # more or less warm, never cool
    skin = np.clip(skin_tone(tone_position) * undertone * rng.uniform(0.95, 1.03), 0, 1)
    vertices = model.mean_shape
    albedo = np.tile(skin, (model.num_vertices, 1))
    frequencies = rng.normal(0, 1 / 40.0, (3, 3))  # about one cycle per 25-50 mm
    phases = rng.uniform(0, 2 * np.pi, 3)
    albedo *= (1 + 0.05 * np.sin(vertices @ frequencies.T + phases).mean(1))[:, None]
    regions = model.regions
    hair = HAIR_COLOURS[min(3, int(rng.integers(0, 4) * (1 - tone_position)))]
    iris = IRIS_COLOURS[int(rng.choice(4, p=[0.55, 0.2, 0.1, 0.15] if tone_position < 0.4 else [0.85, 0.13, 0.01, 0.01]))]
    if "lips" in regions:
        albedo[regions["lips"]] *= np.array([0.92, 0.66, 0.66]) * rng.uniform(0.85, 1.0)
    if "brows" in regions:
        albedo[regions["brows"]] = 0.35 * albedo[regions["brows"]] + 0.65 * hair
    if "eye_sockets" in regions:
        albedo[regions["eye_sockets"]] *= np.array([0.88, 0.85, 0.88])
    if model.landmarks_68 is not None:
        for cheek, nose in ((2, 31), (14, 35)):
            centre = (vertices[model.landmarks_68[cheek]] + vertices[model.landmarks_68[nose]]) / 2
            weight = np.exp(-np.sum((vertices - centre) ** 2, axis=1) / (2 * 15.0**2))
            albedo *= 1 + rng.uniform(0.0, 0.08) * weight[:, None] * np.array([1.0, -0.6, -0.6])
    for side in ("eyeball_left", "eyeball_right"):
        if side in regions:
            mask = regions[side]
            points = vertices[mask]
            centre = points.mean(0)
            forward = (points - centre) / np.linalg.norm(points - centre, axis=1, keepdims=True)
            colour = np.tile([0.86, 0.84, 0.80], (mask.sum(), 1))
            colour[forward[:, 2] > 0.85] = iris
            colour[forward[:, 2] > 0.96] = [0.03, 0.03, 0.03]
            albedo[mask] = colour
    if "mouth_socket" in regions:
        albedo[regions["mouth_socket"]] = [0.22, 0.07, 0.07]
    parameters = {"skin_tone": tone_position, "skin_rgb": skin.tolist(), "hair_rgb": hair.tolist(),
                  "iris_rgb": iris.tolist()}
    return np.clip(albedo, 0, 1).astype(np.float32), parameters
