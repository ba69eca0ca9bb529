"""Real-domain folders for the translator's tests, made from real LFW photos by the tests themselves."""
import pytest

from bench.fixtures import inverted_pairs, lfw_centre_crops


@pytest.fixture(scope="module")
def real_folder(tmp_path_factory, lfw_root):
    """A few aligned-size crops from real LFW DevTrain photos (centre crops: alignment is not under test)."""
    return lfw_centre_crops(tmp_path_factory.mktemp("real"), 12, lfw_root)


@pytest.fixture(scope="module")
def pairs_folder(tmp_path_factory, real_folder):
    return inverted_pairs(real_folder, tmp_path_factory.mktemp("pairs"))
