"""The translator's losses, one function per equation of the paper (Gecer et al., ECCV 2018).

Images are in [-1, 1]; "|a - b|_1" is the mean absolute difference over all elements (BEGAN's
pixel-wise L1 as implemented in practice).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from bench.common.cli import UserError


def l1(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a - b).abs().mean()


def cycle_loss(synthetic: torch.Tensor, cycled: torch.Tensor) -> torch.Tensor:
    """Eq. 1: L_cyc = |G'(G(x)) - x|_1."""
    return l1(cycled, synthetic)


def reconstruction_error(images: torch.Tensor, discriminator) -> torch.Tensor:
    """|y - D(y)|_1: a BEGAN discriminator's autoencoder error on `images`."""
    return l1(discriminator(images), images)


def generator_adversarial_loss(generated: torch.Tensor, discriminator) -> torch.Tensor:
    """Eq. 2 (L_G with D_R on G(x)) and eq. 3 (L_G' with D_S on G'(G(x))): the discriminator's error on fakes."""
    return reconstruction_error(generated, discriminator)


def discriminator_loss(real_error: torch.Tensor, fake_error: torch.Tensor, k: float) -> torch.Tensor:
    """Eqs. 4-5: L_D = |y - D(y)|_1 - k_t * |G - D(G)|_1 (the fake error computed on detached fakes)."""
    return real_error - k * fake_error


def update_k(k: float, real_error: float, fake_error: float, gamma: float = 0.5, lambda_k: float = 0.001) -> float:
    """BEGAN's balance (Sec. 3.1): k <- clip(k + lambda_k (gamma L_real - L_fake), 0, 1); one k per game."""
    return float(min(1.0, max(0.0, k + lambda_k * (gamma * real_error - fake_error))))


def convergence_measure(real_error: float, fake_error: float, gamma: float = 0.5) -> float:
    """BEGAN's M_global = L_real + |gamma L_real - L_fake|: lower is better, comparable across runs."""
    return real_error + abs(gamma * real_error - fake_error)


def pair_matching_loss(paired_synthetic: torch.Tensor, fitted_from_real: torch.Tensor, cycle: torch.Tensor,
                       k_pair: float) -> torch.Tensor:
    """Eq. 6: L_DP = |s - G'(r)|_1 - k_DP * L_cyc, G' as a pair-matching discriminator on (render s, real r)."""
    return l1(fitted_from_real, paired_synthetic) - k_pair * cycle


def identity_transfer_loss(synthetic: torch.Tensor, generated: torch.Tensor) -> torch.Tensor:
    """L_id = |x - G(x)|_1 (Sec. 4, after Zhu et al.'s identity loss), weighted by lambda_id = 0.1."""
    return l1(generated, synthetic)


class IdentityCentroids:
    """Moving identity centroids c_j in the embedding space of C (Sec. 3.3), zero-initialised.

    Update (the paper's centre-loss rule, with beta as the momentum of the old centroid, as the paper
    calls it): for each identity j present in the batch, c_j <- beta c_j + (1 - beta) mean_x C(G(x)).
    """

    def __init__(self, dimension: int, momentum: float = 0.95):
        self.momentum = momentum
        self.centroids: dict[int, torch.Tensor] = {}
        self.dimension = dimension

    def get(self, labels: torch.Tensor) -> torch.Tensor:
        return torch.stack([self.centroids.get(int(j), torch.zeros(self.dimension)) for j in labels.tolist()])

    @torch.no_grad()
    def update(self, embeddings: torch.Tensor, labels: torch.Tensor) -> None:
        for j in labels.unique().tolist():
            batch_mean = embeddings[labels == j].float().mean(0).cpu()
            old = self.centroids.get(j, torch.zeros(self.dimension))
            self.centroids[j] = self.momentum * old + (1 - self.momentum) * batch_mean

    def state_dict(self) -> dict:
        return {"momentum": self.momentum, "dimension": self.dimension,
                "labels": torch.tensor(sorted(self.centroids), dtype=torch.long),
                "centroids": torch.stack([self.centroids[j] for j in sorted(self.centroids)])
                if self.centroids else torch.zeros(0, self.dimension)}

    def load_state_dict(self, state: dict) -> None:
        self.momentum, self.dimension = state["momentum"], state["dimension"]
        self.centroids = {int(j): c.clone() for j, c in zip(state["labels"], state["centroids"])}


