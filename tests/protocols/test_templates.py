"""Template pooling, shared by IJB-A and IJB-B/C (tested here once, by hand)."""
import numpy as np
import pandas as pd
import pytest

from protocols import ijba, ijbc
from protocols.templates import pool_templates, template_features

FEATURES = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [3.0, 4.0], [0.0, 2.0]])
TEMPLATES = np.array([1, 1, 1, 2, 2])
MEDIA = np.array([10, 10, 11, 12, 13])


def test_media_first_then_template_then_normalised():
    ids, matrix = pool_templates(FEATURES, TEMPLATES, MEDIA)
    assert ids.tolist() == [1, 2]
    # template 1: media 10 -> (1, 0), media 11 -> (0, 1); mean (0.5, 0.5) -> (1, 1)/sqrt(2)
    np.testing.assert_allclose(matrix[0], [np.sqrt(0.5), np.sqrt(0.5)])
    # template 2: media 12 -> (3, 4), media 13 -> (0, 2); mean (1.5, 3) -> (1, 2)/sqrt(5)
    np.testing.assert_allclose(matrix[1], np.array([1, 2]) / np.sqrt(5))


def test_options_normalised_faces_detector_weights_and_no_media_pooling():
    # faces normalised: template 2 = mean((0.6, 0.8), (0, 1)) = (0.3, 0.9) -> (1, 3)/sqrt(10)
    _, matrix = pool_templates(FEATURES, TEMPLATES, MEDIA, normalise_faces=True)
    np.testing.assert_allclose(matrix[1], np.array([1, 3]) / np.sqrt(10))
    # weights (detector scores): template 1 = mean(media 10: 0.5 (1, 0), media 11: 0.25 (0, 1)) -> (2, 1)/sqrt(5)
    _, matrix = pool_templates(FEATURES, TEMPLATES, MEDIA, weights=[0.5, 0.5, 0.25, 1, 1])
    np.testing.assert_allclose(matrix[0], np.array([2, 1]) / np.sqrt(5))
    # no media pooling: template 1 = mean of its three faces (2/3, 1/3) -> (2, 1)/sqrt(5)
    _, matrix = pool_templates(FEATURES, TEMPLATES, MEDIA, media_pooling=False)
    np.testing.assert_allclose(matrix[0], np.array([2, 1]) / np.sqrt(5))


def test_ijba_frame_interface_and_one_implementation_for_all_template_protocols():
    metadata = pd.DataFrame({"TEMPLATE_ID": TEMPLATES, "MEDIA_ID": MEDIA})
    pooled = template_features(metadata, FEATURES, normalise_faces=False)
    np.testing.assert_allclose(pooled[2], np.array([1, 2]) / np.sqrt(5))
    assert ijba.template_features is template_features
    assert ijbc.pool_templates is pool_templates


def test_one_weight_per_face():
    with pytest.raises(ValueError, match="one weight per face"):
        pool_templates(FEATURES, TEMPLATES, MEDIA, weights=[1.0, 2.0])
