"""Embedding on a real GPU, for anyone who has one (`gpu` marker: skipped here with the reason).

This machine has none: dry-run on the CPU (FACEBENCH_GPU_TESTS_ON=cpu), which checks the test's logic only.
The fake-GPU test in test_embedding.py covers the device placement here.
"""
import numpy as np
import pytest

from protocols.embedding import FaceItem, embed_items
from recognition.embedders import get_embedder

pytestmark = [pytest.mark.gpu, pytest.mark.data]


def test_mtcnn_and_the_dlib_port_on_the_gpu_give_the_cpu_s_features(lfw_root, gpu_device):
    """MTCNN alignment and the embedder on the GPU, decoding in pinned workers: features as on the CPU."""
    photos = sorted((lfw_root / "lfw-py" / "lfw-deepfunneled").glob("A*/*.jpg"))[:6]
    items = [FaceItem(f"lfw/{path.stem}", path) for path in photos]
    embedder = get_embedder("dlib-resnet")
    on_cpu = embed_items(embedder, items, use_cache=False, progress=False, device="cpu").features
    on_gpu = embed_items(embedder, items, use_cache=False, progress=False, device=gpu_device, flip=False).features
    cosines = (on_cpu * on_gpu).sum(1) / np.linalg.norm(on_cpu, axis=1) / np.linalg.norm(on_gpu, axis=1)
    assert cosines.min() > 0.999, cosines
