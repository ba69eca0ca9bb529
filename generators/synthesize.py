"""Synthesize GANFaces (Sec. 5): new 3DMM identities, rendered and translated to realistic by a trained G.

    python -m generators.synthesize --generator runs/translator --preset cpu --out runs/ganfaces
    python -m generators.synthesize --generator runs/translator --identities 10000 --per-identity 50 \\
        --also-renders --shard 0/4 --out runs/ganfaces          # one of 4 processes or machines
    python -m generators.synthesize --out runs/ganfaces --merge  # check completeness, write the tables
    torchrun --nproc-per-node 4 -m generators.synthesize --generator runs/translator --out runs/ganfaces

Each identity (a 3DMM sample keyed by [seed, identity], new when `seed` differs from the translator's
training seed) gets `per_identity` images of new expression, pose and lighting; each render x goes
through G's EMA weights (the paper keeps G's moving average) and is written as a 108x108 crop:
`<out>/ganfaces/id_00000/000.jpg` (an ImageFolder), with `--also-renders` the paired raw render x at
`<out>/renders/id_00000/000.jpg`. Per image the metadata holds every 3DMM parameter, the 68 landmarks
and three confidence scores usable to filter (lower is better): `d_error`, D_R's reconstruction error
of G(x) (BEGAN's realism signal); `cycle_error`, |G'(G(x)) - x|; `centroid_distance`, the distance
of C(G(x)) to the mean embedding of its identity's images in C (dlib's ResNet by default).

Work is cut into chunks of whole identities, fixed by the configuration: chunk c is done when
`<out>/parts/chunk-<c>.csv` exists (written last, atomically, after its images). A shard i/n does
the chunks c with c % n == i, so shards never overlap; re-running skips done chunks and never leaves a
half-written image. Every chunk is computed in the same batches whatever the shard, so the output is
byte-identical for a seed. When every chunk is done, the merge checks that each identity has all its
images (no duplicate, none missing) and writes `<out>/metadata.csv`, `summary.json` and a contact sheet.
`--layout webdataset` writes tar shards (`<out>/webdataset/ganfaces-<c>.tar`, one per chunk, members
`<key>.jpg`, `<key>.cls`, `<key>.render.jpg`) for streaming loaders instead of the folders.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import tarfile
import time
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from bench.common.atomic import atomic_path, write_json, write_text
from bench.common.cli import UserError, add_common_arguments, require_at_least, run_main, setup_logging
from bench.common.devices import autocast, build_on, configure_device, resolve_device, to_device
from generators.synthesis_plan import (  # noqa: F401  (PRESETS, SynthesisConfig, merge: this command's public names)
    IDENTITY_SOURCES, LAYOUTS, PRESETS, SCORE_COLUMNS, SynthesisConfig, add_to_tar, encode_image, to_uint8, write_bytes, chunk_ranges,
    image_name, merge, parse_shard, part_path, read_config, tar_path, wds_key,
)
from generators.identity_view import embed_unjittered
from generators.morphable.sampling import add_pose_argument
from generators.render_ahead import ChunkRenderPool, RenderedChunk, build_renderer, render_chunk
from generators.translator import Translator, load_translator, save_untrained_translator  # noqa: F401

log = logging.getLogger(__name__)

# ------------------------------------------------------------------------------------------ the work

class Synthesizer:
    """Render, translate, score and write chunks; keeps a running split of where the time goes."""

    def __init__(self, config: SynthesisConfig, translator: Translator, out: Path,
                 device: torch.device = torch.device("cpu")):
        self.config, self.translator, self.out, self.device = config, translator, Path(out), device
        self.model, self.renderer = build_renderer(config, translator.image_size)
        self.embedder = None
        if config.scores:
            from recognition.embedders import get_embedder

            self.embedder = build_on(device, get_embedder, config.embedder).eval().requires_grad_(False)
        if config.channels_last:
            for network in (translator.G, translator.G_prime, translator.D_real):
                network.to(memory_format=torch.channels_last)
        # render: sampling and rendering in this process; render_wait: waiting for render workers' chunks
        self.seconds = {"render": 0.0, "render_wait": 0.0, "G": 0.0, "scores": 0.0, "write": 0.0}
        # identity i of this run is the 3DMM identity keyed (seed, identity_keys[i]); with new identities i itself
        self.identity_keys = (translator.trained_identities[: config.identities]
                              if config.identities_from == "trained" else None)

    def _autocast(self):
        return autocast(self.device, "bf16" if self.config.bf16 else "fp32")

    def _translate(self, rendered: np.ndarray) -> dict[str, torch.Tensor]:
        x = to_device(torch.from_numpy(rendered), self.device).permute(0, 3, 1, 2).float() / 127.5 - 1
        if self.config.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        started = time.perf_counter()
        with torch.no_grad(), self._autocast():
            generated = self.translator.G(x)
        self.seconds["G"] += time.perf_counter() - started
        result = {"x": x, "generated": generated.float()}
        if self.config.scores:
            started = time.perf_counter()
            with torch.no_grad():
                with self._autocast():
                    reconstructed = self.translator.D_real(generated)
                    cycled = self.translator.G_prime(generated)
                result["d_error"] = (reconstructed.float() - generated.float()).abs().mean((1, 2, 3)).cpu()
                result["cycle_error"] = (cycled.float() - x).abs().mean((1, 2, 3)).cpu()
                result["embedding"] = embed_unjittered(self.embedder, generated).float().cpu()
            self.seconds["scores"] += time.perf_counter() - started
        return result

    def run_chunk(self, chunk: int, identities: range, rendered: RenderedChunk | None = None) -> pd.DataFrame:
        """Compute one chunk in its fixed batches, write its images, then its part table (the done marker).
        `rendered`: the chunk's renders made ahead by a render worker; else they are made here."""
        config, out = self.config, self.out
        if rendered is None:
            started = time.perf_counter()
            rendered = render_chunk(self.model, self.renderer, config, self.identity_keys, identities)
            self.seconds["render"] += time.perf_counter() - started
        rows, embeddings, archive_entries = [], [], []
        scale = config.output_size / self.translator.image_size
        # a G that keeps dropout on at generation (the reference's) draws from torch's RNG: seed it per
        # chunk, so a chunk comes out the same whether it runs first or after a resume
        torch.manual_seed(config.seed * 1_000_003 + chunk)
        for number, (images, landmarks) in enumerate(rendered.batches):
            batch = rendered.samples[number * config.batch_size : (number + 1) * config.batch_size]
            result = self._translate(images)
            started = time.perf_counter()
            generated = to_uint8(result["generated"], config.output_size)
            renders = to_uint8(result["x"], config.output_size) if config.also_renders else None
            for k, (person, sample) in enumerate(batch):
                name = image_name(sample.identity, sample.image, config.image_format)
                files = {"ganfaces": encode_image(generated[k], config.image_format)}
                if renders is not None:
                    files["renders"] = encode_image(renders[k], config.image_format)
                if config.layout == "folder":
                    for folder, data in files.items():
                        write_bytes(out / folder / name, data)
                    row = {"file": f"ganfaces/{name}",
                           "render_file": f"renders/{name}" if renders is not None else ""}
                else:
                    key = wds_key(sample.identity, sample.image)
                    archive_entries.append((f"{key}.{config.image_format}", files["ganfaces"]))
                    archive_entries.append((f"{key}.cls", str(sample.identity).encode()))
                    if renders is not None:
                        archive_entries.append((f"{key}.render.{config.image_format}", files["renders"]))
                    tar = tar_path(out, chunk).relative_to(out).as_posix()
                    row = {"file": f"{tar}:{key}.{config.image_format}",
                           "render_file": f"{tar}:{key}.render.{config.image_format}" if renders is not None else ""}
                row.update(sample.record(self.model.expression_names))
                if self.identity_keys is not None:
                    row["identity_key"] = self.identity_keys[sample.identity]  # its training label
                row["exposure"] = person.exposure
                row.update({f"id_{k2}": float(v) for k2, v in enumerate(person.identity)})
                row.update({f"albedo_{k2}": json.dumps(v) for k2, v in person.albedo_parameters.items()})
                row.update({f"lm{p}_{axis}": float(landmarks[k, p, a] * scale)
                            for p in range(landmarks.shape[1]) for a, axis in enumerate("xy")})
                if config.scores:
                    row["d_error"] = float(result["d_error"][k])
                    row["cycle_error"] = float(result["cycle_error"][k])
                rows.append(row)
            if config.scores:
                embeddings.append(result["embedding"])
            self.seconds["write"] += time.perf_counter() - started
        started = time.perf_counter()
        table = pd.DataFrame(rows)
        if config.scores:
            table["centroid_distance"] = centroid_distances(torch.cat(embeddings), table.identity.to_numpy())
        if config.layout == "webdataset":
            with atomic_path(tar_path(out, chunk)) as temporary, tarfile.open(temporary, "w", format=tarfile.USTAR_FORMAT) as archive:
                for name, data in archive_entries:
                    add_to_tar(archive, name, data)
        write_text(part_path(out, chunk), table.to_csv(index=False))
        self.seconds["write"] += time.perf_counter() - started
        return table


