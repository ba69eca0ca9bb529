"""Verification metrics from similarity scores (higher = more likely the same person).

Conventions, stated once for every protocol:
- `labels` are 1 for genuine (same identity) pairs and 0 for impostor pairs.
- ROC points come from scikit-learn's `roc_curve` with every threshold kept (no intermediate drop).
- EER is where the false accept rate equals the false reject rate, linearly interpolated between the
  two ROC points that bracket the crossing; the paper reports 100% - EER.
- TAR@FAR=f is the largest true accept rate among ROC points whose false accept rate is <= f
  (no interpolation). It is reported only when there are at least 1/f impostor pairs, otherwise NaN:
  with fewer, the smallest nonzero FAR that can be observed is already above f.
- Threshold accuracy predicts 'same' when score >= threshold.

Identification (1:N, open set, as NIST's IJB-B/C reports; `identification_metrics`):
- A search is *mated* when the probe's subject has a template in the gallery, else *non-mated*.
- Rank of a mated search: 1 + the number of non-mate gallery templates scoring strictly above its best mate.
  Rank-k is the fraction of mated searches with rank <= k (closed-set CMC over the mated searches).
- TPIR@FPIR=f: among thresholds that accept at most a fraction f of the non-mated searches' top scores
  (accept = top score above the threshold), the largest fraction of mated searches whose mate is at rank 1
  and scores above it. With m = floor(f x non-mated searches), that threshold is the (m+1)-th highest
  non-mated top score, exclusive. Reported only with at least 1/f non-mated searches, otherwise NaN.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve

DEFAULT_FARS = (1e-2, 1e-3, 1e-4)


def _validate(scores, labels) -> tuple[np.ndarray, np.ndarray]:
    scores = np.asarray(scores, dtype=np.float64).ravel()
    labels = np.asarray(labels).ravel()
    if scores.shape != labels.shape:
        raise ValueError(f"{scores.size} scores but {labels.size} labels")
    if not np.all(np.isfinite(scores)):
        raise ValueError("scores contain NaN or infinity")
    if not np.isin(labels, (0, 1)).all():
        raise ValueError("labels must be 0 (impostor) or 1 (genuine)")
    labels = labels.astype(np.int64)
    if labels.min(initial=1) == labels.max(initial=0):
        raise ValueError("need both genuine and impostor pairs")
    return scores, labels


def roc(scores, labels) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(false accept rates, true accept rates, thresholds), every threshold kept."""
    scores, labels = _validate(scores, labels)
    return roc_curve(labels, scores, drop_intermediate=False)


def roc_auc(scores, labels) -> float:
    scores, labels = _validate(scores, labels)
    return float(roc_auc_score(labels, scores))


def equal_error_rate(scores, labels) -> float:
    """EER in [0, 1]: FAR = FRR, interpolated between the ROC points around the crossing."""
    fpr, tpr, _ = roc(scores, labels)
    fnr = 1.0 - tpr
    gap = fpr - fnr  # rises from -1 (threshold +inf) to +1 (threshold -inf)
    after = int(np.argmax(gap >= 0))
    if after == 0:
        return float(fpr[0])
    before = after - 1
    weight = gap[before] / (gap[before] - gap[after])
    return float(fpr[before] + weight * (fpr[after] - fpr[before]))


def tar_at_far(scores, labels, far: float) -> float:
    """Largest TAR with FAR <= `far`; NaN when there are fewer than 1/far impostor pairs."""
    scores, labels = _validate(scores, labels)
    impostors = int((labels == 0).sum())
    if impostors * far < 1 - 1e-9:
        return float("nan")
    fpr, tpr, _ = roc_curve(labels, scores, drop_intermediate=False)
    allowed = fpr <= far + 1e-12
    return float(tpr[allowed].max())


def accuracy_at_threshold(scores, labels, threshold: float) -> float:
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels)
    return float(np.mean((scores >= threshold) == (labels == 1)))


