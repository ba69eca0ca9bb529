"""A trained translator, frozen for synthesis: G's EMA weights, G' and D_R from a generators.train checkpoint."""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

from bench.common.serialization import save_torch
from bench.common.cli import UserError
from bench.common.download import file_digest
from generators.networks import BeganDiscriminator, make_fitting_network, make_generator


@dataclass
class Translator:
    """The frozen networks of a trained translator, in eval mode (dropout off, batch-norm statistics)."""

    G: torch.nn.Module  # EMA weights
    G_prime: torch.nn.Module
    D_real: torch.nn.Module
    image_size: int
    training_seed: int
    digest: str
    training_pose: str = "wide"  # the pose distribution its renders were drawn from
    # the synthetic identities G was trained on, keyed by training_seed: those whose centroids L_C moved (the
    # checkpoint's centroid table), or, trained without L_C, those its identity stream showed (the same ones
    # for the same seed, so an ablation translates the same renders)
    trained_identities: tuple[int, ...] = ()


def save_untrained_translator(path: Path, preset: str = "smoke", seed: int = 0, variant: str = "project") -> Path:
    """A checkpoint in generators.train's format with seeded random weights: for tests and speed benchmarks,
    where what G learnt does not matter. `variant`: a `NETWORK_VARIANTS` name for G and G'."""
    from generators.networks import NETWORK_VARIANTS
    from generators.train import PRESETS as TRAIN_PRESETS

    torch.manual_seed(seed)
    config = TRAIN_PRESETS[preset]
    config = replace(config, network=replace(config.network, **NETWORK_VARIANTS[variant]))
    G = make_generator(config.network)
    networks = {"G": G.state_dict(), "G_ema": G.state_dict(), "G_prime": make_fitting_network(config.network).state_dict(),
                "D_real": BeganDiscriminator(config.network).state_dict()}
    save_torch({"config": asdict(config), "networks": networks}, path)
    return Path(path)


def load_translator(path: Path, device: torch.device | str = "cpu") -> Translator:
    """A `generators.train` run folder (or its checkpoint.pt) -> G_ema, G', D_R, built on `device` (the
    checkpoint is read on the CPU and copied in, so one written on a GPU loads anywhere)."""
    from bench.common.devices import build_on
    from generators.train import config_from_dict

    device = torch.device(device)
    path = Path(path)
    checkpoint = path / "checkpoint.pt" if path.is_dir() else path
    if not checkpoint.is_file():
        raise UserError(f"--generator {path}: no checkpoint.pt; train one with `python -m generators.train`")
    try:
        stored = torch.load(checkpoint, map_location="cpu", weights_only=False)
        config = config_from_dict(stored["config"])
        networks = stored["networks"]
        G, G_prime, D_real = (build_on(device, make_generator, config.network),
                              build_on(device, make_fitting_network, config.network),
                              build_on(device, BeganDiscriminator, config.network))
        G.load_state_dict(networks["G_ema"])
        G_prime.load_state_dict(networks["G_prime"])
        D_real.load_state_dict(networks["D_real"])
    except (KeyError, RuntimeError, TypeError, EOFError) as error:
        raise UserError(f"--generator {checkpoint}: not a translator checkpoint of generators.train ({error})") from None
    for network in (G, G_prime, D_real):
        network.eval().requires_grad_(False)
    labels = stored.get("centroids", {}).get("labels")
    trained = tuple(int(j) for j in labels.tolist()) if labels is not None else ()
    if not trained and "stream" in stored:  # trained without L_C: the identities the stream showed G
        from generators.identity_stream import shown_identities

        trained = tuple(shown_identities(stored["stream"], config.images_per_identity, config.synthetic_identities))
    return Translator(G, G_prime, D_real, config.network.image_size, config.seed, file_digest(checkpoint, "sha256")[:16],
                      config.pose, trained)
