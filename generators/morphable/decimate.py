"""Fewer triangles for small renders: quadric decimation of the mean mesh, kept linear.

At 108x108 a face of 30K triangles spends most of the rasteriser's time on sub-pixel triangles.
`fast-simplification` decimates the mean shape; its edge collapses define a subset of the original
vertices and a new triangulation of them. Because the kept vertices are original vertices, every
basis (identity, expression, albedo) is simply indexed, so the decimated model stays linear in its
coefficients. Landmarks on collapsed vertices move to the vertex they were collapsed into.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from generators.morphable.model import MorphableModel


def decimate(model: MorphableModel, keep_fraction: float) -> MorphableModel:
    """The model with about `keep_fraction` of its triangles (1.0 returns it unchanged)."""
    if keep_fraction >= 1.0:
        return model
    import fast_simplification

    mean = model.mean_shape.astype(np.float32)
    _, _, collapses = fast_simplification.simplify(mean, model.triangles.astype(np.int64),
                                                   target_reduction=1.0 - keep_fraction, return_collapses=True)
    _, triangles, mapping = fast_simplification.replay_simplification(mean, model.triangles.astype(np.int64), collapses)
    survivors = np.setdiff1d(np.arange(model.num_vertices), collapses[:, 1])
    original = np.full(mapping.max() + 1, -1)
    original[mapping[survivors]] = survivors
    if (original < 0).any():
        raise RuntimeError("decimation left a vertex without an original")

    def pick(array):
        return None if array is None else array[..., original, :] if array.ndim == 3 else array[original]

    landmarks = None if model.landmarks_68 is None else mapping[model.landmarks_68].astype(np.int32)
    return replace(
        model,
        name=f"{model.name}-decimated{keep_fraction:g}",
        mean_shape=model.mean_shape[original],
        identity_basis=model.identity_basis[:, original],
        expression_basis=model.expression_basis[:, original],
        triangles=triangles.astype(np.int32),
        albedo_mean=pick(model.albedo_mean),
        albedo_basis=None if model.albedo_basis is None else model.albedo_basis[:, original],
        uvs=pick(model.uvs),
        landmarks_68=landmarks,
        regions={name: mask[original] for name, mask in model.regions.items()},
    )