def best_threshold(scores, labels) -> tuple[float, float]:
    """The threshold that maximises accuracy on (scores, labels), and that accuracy.

    Candidates lie halfway between consecutive distinct scores, plus one below the smallest and one
    above the largest, so tied scores always fall on the same side. Among equally good candidates the
    middle one (in score order) is taken, which keeps the choice deterministic and away from the edges.
    """
    scores, labels = _validate(scores, labels)
    order = np.argsort(scores, kind="stable")
    sorted_scores, sorted_labels = scores[order], labels[order]
    n = scores.size
    # candidate k: predict 'same' for sorted positions >= k
    impostors_below = np.concatenate([[0], np.cumsum(sorted_labels == 0)])
    genuine_below = np.concatenate([[0], np.cumsum(sorted_labels == 1)])
    correct = impostors_below + (genuine_below[-1] - genuine_below)
    valid = np.ones(n + 1, dtype=bool)
    valid[1:n] = sorted_scores[1:] > sorted_scores[:-1]
    candidates = np.flatnonzero(valid & (correct == correct[valid].max()))
    k = int(candidates[len(candidates) // 2])
    if k == 0:
        threshold = float(np.nextafter(sorted_scores[0], -np.inf))
    elif k == n:
        threshold = float(np.nextafter(sorted_scores[-1], np.inf))
    else:
        threshold = float((sorted_scores[k - 1] + sorted_scores[k]) / 2)
    return threshold, float(correct[k] / n)


def kfold_accuracies(scores, labels, folds) -> tuple[np.ndarray, np.ndarray]:
    """Per-fold accuracy with the threshold chosen on the other folds (LFW's unrestricted protocol).

    Returns (accuracies, thresholds), one entry per fold in sorted fold order.
    """
    scores, labels = _validate(scores, labels)
    folds = np.asarray(folds).ravel()
    if folds.shape != scores.shape:
        raise ValueError("need one fold id per pair")
    accuracies, thresholds = [], []
    for fold in np.unique(folds):
        held_out = folds == fold
        threshold, _ = best_threshold(scores[~held_out], labels[~held_out])
        thresholds.append(threshold)
        accuracies.append(accuracy_at_threshold(scores[held_out], labels[held_out], threshold))
    return np.asarray(accuracies), np.asarray(thresholds)


def verification_metrics(scores, labels, fars: Sequence[float] = DEFAULT_FARS) -> dict[str, float]:
    """Threshold-free figures of one score set: AUC, EER, 100%-EER and TAR at each FAR (percent where named)."""
    eer = equal_error_rate(scores, labels)
    metrics = {
        "auc": roc_auc(scores, labels),
        "eer": eer,
        "100-eer_percent": 100.0 * (1.0 - eer),
        "pairs": int(np.size(scores)),
        "genuine_pairs": int(np.sum(np.asarray(labels) == 1)),
    }
    for far in fars:
        metrics[far_key(far)] = tar_at_far(scores, labels, far)
    return metrics


def far_key(far: float) -> str:
    return f"tar@far={far:g}"


def tpir_at_fpir(mate_scores, mate_ranks, nonmated_top_scores, fpir: float) -> float:
    """Fraction of mated searches found at rank 1 above the threshold that keeps FPIR <= `fpir`; NaN with fewer
    than 1/fpir non-mated searches (see the module docstring)."""
    mate_scores, mate_ranks = np.asarray(mate_scores, dtype=np.float64), np.asarray(mate_ranks)
    nonmated = np.sort(np.asarray(nonmated_top_scores, dtype=np.float64))[::-1]
    if nonmated.size * fpir < 1 - 1e-9 or mate_scores.size == 0:
        return float("nan")
    allowed = int(np.floor(fpir * nonmated.size + 1e-9))
    threshold = nonmated[allowed] if allowed < nonmated.size else -np.inf
    return float(np.mean((mate_ranks == 1) & (mate_scores > threshold)))


def identification_metrics(similarity, probe_subjects, gallery_subjects, ranks: Sequence[int] = (1, 5, 10),
                           fpirs: Sequence[float] = (0.01, 0.1)) -> dict[str, float]:
    """Open-set 1:N figures of a (probes, gallery templates) similarity matrix: rank-k and TPIR@FPIR (module docstring)."""
    similarity = np.asarray(similarity, dtype=np.float64)
    probe_subjects, gallery_subjects = np.asarray(probe_subjects).ravel(), np.asarray(gallery_subjects).ravel()
    if similarity.shape != (probe_subjects.size, gallery_subjects.size):
        raise ValueError(f"similarity {similarity.shape} does not match {probe_subjects.size} probes and "
                         f"{gallery_subjects.size} gallery templates")
    if not np.all(np.isfinite(similarity)):
        raise ValueError("similarities contain NaN or infinity")
    mates = probe_subjects[:, None] == gallery_subjects[None, :]
    mated = mates.any(axis=1)
    if not mated.any():
        raise ValueError("no probe has a mate in the gallery")
    mate_scores = np.where(mates, similarity, -np.inf).max(axis=1)[mated]
    mate_ranks = 1 + ((similarity[mated] > mate_scores[:, None]) & ~mates[mated]).sum(axis=1)
    nonmated_top = similarity[~mated].max(axis=1) if (~mated).any() else np.zeros(0)
    metrics: dict[str, float] = {"mated_searches": int(mated.sum()), "nonmated_searches": int((~mated).sum()),
                                 "gallery_templates": int(gallery_subjects.size)}
    for k in ranks:
        metrics[f"rank-{k}"] = float(np.mean(mate_ranks <= k))
    for fpir in fpirs:
        metrics[f"tpir@fpir={fpir:g}"] = tpir_at_fpir(mate_scores, mate_ranks, nonmated_top, fpir)
    return metrics
