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


def face_mask(synthetic: torch.Tensor) -> torch.Tensor:
    """(N, 1, H, W): 1 where the render shows the face, 0 on its background (rendered as -1 in every channel)."""
    return (synthetic > -0.999).any(dim=1, keepdim=True).to(synthetic.dtype)


def identity_transfer_loss(synthetic: torch.Tensor, generated: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """L_id = |x - G(x)|_1 (Sec. 4, after Zhu et al.'s identity loss), weighted by lambda_id = 0.1.

    With `mask` (the face pixels of the render, `face_mask`), the mean runs over face pixels only, as
    in the authors' code: unmasked, the term also pulls G's background towards the render's black one.
    """
    if mask is None:
        return l1(generated, synthetic)
    difference = (generated - synthetic).abs() * mask
    return difference.sum() / (mask.sum() * synthetic.shape[1]).clamp_min(1.0)


@dataclass(frozen=True)
class IdentityLossConfig:
    """Every choice in L_C (eq. 7) and its centroid update on which the paper and the authors' code differ.

    `IDENTITY_LOSS_VARIANTS` names two settings: 'paper' follows the paper where it is explicit and the
    reference code where the paper is silent; 'reference' follows the authors' TF code (facegan's
    `modules.magnet_loss`). README, "Deviations", lists each field with its source.
    """

    centroid_step: float = 0.95  # c <- c - step (c - f): the paper's update equation with beta = 0.95
    sequential: bool = True  # one update per image in turn (the paper's "for a given x"); False: the batch's
    # differences summed against the old centroid (the reference's tf.scatter_sub with repeated labels)
    update_before_loss: bool = True  # the reference updates c, then computes L_C against the new c
    denominator: str = "seen"  # 'batch': the batch's other identities; 'seen': every centroid updated so far;
    # 'all': every identity of the pool, unseen ones at their zero initialisation (the reference)
    normalise: bool = True  # L2-normalised embeddings (the reference; the paper is silent)
    detach_variance: bool = True  # sigma as a constant of each step. The reference back-propagates through it
    # (the paper is silent), but then shrinking every distance alike lowers L_C (logits scale as 1/sigma): measured
    # on 36 smoke iterations, L_C fell to -39 while the own-vs-other margin shrank (README, Deviations)
    hinge: bool = False  # max(0, term): the reference (magnet loss); eq. 7 has no hinge
    margin: float = 1.0  # eta
    # an identity's centroid starts at its first (detached) feature instead of zero; neither source says so,
    # but a zero start makes a running mean (step 0.05) ~1 - 0.95^n warm after n images: 64% after 20
    first_visit: bool = False

    def __post_init__(self):
        if self.denominator not in ("batch", "seen", "all"):
            raise UserError(f"identity loss denominator must be batch, seen or all, not '{self.denominator}'")
        if not 0 < self.centroid_step <= 1:
            raise UserError(f"centroid step must be in (0, 1], not {self.centroid_step}")


IDENTITY_LOSS_VARIANTS = {
    "paper": IdentityLossConfig(),
    # the paper's eq. 7 against a centroid that is a real running mean: with the paper's literal step 0.95 and
    # the update before the loss, the own centroid of an identity's last image in the batch is 95% that image's
    # own feature, so half of L_C's own-distance terms are ~0 whatever G does (README, Deviations). Here the
    # centroid moves by the reference's step 0.05 after the loss, from a first-visit start.
    "running-mean": IdentityLossConfig(centroid_step=0.05, update_before_loss=False, first_visit=True),
    "reference": IdentityLossConfig(centroid_step=0.05, sequential=False, denominator="all", detach_variance=False,
                                    hinge=True),
}


class IdentityCentroids:
    """Moving identity centroids c_j in the embedding space of C (Sec. 3.3), zero-initialised.

    The paper's rule (after centre loss, Wen et al. 2016): c_j <- c_j - beta (c_j - C(G(x))) for each
    image x of identity j, beta = 0.95. Read literally, beta is the step toward the new feature; the
    authors' code uses 1 - 0.95 as the step (beta as the old centroid's momentum). `step` and
    `sequential` choose (see IdentityLossConfig); `seen` records which identities have a centroid.
    """

    def __init__(self, dimension: int, step: float = 0.95, sequential: bool = True):
        self.step, self.sequential, self.dimension = step, sequential, dimension
        self.centroids: dict[int, torch.Tensor] = {}

    def get(self, labels: torch.Tensor) -> torch.Tensor:
        return torch.stack([self.centroids.get(int(j), torch.zeros(self.dimension)) for j in labels.tolist()])

    @torch.no_grad()
    def update(self, embeddings: torch.Tensor, labels: torch.Tensor) -> None:
        embeddings = embeddings.detach().float().cpu()
        for j in labels.unique().tolist():
            features = embeddings[labels.cpu() == j]
            centroid = self.centroids.get(j, torch.zeros(self.dimension))
            if self.sequential:
                for feature in features:
                    centroid = centroid - self.step * (centroid - feature)
            else:
                centroid = centroid - self.step * (centroid[None] - features).sum(0)
            self.centroids[j] = centroid

    def table(self, identities: list[int]) -> torch.Tensor:
        """The centroids of `identities` as rows (zeros for identities never seen)."""
        return torch.stack([self.centroids.get(int(j), torch.zeros(self.dimension)) for j in identities]) \
            if identities else torch.zeros(0, self.dimension)

    def state_dict(self) -> dict:
        return {"step": self.step, "sequential": self.sequential, "dimension": self.dimension,
                "labels": torch.tensor(sorted(self.centroids), dtype=torch.long),
                "centroids": torch.stack([self.centroids[j] for j in sorted(self.centroids)])
                if self.centroids else torch.zeros(0, self.dimension)}

    def load_state_dict(self, state: dict) -> None:
        if "momentum" in state:  # checkpoints before the step/sequential choice: momentum m = step 1 - m
            state = {**state, "step": 1 - state["momentum"], "sequential": False}
        self.step, self.sequential, self.dimension = state["step"], state["sequential"], state["dimension"]
        self.centroids = {int(j): c.clone() for j, c in zip(state["labels"], state["centroids"])}


def identity_preservation_loss(embeddings: torch.Tensor, labels: torch.Tensor, centroids: IdentityCentroids,
                               config: IdentityLossConfig = IdentityLossConfig(), pool: int | None = None,
                               ) -> tuple[torch.Tensor, dict[str, float]]:
    """Eq. 7: L_C = E_x -log( exp(-|f_x - c_ix|^2 / 2 sigma^2 - eta) / sum_{j != ix} exp(-|f_x - c_j|^2 / 2 sigma^2) ),

    a simplified magnet loss with one cluster per identity; f_x = C(G(x)) (L2-normalised when
    `config.normalise`), sigma = sum_x |f_x - c_ix|^2 / (M - 1) as in the paper and the reference
    (both then divide by 2 sigma^2), eta = `config.margin`. The sum runs over the identities that
    `config.denominator` names. With `config.update_before_loss` the centroids move first, with this
    batch's (detached) features. Returns the loss and diagnostics: the mean margin between the nearest
    other centroid's and the own centroid's squared distance (positive = the own centroid is nearer),
    sigma, L_C's chance level and the share of images nearest their own centroid.
    """
    identities = labels.unique()
    if config.denominator == "batch" and len(identities) < 2:
        raise UserError("the identity loss L_C needs at least 2 identities per batch (it pushes identities apart); "
                        "sample several identities per batch or switch L_C off")
    features = F.normalize(embeddings.float(), dim=1) if config.normalise else embeddings.float()
    if config.first_visit:
        for j in identities.tolist():
            if j not in centroids.centroids:
                first = int(torch.nonzero(labels == j)[0])
                centroids.centroids[j] = features[first].detach().cpu()
    if config.update_before_loss:
        centroids.update(features, labels)
    if config.denominator == "batch":
        others = identities.tolist()
    elif config.denominator == "seen":
        others = sorted(set(centroids.centroids) | set(identities.tolist()))
    else:
        if pool is None:
            raise ValueError("denominator 'all' needs the identity pool size")
        others = list(range(pool))
    if len(others) < 2:
        raise UserError("the identity loss L_C needs at least 2 identities to compare (its denominator is empty)")
    table = centroids.table(others).to(features)
    index = {j: i for i, j in enumerate(others)}
    own = torch.zeros(len(labels), len(others), dtype=torch.bool, device=features.device)
    own[torch.arange(len(labels), device=features.device),
        torch.tensor([index[int(j)] for j in labels.tolist()], device=features.device)] = True
    distances = torch.cdist(features, table) ** 2  # (M, identities)
    own_distance = distances[own]
    sigma = (own_distance.sum() / max(1, len(labels) - 1)).clamp_min(1e-8)
    if config.detach_variance:
        sigma = sigma.detach()
    logits = -distances / (2 * sigma**2)
    denominator = torch.logsumexp(logits.masked_fill(own, -math.inf), dim=1)
    terms = -(logits[own] - config.margin - denominator)
    if config.hinge:
        terms = F.relu(terms)
    with torch.no_grad():
        nearest_other = distances.masked_fill(own, math.inf).min(1).values
        diagnostics = {"C_margin": float((nearest_other - own_distance).mean()), "C_sigma": float(sigma),
                       # L_C when C tells no identity apart (all distances equal): eta + ln(identities compared),
                       # the level L_C must fall below; it grows as the 'seen'/'all' denominators fill
                       "C_chance": config.margin + math.log(len(others) - 1),
                       # share of the batch whose own centroid is the nearest of all compared (chance 1 / count)
                       "C_top1": float((own_distance < nearest_other).float().mean())}
    return terms.mean(), diagnostics


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
