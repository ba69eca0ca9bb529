import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from protocols.metrics import (
    accuracy_at_threshold,
    best_threshold,
    equal_error_rate,
    kfold_accuracies,
    roc,
    roc_auc,
    tar_at_far,
    verification_metrics,
)


def random_scores(n=400, seed=0, shift=1.0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    scores = rng.normal(size=n) + shift * labels
    return scores, labels


def test_auc_matches_sklearn_and_hand_value():
    scores, labels = random_scores()
    assert roc_auc(scores, labels) == pytest.approx(roc_auc_score(labels, scores))
    assert roc_auc([0.9, 0.8, 0.7, 0.6], [1, 0, 1, 0]) == pytest.approx(0.75)


@pytest.mark.parametrize(
    "genuine, impostor, expected",
    [
        ([0.9, 0.8], [0.2, 0.1], 0.0),  # perfectly separated
        ([0.1, 0.2], [0.8, 0.9], 1.0),  # perfectly inverted
        ([0.9, 0.6], [0.7, 0.2], 0.5),  # crossing exactly on a ROC point
        ([0.9, 0.8, 0.4], [0.5, 0.3, 0.1], 1 / 3),
        ([0.8, 0.8], [0.8, 0.1], 1 / 3),  # tie: crossing interpolated inside a ROC segment
        ([0.5, 0.5], [0.5, 0.5], 0.5),  # all scores equal
    ],
)
def test_eer_hand_computed(genuine, impostor, expected):
    scores = np.array(genuine + impostor)
    labels = np.array([1] * len(genuine) + [0] * len(impostor))
    assert equal_error_rate(scores, labels) == pytest.approx(expected)


def test_eer_lies_where_far_meets_frr():
    scores, labels = random_scores(2000, seed=3)
    eer = equal_error_rate(scores, labels)
    fpr, tpr, _ = roc(scores, labels)
    closest = np.argmin(np.abs(fpr - (1 - tpr)))
    assert abs(eer - fpr[closest]) < 2 / 1000


def test_tar_at_far_rule_and_minimum_impostors():
    impostor = np.arange(100) / 100  # 0.00 ... 0.99
    genuine = np.array([0.995, 0.985, 0.5])
    scores = np.concatenate([genuine, impostor])
    labels = np.array([1, 1, 1] + [0] * 100)
    # FAR <= 0.01 allows one impostor (0.99) above threshold: the threshold can drop to 0.985
    assert tar_at_far(scores, labels, 0.01) == pytest.approx(2 / 3)
    assert tar_at_far(scores, labels, 0.1) == pytest.approx(2 / 3)
    assert tar_at_far(scores, labels, 0.5) == pytest.approx(1.0)
    assert np.isnan(tar_at_far(scores, labels, 0.001))  # 100 impostors cannot measure FAR=0.001


def test_tar_at_far_counts_ties_together():
    scores = np.array([0.9, 0.9, 0.1] + [0.9, 0.9] + [0.5] * 198)
    labels = np.array([1, 1, 1] + [0] * 200)
    # the genuine 0.9s tie with two impostors: accepting them costs FAR 2/200 = 0.01
    assert tar_at_far(scores, labels, 0.01) == pytest.approx(2 / 3)
    assert tar_at_far(scores, labels, 0.005) == pytest.approx(0.0)


def test_best_threshold_separable_and_ties():
    threshold, accuracy = best_threshold([0.1, 0.2, 0.3, 0.4], [0, 0, 1, 1])
    assert threshold == pytest.approx(0.25) and accuracy == 1.0
    threshold, accuracy = best_threshold([0.5, 0.5, 0.5, 0.9], [0, 1, 0, 1])
    assert threshold == pytest.approx(0.7) and accuracy == pytest.approx(0.75)
    assert accuracy_at_threshold([0.5, 0.5, 0.5, 0.9], [0, 1, 0, 1], threshold) == pytest.approx(0.75)


def test_best_threshold_all_one_side():
    threshold, accuracy = best_threshold([0.3, 0.4, 0.5], [1, 1, 0])
    assert accuracy == pytest.approx(2 / 3)
    assert accuracy_at_threshold([0.3, 0.4, 0.5], [1, 1, 0], threshold) == pytest.approx(accuracy)


def test_kfold_thresholds_come_from_the_other_folds():
    scores = np.array([0.6, 0.7, 0.1, 0.2, 0.3, 0.4, 0.0, 0.05])
    labels = np.array([1, 1, 0, 0, 1, 1, 0, 0])
    folds = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    accuracies, thresholds = kfold_accuracies(scores, labels, folds)
    np.testing.assert_allclose(thresholds, [0.175, 0.4])
    np.testing.assert_allclose(accuracies, [0.75, 0.75])


def test_kfold_matches_brute_force_on_random_scores():
    scores, labels = random_scores(600, seed=7)
    folds = np.repeat(np.arange(10), 60)
    accuracies, _ = kfold_accuracies(scores, labels, folds)
    for fold in range(10):
        train = folds != fold
        grid = np.unique(scores[train])
        best = max(np.mean((scores[train] >= t) == labels[train]) for t in grid)
        _, chosen = best_threshold(scores[train], labels[train])
        assert chosen == pytest.approx(best)
    assert 0.5 < accuracies.mean() < 0.9


@pytest.mark.parametrize(
    "scores, labels, message",
    [
        ([0.1, 0.2], [1, 1], "both"),
        ([0.1, 0.2], [1], "labels"),
        ([0.1, np.nan], [1, 0], "NaN"),
        ([0.1, 0.2], [1, 2], r"0 \(impostor\)"),
    ],
)
def test_degenerate_inputs_are_refused(scores, labels, message):
    with pytest.raises(ValueError, match=message):
        roc_auc(scores, labels)


def test_verification_metrics_keys():
    scores, labels = random_scores(3000, seed=1, shift=2.0)
    metrics = verification_metrics(scores, labels)
    assert metrics["100-eer_percent"] == pytest.approx(100 * (1 - metrics["eer"]))
    assert 0 <= metrics["tar@far=0.001"] <= metrics["tar@far=0.01"] <= 1
    assert np.isnan(metrics["tar@far=0.0001"])  # ~1500 impostors
