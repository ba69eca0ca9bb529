"""Template features: faces pooled within each media, then media pooled within each template (IJB-A, IJB-B, IJB-C).

One implementation for every template protocol. A template is a set of faces of one subject from several
media (a photo, or the frames of one video); pooling averages a template's faces within each media first, so
a video of 200 frames counts as much as one photo, then averages the media, and L2-normalises the result.
Options the field reports (insightface's IJB-B/C evaluation, `recognition/_evaluation_/ijb`):
- `normalise_faces`: each face feature L2-normalised before pooling (the project's convention for cosine
  embedders; insightface's N0 mode). Without it a feature's norm weights it in the average.
- `weights`: each face feature multiplied by a weight first, e.g. its detector score (insightface's D1 mode).
- `media_pooling=False`: a template's faces averaged directly, every face counting once.
Flip fusion happens before, in `protocols.embedding.embed_items` (f(x) + f(mirror x)).
"""
from __future__ import annotations

import numpy as np
import pandas as pd


def pool_templates(features: np.ndarray, templates, media, weights=None, normalise_faces: bool = False,
                   media_pooling: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(template ids sorted, (T, D) L2-normalised template features) from (N, D) face features, the N faces'
    template and media ids, and optional (N,) face weights; see the module docstring for the options."""
    features = np.asarray(features, dtype=np.float64)
    templates, media = np.asarray(templates), np.asarray(media)
    if features.ndim != 2 or not len(features) == len(templates) == len(media):
        raise ValueError(f"need (N, D) features and N template and media ids, got {features.shape}, "
                         f"{templates.shape}, {media.shape}")
    if normalise_faces:
        features = features / np.linalg.norm(features, axis=1, keepdims=True).clip(1e-12)
    if weights is not None:
        weights = np.asarray(weights, dtype=np.float64)
        if weights.shape != (len(features),):
            raise ValueError(f"need one weight per face ({len(features)}), got shape {weights.shape}")
        features = features * weights[:, None]
    frame = pd.DataFrame(features)
    frame["template"], frame["media"] = templates, media
    if media_pooling:
        per_template = frame.groupby(["template", "media"]).mean().groupby(level="template").mean()
    else:
        per_template = frame.drop(columns="media").groupby("template").mean()
    matrix = per_template.to_numpy()
    matrix = matrix / np.linalg.norm(matrix, axis=1, keepdims=True).clip(1e-12)
    return per_template.index.to_numpy(), matrix


def template_features(metadata: pd.DataFrame, face_features: np.ndarray, normalise_faces: bool) -> dict[int, np.ndarray]:
    """Template id -> pooled feature, for a frame with TEMPLATE_ID and MEDIA_ID columns (IJB-A's metadata)."""
    ids, matrix = pool_templates(face_features, metadata.TEMPLATE_ID.to_numpy(), metadata.MEDIA_ID.to_numpy(),
                                 normalise_faces=normalise_faces)
    return dict(zip(ids.tolist(), matrix))
