"""The translator's networks and every loss against hand-computed values on tiny tensors."""
import math
from dataclasses import replace

import pytest
import torch

from bench.common.cli import UserError
from generators import losses
from generators.losses import IdentityCentroids, LossWeights
from generators.networks import (NETWORK_VARIANTS, BeganDiscriminator, NetworkConfig, _upsampling, make_fitting_network,
                                 make_generator)


@pytest.mark.parametrize("size", [108, 64])
def test_networks_keep_the_image_shape(size):
    config = NetworkConfig(image_size=size, discriminator_width=16, bottleneck=8)
    x = torch.rand(2, 3, size, size) * 2 - 1
    for network in (make_generator(config), make_fitting_network(config), BeganDiscriminator(config)):
        assert network(x).shape == x.shape
    out = make_generator(config)(x)
    assert out.abs().max() <= 1  # tanh


def test_only_g_has_dropout_and_skips():
    config = NetworkConfig(image_size=32, discriminator_width=8)
    g, g_prime = make_generator(config), make_fitting_network(config)
    assert g.skips and not g_prime.skips
    assert g.dropout_rate == pytest.approx(0.1) and g_prime.dropout_rate == 0
    g.train()
    x = torch.rand(1, 3, 32, 32)
    torch.manual_seed(0)
    first = g(x)
    torch.manual_seed(1)
    assert not torch.allclose(first, g(x))  # dropout is noise in training
    g.eval()
    assert torch.equal(g(x), g(x))  # and off at generation, in this project's G


@pytest.mark.parametrize("variant", sorted(NETWORK_VARIANTS))
@pytest.mark.parametrize("size", [108, 64])
def test_every_network_variant_keeps_the_image_shape(variant, size):
    config = NetworkConfig(image_size=size, generator_width=8, discriminator_width=8, bottleneck=8, **NETWORK_VARIANTS[variant])
    x = torch.rand(2, 3, size, size) * 2 - 1
    for network in (make_generator(config), make_fitting_network(config)):
        assert network(x).shape == x.shape


def test_the_reference_variant_is_the_authors_generator(monkeypatch):
    """No norm layers, concatenated skips (wider u32 and output layer), dropout only after the
    residual blocks, and dropout still on when G generates (eval mode)."""
    config = NetworkConfig(image_size=32, generator_width=8, discriminator_width=8, **NETWORK_VARIANTS["reference"])
    g, g_prime = make_generator(config), make_fitting_network(config)
    norms = (torch.nn.BatchNorm2d, torch.nn.InstanceNorm2d)
    assert not any(isinstance(m, norms) for net in (g, g_prime) for m in net.modules())
    assert g.head.in_channels == 16 and g_prime.head.in_channels == 8  # [u32, c7s1] vs u32 alone
    calls = []
    real_dropout = torch.nn.functional.dropout
    monkeypatch.setattr("generators.networks.F.dropout", lambda h, *a, **k: calls.append(h.shape) or real_dropout(h, *a, **k))
    g.eval()
    x = torch.rand(1, 3, 32, 32)
    assert not torch.equal(g(x), g(x))  # kept on at generation
    assert len(calls) == 2 * config.residual_blocks and all(shape[-1] == 8 for shape in calls)  # 32/4: the blocks' maps


@pytest.mark.parametrize("kind, patterned", [("transposed", True), ("resize-conv", False)])
def test_resize_convolutions_print_no_checkerboard(kind, patterned):
    """A flat input through a 3x3 stride-2 transposed convolution comes out with a period-2 pattern
    (uneven kernel overlap); nearest upsampling followed by a convolution stays flat."""
    torch.manual_seed(0)
    layer = _upsampling(4, 4, kind, "none")
    out = layer[0](torch.ones(1, 4, 8, 8))[..., 2:-2, 2:-2]  # the upsampling alone, away from the border
    spread = (out - out.mean((-2, -1), keepdim=True)).abs().max().item()
    assert (spread > 1e-2) == patterned, f"{kind}: interior spread {spread:.3g}"