def identity_preservation_loss(embeddings: torch.Tensor, labels: torch.Tensor, centroids: IdentityCentroids,
                               margin: float = 1.0, hinge: bool = False) -> torch.Tensor:
    """Eq. 7: L_C = E_x -log( exp(-|f_x - c_ix|^2 / 2 sigma^2 - eta) / sum_{j != ix} exp(-|f_x - c_j|^2 / 2 sigma^2) ),

    a centre plus pushing loss (a simplified magnet loss with one cluster per identity); f_x = C(G(x)),
    the sum over the other identities of the batch, sigma^2 = sum_x |f_x - c_ix|^2 / (M - 1) from the
    batch (treated as a constant), eta = `margin`. `hinge=True` clips each term at zero, as the
    magnet loss (and the reference code's default) does.
    """
    identities = labels.unique()
    if len(identities) < 2:
        raise UserError("the identity loss L_C needs at least 2 identities per batch (it pushes identities apart); "
                        "sample several identities per batch or switch L_C off")
    table = torch.stack([centroids.centroids.get(int(j), torch.zeros(centroids.dimension)) for j in identities.tolist()])
    table = table.to(embeddings)
    distances = torch.cdist(embeddings, table) ** 2  # (M, identities)
    own = (labels[:, None] == identities[None, :])
    own_distance = distances[own]
    sigma2 = (own_distance.sum() / max(1, len(labels) - 1)).detach().clamp_min(1e-8)
    logits = -distances / (2 * sigma2)
    others = torch.logsumexp(logits.masked_fill(own, -math.inf), dim=1)
    terms = -(logits[own] - margin - others)
    if hinge:
        terms = F.relu(terms)
    return terms.mean()


@dataclass(frozen=True)
class LossWeights:
    """Eqs. 8-10 with the paper's weights; the `use_*` switches are the supplementary Table 1 ablations."""

    cycle: float = 0.5  # lambda_cyc
    pair: float = 0.5  # lambda_DP
    identity: float = 0.001  # lambda_C
    transfer: float = 0.1  # lambda_id
    use_identity: bool = True  # L_C
    use_pair: bool = True  # L_DP
    use_cycle: bool = True  # L_cyc
    hinge_identity: bool = False  # the magnet-loss variant of L_C


def generator_objective(weights: LossWeights, adversarial: torch.Tensor, cycle: torch.Tensor,
                        identity: torch.Tensor | None, transfer: torch.Tensor) -> torch.Tensor:
    """Eq. 8: theta_G minimises L_G + lambda_cyc L_cyc + lambda_C L_C (+ lambda_id L_id)."""
    total = adversarial + weights.transfer * transfer
    if weights.use_cycle:
        total = total + weights.cycle * cycle
    if weights.use_identity and identity is not None:
        total = total + weights.identity * identity
    return total


def fitting_objective(weights: LossWeights, adversarial: torch.Tensor, cycle: torch.Tensor,
                      pair: torch.Tensor | None) -> torch.Tensor:
    """Eq. 9: theta_G' minimises L_G' + lambda_cyc L_cyc + lambda_DP L_DP."""
    total = adversarial
    if weights.use_cycle:
        total = total + weights.cycle * cycle
    if weights.use_pair and pair is not None:
        total = total + weights.pair * pair
    return total


def discriminator_objective(loss_real: torch.Tensor, loss_synthetic: torch.Tensor) -> torch.Tensor:
    """Eq. 10: theta_DR, theta_DS minimise L_DR + L_DS."""
    return loss_real + loss_synthetic
