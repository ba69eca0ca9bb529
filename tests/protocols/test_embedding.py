"""The embedding cache serves features only for the very files they were computed from."""
import logging
import os
import re
import shutil

import pytest
import torch

from bench.common.cli import UserError
from protocols.embedding import EmbeddingCache, FaceItem, embed_items
from recognition.embedders import get_embedder

pytestmark = pytest.mark.data


def copy_of_some_lfw(lfw_root, folder, count=3):
    """`count` LFW photos copied under `folder` (a second data root, as a user's copy would be)."""
    source = sorted((lfw_root / "lfw-py" / "lfw-deepfunneled").glob("A*/*.jpg"))[:count]
    folder.mkdir(parents=True)
    for path in source:
        shutil.copy2(path, folder / path.name)
    return [FaceItem(f"lfw/{path.stem}", folder / path.name) for path in source]


def cached_count(caplog) -> int:
    counts = [re.search(r"(\d+) of \d+ items cached", r.getMessage()) for r in caplog.records]
    return int([c for c in counts if c][-1].group(1))


def test_cache_is_keyed_by_file_content_and_data_root(lfw_root, tmp_path, caplog, monkeypatch):
    """Issue 20, item 3: keyed by dataset-relative names alone, the cache served the features of the intact
    files for a truncated copy (exit 0); now the copy is embedded and its damaged file named (exit 2)."""
    monkeypatch.setenv("FACEBENCH_CACHE", str(tmp_path / "cache"))  # this test's cache alone
    embedder = get_embedder("lbp")
    options = {"workers": 0, "progress": False}
    original = copy_of_some_lfw(lfw_root, tmp_path / "root-a")
    copy = copy_of_some_lfw(lfw_root, tmp_path / "root-b")
    assert [item.key for item in original] == [item.key for item in copy]
    with caplog.at_level(logging.INFO, logger="protocols.embedding"):
        first = embed_items(embedder, original, **options)
        embed_items(embedder, original, **options)
        assert cached_count(caplog) == 3, "unchanged files come from the cache"
        again = embed_items(embedder, copy, **options)
        assert cached_count(caplog) == 0, "another data root is not served the first root's features"
    assert (first.features == again.features).all()
    damaged = copy[1].path
    data = damaged.read_bytes()
    damaged.write_bytes(data[:2000])
    os.utime(damaged, ns=(damaged.stat().st_atime_ns, damaged.stat().st_mtime_ns + 10**9))
    with pytest.raises(UserError, match=re.escape(str(damaged))):
        embed_items(embedder, copy, **options)
    damaged.write_bytes(data)  # repaired: embedded again, in place of the features of its earlier version
    os.utime(damaged, ns=(damaged.stat().st_atime_ns, damaged.stat().st_mtime_ns + 2 * 10**9))
    with caplog.at_level(logging.INFO, logger="protocols.embedding"):
        repaired = embed_items(embedder, copy, **options)
        assert cached_count(caplog) == 2
    assert (repaired.features == first.features).all()
    cache_file = re.search(r"embedding cache (\S+):", caplog.records[-1].getMessage()).group(1)
    assert len(EmbeddingCache(cache_file).features) == 6, "one entry per file of each root"


def test_torch_embedders_run_on_the_gpu_and_others_stay_on_the_cpu(fake_cuda):
    """--device for the protocols: a torch embedder computes on the GPU from CPU-decoded batches and hands
    features back on the CPU; one left on the CPU fails as on a real GPU; non-torch embedders stay on the CPU."""
    from bench.common.devices import build_on
    from protocols.embedding import embed_batch, embedder_device
    from recognition.embedders import get_embedder

    network = build_on(fake_cuda, get_embedder, "dlib-resnet")
    assert embedder_device(network, fake_cuda) == fake_cuda
    batch = torch.zeros(2, 3, 150, 150)  # as the DataLoader or the aligner makes it: on the CPU
    features = embed_batch(network, batch, fake_cuda, flip=True)
    assert features.device.type == "cpu" and tuple(features.shape) == (2, 128)
    on_the_cpu = get_embedder("dlib-resnet")
    with pytest.raises(RuntimeError, match="same device|Expected all tensors"):
        embed_batch(on_the_cpu, batch, fake_cuda)


def test_embedders_that_are_not_torch_networks_stay_on_the_cpu():
    from protocols.embedding import embedder_device

    from recognition.embedders.registry import Embedder

    class ExternalLibrary(Embedder):  # as dlib-bin or onnxruntime: computes outside torch, holds no tensors
        def forward(self, batch):
            return batch.flatten(1)

    assert embedder_device(ExternalLibrary(), torch.device("cuda", 0)).type == "cpu"
    assert embedder_device(get_embedder("lbp"), torch.device("cuda", 0)).type == "cuda"  # torch ops on a buffer
    assert embedder_device(get_embedder("dlib-resnet"), torch.device("cuda", 0)).type == "cuda"
    assert embedder_device(get_embedder("dlib-resnet"), torch.device("cpu")).type == "cpu"


@pytest.mark.parametrize("command, arguments", [
    ("protocols.lfw", ["--embedder", "lbp", "--split", "view1"]),
    ("protocols.separation", ["--dataset", "lfw", "--embedder", "lbp"]),
    ("protocols.verification", ["--bin", "{tmp}/lfw.bin", "--embedder", "lbp"]),
    ("protocols.ijba", ["--embedder", "lbp", "--protocol-dir", "{tmp}"]),
])
def test_every_protocol_takes_device(command, arguments, tmp_path):
    """lfw, ijba, verification and separation share --device with --batch-size (one declaration): asking for a
    GPU this machine lacks is refused by each before any work."""
    import importlib

    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="--device cuda: this machine has no usable CUDA GPU"):
            importlib.import_module(command).main([a.format(tmp=tmp_path) for a in arguments] + ["--device", "cuda"])