def test_l1_cycle_and_transfer_losses():
    x, y = torch.tensor([0.0, 1.0]), torch.tensor([1.0, 1.0])
    assert losses.cycle_loss(x, y).item() == pytest.approx(0.5)
    assert losses.identity_transfer_loss(x, y).item() == pytest.approx(0.5)


def test_began_terms_and_k_update():
    class Constant(torch.nn.Module):
        def forward(self, images):
            return torch.zeros_like(images)

    images = torch.full((1, 3, 2, 2), 0.5)
    assert losses.generator_adversarial_loss(images, Constant()).item() == pytest.approx(0.5)
    assert losses.discriminator_loss(torch.tensor(0.3), torch.tensor(0.2), 0.5).item() == pytest.approx(0.2)
    assert losses.update_k(0.5, 0.2, 0.05) == pytest.approx(0.5 + 0.001 * (0.1 - 0.05))
    assert losses.update_k(0.99999, 10.0, 0.0) == 1.0
    assert losses.update_k(0.0, 0.0, 5.0) == 0.0
    assert losses.convergence_measure(0.2, 0.3) == pytest.approx(0.2 + 0.2)


def test_pair_matching_loss():
    s, fitted = torch.zeros(1, 3, 2, 2), torch.ones(1, 3, 2, 2)
    assert losses.pair_matching_loss(s, fitted, torch.tensor(0.4), 0.25).item() == pytest.approx(1 - 0.1)


RAW = losses.IdentityLossConfig(normalise=False, update_before_loss=False, denominator="batch")


def test_identity_loss_hand_computed():
    """Eq. 7 on 1-D features: sigma = sum of own squared distances / (M - 1), logits -d / (2 sigma^2)."""
    centroids = IdentityCentroids(1)
    centroids.centroids = {0: torch.tensor([0.0]), 1: torch.tensor([2.0])}
    embeddings, labels = torch.tensor([[0.5], [1.5]]), torch.tensor([0, 1])
    # own distances 0.25 each: sigma = 0.5; 2 sigma^2 = 0.5; own logit -0.5, other logit -2.25 / 0.5 = -4.5
    # term = -(-0.5 - 1 - (-4.5)) = -3 for both samples
    loss, diagnostics = losses.identity_preservation_loss(embeddings, labels, centroids, RAW)
    assert loss.item() == pytest.approx(-3.0)
    assert diagnostics["C_margin"] == pytest.approx(2.25 - 0.25) and diagnostics["C_sigma"] == pytest.approx(0.5)
    assert diagnostics["C_chance"] == pytest.approx(1.0) and diagnostics["C_top1"] == 1.0  # eta + ln(1 other)
    hinged, _ = losses.identity_preservation_loss(embeddings, labels, centroids, replace(RAW, hinge=True))
    assert hinged.item() == pytest.approx(0.0)
    far = torch.tensor([[1.9], [0.1]])  # each sample next to the other identity's centroid: a large loss
    assert losses.identity_preservation_loss(far, labels, centroids, RAW)[0].item() > 1.0
    assert losses.identity_preservation_loss(far, labels, centroids, RAW)[1]["C_top1"] == 0.0


def test_identity_loss_over_all_centroids_as_the_reference():
    """The reference's denominator runs over every identity of the pool, unseen ones at zero."""
    centroids = IdentityCentroids(1)
    centroids.centroids = {0: torch.tensor([0.0]), 1: torch.tensor([2.0])}
    embeddings, labels = torch.tensor([[0.5], [1.5]]), torch.tensor([0, 1])
    config = replace(RAW, denominator="all")
    loss, _ = losses.identity_preservation_loss(embeddings, labels, centroids, config, pool=3)
    # identity 2 is unseen: its centroid is 0. Sample 0: others c1 (-4.5) and c2 (d 0.25 -> -0.5);
    # sample 1: others c0 and c2, both d 2.25 -> -4.5.
    term0 = 1.5 + math.log(math.exp(-4.5) + math.exp(-0.5))
    term1 = 1.5 + (-4.5 + math.log(2))
    assert loss.item() == pytest.approx((term0 + term1) / 2)
    assert losses.identity_preservation_loss(embeddings, labels, centroids, config, pool=3)[1]["C_chance"] == \
        pytest.approx(1 + math.log(2))  # two others for each sample
    seen = replace(RAW, denominator="seen")  # the seen identities 0 and 1 only: as the batch here
    assert losses.identity_preservation_loss(embeddings, labels, centroids, seen)[0].item() == pytest.approx(-3.0)


