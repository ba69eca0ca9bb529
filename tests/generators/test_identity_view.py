"""C's view of G(x) with OpenFace's nn4.small2 as C: the identity network the paper used."""
import pytest
import torch

from generators.identity_view import IdentityView
from generators.train import TrainConfig


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