def centroid_distances(embeddings: torch.Tensor, identities: np.ndarray) -> np.ndarray:
    """Euclidean distance of each embedding to the mean embedding of its identity (the centroid in C)."""
    distances = np.empty(len(identities))
    for identity in np.unique(identities):
        members = np.flatnonzero(identities == identity)
        group = embeddings[members]
        distances[members] = (group - group.mean(0, keepdim=True)).norm(dim=1).numpy()
    return distances


STARTED = time.time()  # when this process began: older temporary files are a killed run's


def _prepare_out(config: SynthesisConfig, translator: Translator, out: Path) -> None:
    """Create `out`, or check it was started with the same configuration and translator."""
    out.mkdir(parents=True, exist_ok=True)
    stored = out / "config.json"
    wanted = {**asdict(config), "generator_digest": translator.digest, "generator_image_size": translator.image_size}
    if stored.exists():
        previous = json.loads(stored.read_text())
        if previous != wanted:
            changed = sorted(k for k in wanted if previous.get(k) != wanted[k])
            raise UserError(f"{out} holds GANFaces made with another configuration ({', '.join(changed)} differ; "
                            f"see {stored}): choose another --out or delete it")
    else:
        write_json(stored, wanted)
    for stale in out.rglob(".tmp-*"):  # left by a killed run; never read
        try:
            # only files older than this process: another rank started beside it may be writing its own right now
            # (unlinking its temporary file made that rank's rename fail under torchrun)
            if stale.stat().st_mtime < STARTED:
                stale.unlink()
        except FileNotFoundError:  # another shard cleaned it, or its writer renamed it
            pass