def test_identity_loss_normalises_and_updates_first():
    """Normalised features, and centroids moved by this batch before the loss (the reference's order)."""
    centroids = IdentityCentroids(2, step=1.0)  # step 1: a centroid becomes its identity's latest feature
    embeddings, labels = torch.tensor([[3.0, 0.0], [0.0, 0.5]]), torch.tensor([4, 6])
    config = replace(RAW, normalise=True, update_before_loss=True)
    loss, diagnostics = losses.identity_preservation_loss(embeddings, labels, centroids, config)
    torch.testing.assert_close(centroids.centroids[4], torch.tensor([1.0, 0.0]))
    torch.testing.assert_close(centroids.centroids[6], torch.tensor([0.0, 1.0]))
    assert diagnostics["C_margin"] == pytest.approx(2.0)  # own distance 0, the other unit vector at distance^2 2


def test_identity_loss_needs_two_identities():
    with pytest.raises(UserError, match="at least 2 identities per batch"):
        losses.identity_preservation_loss(torch.zeros(3, 4), torch.tensor([5, 5, 5]), IdentityCentroids(4), RAW)


def test_centroid_updates_paper_and_reference():
    """The paper's equation (step 0.95 per image in turn) and the reference's (step 0.05, summed)."""
    features, labels = torch.tensor([[1.0, 0.0], [3.0, 0.0], [0.0, 4.0]]), torch.tensor([7, 7, 9])
    paper = IdentityCentroids(2, step=0.95, sequential=True)
    paper.update(features, labels)
    torch.testing.assert_close(paper.centroids[7], torch.tensor([0.95 + 0.95 * (3.0 - 0.95), 0.0]))
    torch.testing.assert_close(paper.centroids[9], torch.tensor([0.0, 0.95 * 4.0]))
    reference = IdentityCentroids(2, step=0.05, sequential=False)
    reference.update(features, labels)
    torch.testing.assert_close(reference.centroids[7], torch.tensor([0.05 * (1.0 + 3.0), 0.0]))  # scatter_sub sums
    reference.update(torch.tensor([[2.0, 0.0]]), torch.tensor([7]))
    torch.testing.assert_close(reference.centroids[7], torch.tensor([0.2 - 0.05 * (0.2 - 2.0), 0.0]))
    restored = IdentityCentroids(2)
    restored.load_state_dict(reference.state_dict())
    assert (restored.step, restored.sequential) == (0.05, False)
    torch.testing.assert_close(restored.centroids[7], reference.centroids[7])


def test_face_mask_and_masked_transfer_loss():
    """L_id over face pixels only: a background that differs from the render's black costs nothing."""
    render = -torch.ones(1, 3, 4, 4)
    render[..., 1:3, 1:3] = 0.2  # a 2x2 face on the black background
    mask = losses.face_mask(render)
    assert mask.sum().item() == 4
    generated = render.clone()
    generated[..., 0, :] = 0.7  # G paints the background's top row
    assert losses.identity_transfer_loss(render, generated, mask).item() == pytest.approx(0.0)
    assert losses.identity_transfer_loss(render, generated).item() > 0.1
    generated[..., 1, 1] = 0.6  # one face pixel off by 0.4 in each channel: 0.4 / 4 face pixels
    assert losses.identity_transfer_loss(render, generated, mask).item() == pytest.approx(0.1)


