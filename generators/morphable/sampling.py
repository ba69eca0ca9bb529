"""Seeded sampling of new identities and of each image's expression, pose, lighting and camera.

Identity i of seed s uses the generator `numpy.random.default_rng([s, i])`, image j of it
`default_rng([s, i, j + 1])`, so any face can be regenerated alone, on any machine, in any order.

Distributions (documented defaults of `SamplingConfig`, chosen to cover what the paper shows):
- identity: coefficients N(0, identity_scale^2) on every component (the model's Gaussian);
- expression, blendshape models: a Poisson(3)+1 number of active blendshapes, mostly mild weights
  Beta(1.5, 4) (mean 0.27), with probability 0.15 a strong one Beta(4, 1.5) (mean 0.73); left/right
  pairs are moved together with probability 0.7; eye-gaze shapes at most 0.5. PCA models:
  N(0, 0.7^2) per component, 1.5^2 for a strong image;
- pose: yaw from N(0, 25 deg) with probability 0.6, otherwise uniform on +-75 deg, clipped to +-75;
  pitch N(0, 10 deg) clipped to +-30; roll N(0, 5 deg) clipped to +-20;
- lighting: ambient U(0.45, 0.8) plus one directional light (intensity U(0.1, 0.5), azimuth
  U(-90, 90) deg, elevation U(-30, 60) deg, in front of the face), each channel tinted by N(1, 0.03);
  with probability 0.05 extreme: ambient U(0.15, 0.3), directional U(0.7, 1.1); converted to the 9
  spherical-harmonics coefficients per channel;
- camera distance U(450, 1500) mm (perspective strength; alignment removes the scale);
- exposure per identity: light times sqrt(0.45 / mean face albedo luminance), clipped to [0.85, 2.2],
  a partial auto-exposure as cameras apply (dark skin stays darker, but is not rendered near black).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from generators.morphable.albedo import procedural_albedo
from generators.morphable.model import MorphableModel

# Real SH normalisation constants Y_k = N_k * poly_k, poly = [1, y, z, x, xy, yz, 3z^2 - 1, xz, x^2 - y^2]
_SH_NORMALISATION = np.array([0.282095, 0.488603, 0.488603, 0.488603, 1.092548, 1.092548, 0.315392, 1.092548, 0.546274])
_LAMBERT_BAND0 = np.pi * 0.282095  # irradiance of a unit constant radiance coefficient


@dataclass(frozen=True)
class SamplingConfig:
    identity_scale: float = 1.0
    yaw_max_deg: float = 75.0
    yaw_frontal_std_deg: float = 25.0
    yaw_uniform_probability: float = 0.4
    pitch_std_deg: float = 10.0
    pitch_max_deg: float = 30.0
    roll_std_deg: float = 5.0
    roll_max_deg: float = 20.0
    strong_expression_probability: float = 0.15
    extreme_light_probability: float = 0.05
    distance_range_mm: tuple[float, float] = (450.0, 1500.0)


# Pose distributions by name (`--pose`). `wide` covers what the paper's figures show (yaw up to +-75
# degrees, 40% of images uniform over that range). `lfw` matches the pose of LFW photos: yaw, pitch and
# roll of the 3DMM fits of 2,400 LFW DevTrain photos (`python -m generators.pose --pairs runs/pairs`,
# results/pose/): yaw std 11.3 deg, |yaw| 99th percentile 27 deg and max 34; pitch std 7.6; roll, left
# after the 5-point alignment both domains share, std 1.7 (the renders are aligned the same way).
POSE_DISTRIBUTIONS: dict[str, dict] = {
    "wide": {},
    "lfw": {"yaw_frontal_std_deg": 11.3, "yaw_uniform_probability": 0.0, "yaw_max_deg": 35.0,
            "pitch_std_deg": 7.6, "pitch_max_deg": 25.0},
}


def add_pose_argument(parser, default: str = "wide") -> None:
    """--pose, the same on every command that renders (render, train, synthesize); `default` says what
    the command does without it."""
    parser.add_argument("--pose", choices=sorted(POSE_DISTRIBUTIONS),
                        help="pose distribution: wide (yaw to +-75 deg) or lfw (matched to LFW photos' 3DMM fits); "
                             f"default: {default}")


def sampling_config(pose: str) -> SamplingConfig:
    """The sampling configuration of a named pose distribution (`POSE_DISTRIBUTIONS`)."""
    if pose not in POSE_DISTRIBUTIONS:
        raise ValueError(f"pose distribution {pose!r}: choose from {', '.join(POSE_DISTRIBUTIONS)}")
    return SamplingConfig(**POSE_DISTRIBUTIONS[pose])


@dataclass
class IdentitySample:
    index: int
    identity: np.ndarray  # (K_id,)
    albedo: np.ndarray  # (V, 3)
    albedo_parameters: dict
    exposure: float = 1.0  # light multiplier: partial auto-exposure, so dark skin is not rendered near black


@dataclass
class ImageSample:
    identity: int
    image: int
    expression: np.ndarray
    yaw: float
    pitch: float
    roll: float
    sh: np.ndarray  # (9, 3)
    distance_mm: float
    strong_expression: bool
    extreme_light: bool

    def record(self, expression_names: list[str]) -> dict:
        """A flat dict of every sampled parameter, for the metadata table."""
        row = {"identity": self.identity, "image": self.image, "yaw": self.yaw, "pitch": self.pitch,
               "roll": self.roll, "distance_mm": self.distance_mm, "strong_expression": self.strong_expression,
               "extreme_light": self.extreme_light}
        names = expression_names or [f"expression_{k}" for k in range(len(self.expression))]
        row.update({f"exp_{name}": float(w) for name, w in zip(names, self.expression)})
        row.update({f"sh_{k}_{c}": float(self.sh[k, i]) for k in range(9) for i, c in enumerate("rgb")})
        return row


def directional_sh(direction: np.ndarray, intensity: np.ndarray) -> np.ndarray:
    """(9, 3) SH radiance coefficients of a directional light (per-channel intensity)."""
    x, y, z = direction / np.linalg.norm(direction)
    poly = np.array([1, y, z, x, x * y, y * z, 3 * z * z - 1, x * z, x * x - y * y])
    return (_SH_NORMALISATION * poly)[:, None] * intensity[None, :]


def sample_identity(model: MorphableModel, seed: int, index: int, config: SamplingConfig = SamplingConfig()) -> IdentitySample:
    rng = np.random.default_rng([seed, index])
    identity = rng.normal(0, config.identity_scale, len(model.identity_basis)).astype(np.float32)
    if model.albedo_mean is not None:
        count = 0 if model.albedo_basis is None else len(model.albedo_basis)
        colour_coefficients = rng.normal(0, 1, count)
        albedo, parameters = model.albedo(colour_coefficients), {"colour_pca": colour_coefficients.tolist()}
    else:
        albedo, parameters = procedural_albedo(model, rng)
    face = model.regions.get("face", np.ones(model.num_vertices, dtype=bool))
    luminance = float((albedo[face] @ np.array([0.2126, 0.7152, 0.0722])).mean())
    exposure = float(np.clip((0.45 / max(luminance, 1e-3)) ** 0.5, 0.85, 2.2))
    parameters["exposure"] = exposure
    return IdentitySample(index, identity, albedo, parameters, exposure)


def _blendshape_weights(model: MorphableModel, rng: np.random.Generator, strong: bool) -> np.ndarray:
    names = model.expression_names
    weights = np.zeros(len(model.expression_basis), dtype=np.float32)
    active = rng.choice(len(weights), size=min(len(weights), rng.poisson(3) + 1), replace=False)
    for k in active:
        weights[k] = rng.beta(1.5, 4)
    if strong:
        weights[rng.integers(len(weights))] = rng.beta(4, 1.5)
    if names:
        for k, name in enumerate(names):
            if name.endswith("_L") and rng.random() < 0.7:
                partner = names.index(name[:-2] + "_R") if name[:-2] + "_R" in names else None
                if partner is not None:
                    weights[partner] = weights[k] = max(weights[k], weights[partner])
            if name.startswith("eyeLook"):
                weights[k] = min(weights[k], 0.5)
    return weights


def sample_image(model: MorphableModel, seed: int, identity: int, image: int,
                 config: SamplingConfig = SamplingConfig()) -> ImageSample:
    rng = np.random.default_rng([seed, identity, image + 1])
    strong = bool(rng.random() < config.strong_expression_probability)
    if model.expression_kind == "blendshapes":
        expression = _blendshape_weights(model, rng, strong)
    else:
        expression = rng.normal(0, 1.5 if strong else 0.7, len(model.expression_basis)).astype(np.float32)
    if rng.random() < config.yaw_uniform_probability:
        yaw = rng.uniform(-config.yaw_max_deg, config.yaw_max_deg)
    else:
        yaw = rng.normal(0, config.yaw_frontal_std_deg)
    yaw = float(np.clip(yaw, -config.yaw_max_deg, config.yaw_max_deg))
    pitch = float(np.clip(rng.normal(0, config.pitch_std_deg), -config.pitch_max_deg, config.pitch_max_deg))
    roll = float(np.clip(rng.normal(0, config.roll_std_deg), -config.roll_max_deg, config.roll_max_deg))
    extreme = bool(rng.random() < config.extreme_light_probability)
    ambient = rng.uniform(0.15, 0.3) if extreme else rng.uniform(0.45, 0.8)
    strength = rng.uniform(0.7, 1.1) if extreme else rng.uniform(0.1, 0.5)
    azimuth, elevation = np.radians(rng.uniform(-90, 90)), np.radians(rng.uniform(-30, 60))
    direction = np.array([np.sin(azimuth) * np.cos(elevation), np.sin(elevation), np.cos(azimuth) * np.cos(elevation)])
    tint = rng.normal(1, 0.03, 3).clip(0.92, 1.08)
    sh = directional_sh(direction, strength * tint)
    sh[0] += ambient * tint / _LAMBERT_BAND0
    distance = float(rng.uniform(*config.distance_range_mm))
    return ImageSample(identity, image, expression, yaw, pitch, roll, sh.astype(np.float32), distance, strong, extreme)


def config_dict(config: SamplingConfig) -> dict:
    return asdict(config)