def synthesize(config: SynthesisConfig, generator: Path, out: Path, shard: tuple[int, int] = (0, 1),
               progress: bool = True, device: torch.device | str = "cpu", render_workers: int = 0) -> dict:
    """Do (or finish) this shard's chunks on `device`; merge when every chunk is done. Returns a summary.

    Rendering stays on the CPU (moderngl); G, G', D_R and C run on the device. The images do not depend
    on the device beyond float rounding, so shards made on different devices merge (not byte-identical).
    `render_workers` processes render the next chunks meanwhile (`generators.render_ahead`; the same images)."""
    validate(config)
    out = Path(out)
    device = torch.device(device)
    translator = load_translator(generator, device)
    config = resolve_for_translator(config, translator)
    if config.identities_from == "new" and config.seed == translator.training_seed:
        log.warning("seed %d is the translator's training seed: the identities are those G was trained on, "
                    "not new ones", config.seed)
    _prepare_out(config, translator, out)
    ranges = chunk_ranges(config)
    index, count = shard
    todo = [c for c in range(len(ranges)) if c % count == index and not part_path(out, c).exists()]
    summary = {"shard": f"{index}/{count}", "chunks": len(todo), "images": 0, "seconds": 0.0}
    if todo:
        synthesizer = Synthesizer(config, translator, out, device)
        started = time.perf_counter()
        with tqdm(total=sum(len(ranges[c]) for c in todo) * config.per_identity, desc=f"synthesize {index}/{count}",
                  unit="img", disable=not progress) as bar:
            with contextlib.ExitStack() as stack:
                if render_workers > 0:
                    pool = stack.enter_context(ChunkRenderPool(render_workers, config, translator.image_size,
                                                               synthesizer.identity_keys))
                    ahead = pool.chunks([(c, ranges[c]) for c in todo])
                for chunk in todo:
                    rendered = None
                    if render_workers > 0:
                        waited = time.perf_counter()
                        done, rendered = next(ahead)
                        if done != chunk:  # the render-ahead pool must return chunks in order
                            raise RuntimeError(f"render workers returned chunk {done} where chunk {chunk} was due")
                        synthesizer.seconds["render_wait"] += time.perf_counter() - waited
                    synthesizer.run_chunk(chunk, ranges[chunk], rendered)
                    bar.update(len(ranges[chunk]) * config.per_identity)
                    bar.set_postfix({k: f"{v:.0f}s" for k, v in synthesizer.seconds.items()})
        summary.update(images=sum(len(ranges[c]) for c in todo) * config.per_identity, seconds=time.perf_counter() - started, split=dict(synthesizer.seconds))
    missing = [c for c in range(len(ranges)) if not part_path(out, c).exists()]
    summary["complete"] = not missing
    if not missing:
        summary["merge"] = merge(out)
    return summary


def resolve_for_translator(config: SynthesisConfig, translator: Translator) -> SynthesisConfig:
    """The choices left to the translator: its training pose when none is given; with trained identities, its
    training seed, and a check that it trained on enough of them."""
    if config.pose is None:
        config = replace(config, pose=translator.training_pose)
    if config.identities_from == "trained":
        trained = len(translator.trained_identities)
        if config.identities > trained:
            raise UserError(f"--identities {config.identities}: the translator's L_C saw {trained} identities "
                            f"(--identities-from trained takes at most that many)")
        config = replace(config, seed=translator.training_seed)
    return config