@pytest.mark.parametrize("switch, term", [("use_cycle", "cycle"), ("use_identity", "identity"), ("use_pair", "pair")])
def test_ablation_switch_removes_its_term(switch, term):
    terms = {name: torch.tensor(1.0, requires_grad=True) for name in ("adversarial", "cycle", "identity", "transfer", "pair")}
    weights = LossWeights(**{switch: False})
    total = (losses.generator_objective(weights, terms["adversarial"], terms["cycle"], terms["identity"], terms["transfer"])
             + losses.fitting_objective(weights, terms["adversarial"], terms["cycle"], terms["pair"]))
    total.backward()
    assert terms[term].grad is None or terms[term].grad.item() == 0.0
    enabled = LossWeights()
    for tensor in terms.values():
        tensor.grad = None
    (losses.generator_objective(enabled, terms["adversarial"], terms["cycle"], terms["identity"], terms["transfer"])
     + losses.fitting_objective(enabled, terms["adversarial"], terms["cycle"], terms["pair"])).backward()
    assert terms[term].grad.item() > 0


def test_one_step_decreases_the_generator_objective_on_a_fixed_batch():
    torch.manual_seed(0)
    config = NetworkConfig(image_size=32, discriminator_width=8, bottleneck=8)
    g, g_prime, d_real = make_generator(config), make_fitting_network(config), BeganDiscriminator(config)
    x = torch.rand(4, 3, 32, 32) * 2 - 1
    optimiser = torch.optim.SGD(g.parameters(), lr=1e-3)
    weights = LossWeights(use_identity=False)

    def objective():
        torch.manual_seed(123)  # the same dropout masks for both evaluations
        generated = g(x)
        return losses.generator_objective(weights, losses.generator_adversarial_loss(generated, d_real),
                                          losses.cycle_loss(x, g_prime(generated)), None,
                                          losses.identity_transfer_loss(x, generated))

    before = objective()
    optimiser.zero_grad()
    before.backward()
    optimiser.step()
    after = objective()
    assert after.item() < before.item() and math.isfinite(after.item())


def test_running_mean_centroids_start_at_the_first_visit_and_move_after_the_loss():
    """The 'running-mean' variant: an unseen identity's centroid starts at its first image's feature, so that
    image's own distance is 0 and the second image is measured against it; the trainer moves it afterwards."""
    config = losses.IDENTITY_LOSS_VARIANTS["running-mean"]
    centroids = IdentityCentroids(2, config.centroid_step, config.sequential)
    centroids.centroids = {5: torch.tensor([0.0, 1.0])}
    embeddings = torch.tensor([[2.0, 0.0], [0.0, 3.0], [0.0, -1.0]])  # identity 3 twice (new), identity 5 once
    labels = torch.tensor([3, 3, 5])
    loss, diagnostics = losses.identity_preservation_loss(embeddings, labels, centroids, config)
    torch.testing.assert_close(centroids.centroids[3], torch.tensor([1.0, 0.0]))  # the first feature, normalised
    torch.testing.assert_close(centroids.centroids[5], torch.tensor([0.0, 1.0]))  # not moved before the loss
    # own squared distances: 0 (the first visit), 2 (unit vectors at right angles), 4 (opposite): sigma = 6 / 2
    assert diagnostics["C_sigma"] == pytest.approx(3.0)
    logit = lambda d: -d / 18.0  # 2 sigma^2 = 18
    expected = [-(logit(0) - 1 - logit(2)), -(logit(2) - 1 - logit(0)), -(logit(4) - 1 - logit(2))]
    assert loss.item() == pytest.approx(sum(expected) / 3)
    centroids.update(torch.nn.functional.normalize(embeddings, dim=1), labels)  # the trainer, after the step
    torch.testing.assert_close(centroids.centroids[5], torch.tensor([0.0, 1.0 - 0.05 * 2.0]))
