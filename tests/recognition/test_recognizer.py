"""The recognizer's networks and its evaluation: VGG19 at 96x96, backbones by name, pretrained weights offline,
the checkpoint as an embedder (same crops as training), the chip cache and the evaluation after training."""
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from bench.common.cli import UserError
from recognition.faces.align import CANONICAL_CROP, Aligner, CropGeometry
from recognition import models
from recognition.data import read_folder_set
from recognition.embedders import get_embedder
from recognition.evaluation import ChipCache
from recognition.models import DualHeadRecognizer, create_backbone
from recognition.train import PRESETS, train
from tests.recognition.test_trainer import (
    REAL_BASE,
    SMOKE,
    SYNTHETIC_BASE,
    write_identity_folder,
)


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("run")
    real = read_folder_set(write_identity_folder(root / "real", ["a", "b", "c"], 3, REAL_BASE))
    synthetic = read_folder_set(write_identity_folder(root / "synthetic", ["id_0", "id_1"], 3, SYNTHETIC_BASE))
    train(SMOKE, root / "out", progress=False, real=real, synthetic=synthetic)
    return root / "out", real, synthetic


def test_vgg19_at_96_computes_torchvision_vgg19_without_its_last_layer():
    """Folding the 3x3 -> 7x7 adaptive pool into fc6 changes nothing but the cost."""
    from torchvision.models import vgg19

    torch.manual_seed(0)
    reference = vgg19().eval()
    ours = models.VGG19Embedding(reference).eval()
    images = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        expected = reference.classifier[:-2](torch.flatten(reference.avgpool(reference.features(images)), 1))
        torch.testing.assert_close(ours(images), expected, rtol=1e-4, atol=1e-5)
    assert ours.fc6.in_features == 512 * 3 * 3 and ours.fc7.out_features == 4096


def test_backbones_by_name_give_one_embedding_per_image():
    backbone = create_backbone("test_resnet", "none")
    model = DualHeadRecognizer(backbone, real_identities=5, synthetic_identities=3)
    real_logits, synthetic_logits = model(torch.rand(6, 3, 96, 96), real_count=4)
    assert real_logits.shape == (4, 5) and synthetic_logits.shape == (2, 3)
    assert model.embed(torch.rand(2, 3, 96, 96)).shape == (2, backbone.embedding_size)
    with pytest.raises(UserError, match=r"unknown backbone 'mobilenetv3'.*mobilenetv3_large_100"):
        create_backbone("mobilenetv3")
    with pytest.raises(UserError, match="--pretrained"):
        create_backbone("test_resnet", "random")


def test_pretrained_weights_offline_are_a_clear_error(tmp_path, monkeypatch):
    """No weights in the caches and no network: a UserError naming --pretrained none and where to put the file."""
    monkeypatch.setattr(models, "host_reachable", lambda host: False)
    monkeypatch.setattr(models, "_hugging_face_cached", lambda name: None)
    monkeypatch.setenv("FACEBENCH_DATA", str(tmp_path))
    previous = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "hub"))
    try:
        with pytest.raises(UserError, match=r"--pretrained none.*hub/checkpoints/vgg19-dcbb9e9d\.pth"):
            create_backbone("vgg19", "imagenet")
    finally:
        torch.hub.set_dir(previous)
    with pytest.raises(UserError, match=r"--pretrained none.*models/timm/resnet18\.safetensors"):
        create_backbone("resnet18", "imagenet")


def test_pretrained_weights_from_a_local_file(tmp_path, monkeypatch):
    monkeypatch.setattr(models, "host_reachable", lambda host: False)
    monkeypatch.setenv("FACEBENCH_DATA", str(tmp_path))
    torch.manual_seed(1)
    saved = create_backbone("test_resnet", "none").network
    (tmp_path / "models" / "timm").mkdir(parents=True)
    torch.save(saved.state_dict(), tmp_path / "models" / "timm" / "test_resnet.pth")
    loaded = create_backbone("test_resnet", "imagenet").network
    for key, value in saved.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], value, msg=key)


def test_checkpoint_as_embedder_uses_the_training_geometry(smoke_run):
    out, real, _ = smoke_run
    embedder = get_embedder("recognizer", weights=out)
    assert embedder.crop == CANONICAL_CROP == CropGeometry(108, 0.25) and embedder.input_size == (96, 96)
    assert embedder.metric == "cosine"
    chip = Image.open(real.paths[0])
    tensor = embedder.transform(chip)
    pixels = torch.from_numpy(np.array(chip)).permute(2, 0, 1).float() / 255
    torch.testing.assert_close(tensor, pixels[:, 6:102, 6:102])  # the central 96x96 of the 108x108 crop
    stored = torch.load(out / "checkpoint.pt", weights_only=True)
    model = DualHeadRecognizer(create_backbone("test_resnet"), 3, 2).eval()
    model.load_state_dict(stored["model"])
    batch = torch.stack([embedder.transform(Image.open(p)) for p in real.paths[:4]])
    with torch.no_grad():
        features = embedder(batch)
        torch.testing.assert_close(features, torch.nn.functional.normalize(model.embed(batch), dim=1))
    torch.testing.assert_close(features.norm(dim=1), torch.ones(4))
    assert embedder.config["iteration"] == SMOKE.iterations
    assert embedder.cache_key == get_embedder("recognizer", weights=out / "checkpoint.pt").cache_key
    assert embedder.cache_key != get_embedder("recognizer").cache_key  # the untrained floor
    with pytest.raises(UserError, match="recognizer weights not found"):
        get_embedder("recognizer", weights=out / "missing.pt")


