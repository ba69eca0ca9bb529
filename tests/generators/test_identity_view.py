"""C's view of G(x): OpenFace's nn4.small2 as C (the paper's), and each C seeing faces framed as it was trained."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image, ImageFilter

from generators.identity_view import IdentityView, network_view
from generators.train import TrainConfig
from protocols.lfw_files import LFWLayout
from recognition.embedders.nn4 import OPENFACE_CROP
from recognition.faces.align import ARCFACE_CROP, CANONICAL_CROP, CropGeometry, MTCNNAligner, PrealignedAligner


@pytest.mark.parametrize("bf16", [False, True])
def test_openface_nn4_as_c_is_differentiable(openface_weights, bf16):
    """Generated faces in [-1, 1] (tanh) reach nn4.small2 as 0..255 RGB; gradients flow back to them."""
    view = IdentityView(TrainConfig(embedder="openface-nn4"))
    assert view.size == 96 and not any(p.requires_grad for p in view.embedder.parameters())
    generated = torch.tanh(torch.randn(4, 3, 108, 108, generator=torch.Generator().manual_seed(0))).requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        features = view(generated, torch.Generator().manual_seed(1))
    assert features.shape == (4, 128)
    torch.testing.assert_close(features.float().norm(dim=1), torch.ones(4), atol=1e-2 if bf16 else 1e-5, rtol=0)
    (features[:2] - features[2:]).float().square().sum().backward()
    assert generated.grad is not None and torch.isfinite(generated.grad).all() and generated.grad.abs().sum() > 0


def as_minus_one_to_one(chips) -> torch.Tensor:
    return torch.stack([torch.from_numpy(np.asarray(c, dtype=np.float32)).permute(2, 0, 1) for c in chips]) / 127.5 - 1


@pytest.fixture(scope="module")
def canonical_lfw_faces(lfw_root):
    """Real LFW faces aligned to the translator's framing (CANONICAL_CROP, as the renders are)."""
    layout = LFWLayout(lfw_root)
    people = layout.people("peopleDevTest.txt")[:6]
    images = [Image.open(layout.image_path(p.name, 1)).convert("RGB") for p in people]
    chips, found = MTCNNAligner().chips(images, CANONICAL_CROP)
    assert found.all()
    return chips


@pytest.mark.data
@pytest.mark.parametrize("crop", [OPENFACE_CROP, ARCFACE_CROP, CropGeometry(160, 0.3)], ids=lambda c: c.tag)
def test_c_sees_faces_in_its_own_framing(canonical_lfw_faces, crop):
    """Resampling a render-framed face into C's crop gives what aligning the photo to C's crop gives
    (PIL's warp through the same template), and differs clearly from the plain resize used before."""
    expected, _ = PrealignedAligner(CANONICAL_CROP).chips(canonical_lfw_faces, crop)
    expected = as_minus_one_to_one(expected)
    faces = as_minus_one_to_one(canonical_lfw_faces)
    viewed = network_view(faces, crop, crop.size)
    resized = F.interpolate(faces, size=(crop.size, crop.size), mode="bilinear", antialias=True, align_corners=False)
    # compare where C's crop lies inside the render-framed image (a wider crop reaches past it: PIL
    # fills black there, the view repeats the border), a pixel away from that edge
    white, _ = PrealignedAligner(CANONICAL_CROP).chips([Image.new("RGB", (108, 108), (255, 255, 255))], crop)
    inside = torch.from_numpy(np.asarray(white[0].filter(ImageFilter.MinFilter(5)))[..., 0] == 255)
    assert inside.float().mean() > 0.6
    error = (viewed - expected).abs().mean(1)[:, inside].mean().item() * 127.5
    naive = (resized - expected).abs().mean(1)[:, inside].mean().item() * 127.5
    assert error < 4.0, f"C's view is {error:.1f} grey levels from the aligned crop"
    assert naive > 3 * error, f"a plain resize ({naive:.1f}) should be far off this framing ({error:.1f})"


@pytest.mark.data
def test_the_jittered_view_is_centred_on_cs_framing(canonical_lfw_faces, openface_weights):
    """Without crop or rotation jitter, IdentityView shows C exactly its framing, or its mirror image."""
    view = IdentityView(TrainConfig(embedder="openface-nn4", identity_crop=1.0, identity_rotation_deg=0.0))
    faces = as_minus_one_to_one(canonical_lfw_faces)
    views = view.views(faces, torch.Generator().manual_seed(3))
    framed = network_view(faces, OPENFACE_CROP, 96)
    for one, plain in zip(views, framed):
        assert min((one - plain).abs().max(), (one - plain.flip(-1)).abs().max()) < 1e-4
