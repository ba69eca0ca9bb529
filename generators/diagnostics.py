"""Measurements that say whether each loss term acts on G (README, the translator's diagnostics)."""
from __future__ import annotations

import torch

from generators.losses import LossWeights


def gradient_shares(parameters: list[torch.nn.Parameter], weights: LossWeights, adversarial: torch.Tensor,
                    cycle: torch.Tensor, identity: torch.Tensor | None, transfer: torch.Tensor) -> dict[str, float]:
    """|grad_theta_G (lambda_t L_t)| for each term of eq. 8 (`grad_*`), and its ratio to the adversarial
    term's (`share_*`): a term whose share stays near 0 does not shape G, whatever its value."""
    terms = {"adv": adversarial, "id": weights.transfer * transfer}
    if weights.use_cycle:
        terms["cyc"] = weights.cycle * cycle
    if identity is not None and weights.use_identity:
        terms["C"] = weights.identity * identity
    norms = {}
    for name, term in terms.items():
        gradients = torch.autograd.grad(term, parameters, retain_graph=True, allow_unused=True)
        norms[name] = float(torch.sqrt(sum((g.float() ** 2).sum() for g in gradients if g is not None)))
    shares = {f"grad_{name}": value for name, value in norms.items()}
    shares.update({f"share_{name}": value / max(norms["adv"], 1e-12) for name, value in norms.items() if name != "adv"})
    return shares