class CountingAligner(Aligner):
    """Chips = the image resized; 'no face' in images whose first pixel is black."""

    name = "counting"

    def __init__(self):
        super().__init__()
        self.aligned = 0

    def chips(self, images, geometry):
        self.aligned += len(images)
        found = np.array([image.getpixel((0, 0)) != (0, 0, 0) for image in images])
        return [image.resize((geometry.size, geometry.size)) for image in images], found


def test_chip_cache_aligns_each_photo_once(tmp_path):
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(1, 255, (40, 40, 3), dtype=np.uint8)) for _ in range(3)]
    images.append(Image.fromarray(np.zeros((40, 40, 3), dtype=np.uint8)))
    inner = CountingAligner()
    cache = ChipCache(inner, tmp_path)
    first, found = cache.chips(images, CANONICAL_CROP)
    again, found_again = cache.chips(images[::-1], CANONICAL_CROP)
    assert inner.aligned == 4, "the second call reads the chips back"
    assert found.tolist() == [True, True, True, False] and found_again.tolist() == found[::-1].tolist()
    for a, b in zip(first, again[::-1]):
        assert np.array_equal(np.asarray(a), np.asarray(b))
    assert cache.cache_tag == inner.cache_tag and cache.misses == 2
    cache.chips(images[:1], CropGeometry(150, 0.25))  # another geometry is another chip
    assert inner.aligned == 5


def write_tiny_lfw(root: Path) -> Path:
    """An LFW layout with 6 people x 2 photos and 2+2 pairs per View 1 file, for the evaluation path."""
    rng = np.random.default_rng(0)
    people = [f"Person_{c}" for c in "ABCDEF"]
    lfw = root / "lfw-py"
    for name in people:
        (lfw / "lfw-deepfunneled" / name).mkdir(parents=True)
        for image in (1, 2):
            pixels = rng.integers(0, 255, (250, 250, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(lfw / "lfw-deepfunneled" / name / f"{name}_{image:04d}.jpg")
    (lfw / "pairsDevTrain.txt").write_text("2\nPerson_A\t1\t2\nPerson_B\t1\t2\nPerson_A\t1\tPerson_B\t1\n"
                                          "Person_C\t1\tPerson_A\t2\n")
    (lfw / "pairsDevTest.txt").write_text("2\nPerson_D\t1\t2\nPerson_E\t1\t2\nPerson_D\t1\tPerson_F\t1\n"
                                         "Person_E\t2\tPerson_F\t2\n")
    (lfw / "peopleDevTest.txt").write_text("3\nPerson_D\t2\nPerson_E\t2\nPerson_F\t2\n")
    return root


def test_training_ends_with_the_lfw_protocol_results_beside_the_checkpoint(tmp_path):
    """After training, protocols.lfw and protocols.ijba run on the checkpoint (here on a tiny LFW layout and an
    IJB-A format fixture made from it, crops taken as aligned)."""
    from protocols.ijba_fixture import build_ijba_fixture

    root = write_tiny_lfw(tmp_path / "data")
    ijba = build_ijba_fixture(root, tmp_path / "ijba", splits=2, subjects=3, impostors=4, min_images=2,
                              progress=False)
    real = read_folder_set(write_identity_folder(tmp_path / "real", ["Stranger_1", "Stranger_2"], 2, REAL_BASE))
    config = replace(PRESETS["smoke"], evaluate=True, lfw_split="view1", eval_aligner="prealigned", ijba=str(ijba))
    train(config, tmp_path / "run", progress=False, real=real, root=root)
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["lfw"]["split"] == "view1" and 0 <= results["lfw"]["accuracy_percent"] <= 100
    assert results["iteration"] == config.iterations and results["ijba"]["splits"] == 2
    report = json.loads((tmp_path / "run" / "lfw-view1" / "metrics.json").read_text())
    assert report["config"]["embedder"] == "recognizer" and report["config"]["aligner"] == "prealigned"
    assert (tmp_path / "run" / "ijba" / "metrics.json").is_file()
    # numbers from the LFW-made fixture say so wherever they are written
    assert results["ijba"]["source"] == "IJB-A format fixture from LFW"
    assert "not IJB-A" in json.loads((tmp_path / "run" / "ijba" / "metrics.json").read_text())["title"]
    # the guard uses the same layout: a training person of View 1's test set is refused
    leaky = read_folder_set(write_identity_folder(tmp_path / "leaky", ["Person_D", "Stranger_1"], 2, REAL_BASE))
    with pytest.raises(UserError, match="identity leakage.*Person_D"):
        train(config, tmp_path / "refused", progress=False, real=leaky, root=root)
