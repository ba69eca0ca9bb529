"""The translator's networks and every loss against hand-computed values on tiny tensors."""
import math

import pytest
import torch

from bench.common.cli import UserError
from generators import losses
from generators.losses import IdentityCentroids, LossWeights
from generators.networks import BeganDiscriminator, NetworkConfig, make_fitting_network, make_generator


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
    assert isinstance(g.dropout, torch.nn.Dropout) and g.dropout.p == pytest.approx(0.1)
    assert not isinstance(g_prime.dropout, torch.nn.Dropout)
    g.train()
    x = torch.rand(1, 3, 32, 32)
    torch.manual_seed(0)
    first = g(x)
    torch.manual_seed(1)
    assert not torch.allclose(first, g(x))  # dropout is noise in training


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


def test_identity_loss_hand_computed():
    centroids = IdentityCentroids(1)
    centroids.centroids = {0: torch.tensor([0.0]), 1: torch.tensor([2.0])}
    embeddings, labels = torch.tensor([[0.5], [1.5]]), torch.tensor([0, 1])
    # own distances 0.25 each: sigma^2 = 0.5 / (2 - 1); 2 sigma^2 = 1
    # term = -(-0.25 - 1 - (-2.25)) = -1 for both
    assert losses.identity_preservation_loss(embeddings, labels, centroids).item() == pytest.approx(-1.0)
    assert losses.identity_preservation_loss(embeddings, labels, centroids, hinge=True).item() == pytest.approx(0.0)
    far = torch.tensor([[1.9], [0.1]])  # each sample next to the other identity's centroid: a large loss
    assert losses.identity_preservation_loss(far, labels, centroids).item() > 1.0


def test_identity_loss_needs_two_identities():
    with pytest.raises(UserError, match="at least 2 identities per batch"):
        losses.identity_preservation_loss(torch.zeros(3, 4), torch.tensor([5, 5, 5]), IdentityCentroids(4))


def test_centroid_momentum_update_and_state():
    centroids = IdentityCentroids(2, momentum=0.95)
    centroids.update(torch.tensor([[1.0, 0.0], [3.0, 0.0], [0.0, 4.0]]), torch.tensor([7, 7, 9]))
    torch.testing.assert_close(centroids.centroids[7], torch.tensor([0.1, 0.0]))  # 0.05 * mean(1, 3)
    torch.testing.assert_close(centroids.centroids[9], torch.tensor([0.0, 0.2]))
    centroids.update(torch.tensor([[2.0, 0.0]]), torch.tensor([7]))
    torch.testing.assert_close(centroids.centroids[7], torch.tensor([0.95 * 0.1 + 0.05 * 2.0, 0.0]))
    restored = IdentityCentroids(2)
    restored.load_state_dict(centroids.state_dict())
    torch.testing.assert_close(restored.centroids[9], centroids.centroids[9])


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