def validate(config: SynthesisConfig) -> None:
    for name in ("identities", "per_identity", "batch_size", "output_size", "images_per_tar"):
        if getattr(config, name) < 1:
            raise UserError(f"--{name.replace('_', '-')} must be positive")
    if config.image_format not in ("jpg", "png"):
        raise UserError(f"--format must be jpg or png, not '{config.image_format}'")
    if config.identities_from not in IDENTITY_SOURCES:
        raise UserError(f"--identities-from must be one of {', '.join(IDENTITY_SOURCES)}, not '{config.identities_from}'")
    if config.layout not in LAYOUTS:
        raise UserError(f"--layout must be one of {', '.join(LAYOUTS)}, not '{config.layout}'")


# -------------------------------------------------------------------------------------------- the CLI

def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m generators.synthesize", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser)
    parser.add_argument("--generator", type=Path, help="a generators.train run folder (or its checkpoint.pt)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--merge", action="store_true", help="only check completeness and write the merged tables")
    parser.add_argument("--preset", choices=PRESETS, default=None, help="named sizes (options below override)")
    parser.add_argument("--identities", type=int)
    parser.add_argument("--per-identity", type=int)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--identities-from", choices=IDENTITY_SOURCES,
                        help="new 3DMM identities (default, the paper's GANFaces) or the ones the translator's L_C "
                             "trained on (its training seed and labels; the authors' code translates those)")
    add_pose_argument(parser, default="the one the translator was trained on")
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--output-size", type=int)
    parser.add_argument("--format", dest="image_format", choices=("jpg", "png"))
    parser.add_argument("--also-renders", action=argparse.BooleanOptionalAction, default=None,
                        help="also write the raw 3DMM render of each image (the paired '3DMM' set)")
    parser.add_argument("--scores", action=argparse.BooleanOptionalAction, default=None,
                        help="confidence scores: D_R error, cycle error, distance to the identity centroid in C")
    parser.add_argument("--embedder", help="C for centroid_distance (default dlib-resnet)")
    parser.add_argument("--layout", choices=LAYOUTS)
    parser.add_argument("--images-per-tar", type=int)
    parser.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=None,
                        help="bf16 autocast for G, G', D_R, C (default: where the CPU or GPU has it natively)")
    parser.add_argument("--device", default="auto",
                        help="auto (this process's GPU when CUDA exists, else the CPU), cpu, cuda or cuda:N")
    parser.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None)
    parser.add_argument("--model", help="3DMM file (default: the ICT model in the data root)")
    parser.add_argument("--model-format")
    parser.add_argument("--shard", help="i/n: do every n-th chunk starting at i (default: torchrun's rank/world)")
    parser.add_argument("--render-workers", type=int, default=0,
                        help="processes rendering the next chunks while G translates (default 0: in this "
                             "process); the same images either way. On a GPU, 2-4 keep G from waiting")
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    require_at_least(args, seed=0, render_workers=0)
    if args.data_root:
        os.environ["FACEBENCH_DATA"] = args.data_root
    if args.merge:
        summary = merge(args.out)
        print(f"{summary['images']} images of {summary['identities']} identities complete in {args.out}")
        return 0
    if args.generator is None:
        raise UserError("--generator is required: a translator trained with `python -m generators.train`")
    config = PRESETS[args.preset] if args.preset else SynthesisConfig()
    config = replace(config, **{k: v for k, v in vars(args).items()
                                if k in SynthesisConfig.__dataclass_fields__ and v is not None})
    rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    shard = parse_shard(args.shard) if args.shard else (rank, world)
    launched_by_torchrun = world > 1 and not args.shard
    if launched_by_torchrun:
        from bench.common.distributed import distributed_rank_and_size

        distributed_rank_and_size()
    device = resolve_device(args.device)
    configure_device(device)
    if args.bf16 is None and device.type == "cuda":
        config = replace(config, bf16=torch.cuda.is_bf16_supported())
    summary = synthesize(config, args.generator, args.out, shard, device=device, render_workers=args.render_workers)
    if launched_by_torchrun:  # every rank waits; rank 0 merges once all are done
        import torch.distributed as dist

        dist.barrier()
        if rank == 0 and not summary["complete"]:
            summary["merge"], summary["complete"] = merge(args.out), True
        dist.destroy_process_group()
    if summary["images"]:
        rate = summary["images"] / max(summary["seconds"], 1e-9)
        split = ", ".join(f"{k} {v:.1f}s" for k, v in summary["split"].items())
        print(f"shard {summary['shard']}: {summary['images']} images in {summary['seconds']:.0f}s "
              f"({rate:.1f} img/s; {split})")
    if summary["complete"]:
        print(f"complete: {summary['merge']['images']} images of {config.identities} identities in {args.out} "
              f"(metadata.csv, contact_sheet.png)")
    else:
        print(f"shard {summary['shard']} done; the others are not: run them, then `--merge`")
    return 0


if __name__ == "__main__":
    run_main(main)
