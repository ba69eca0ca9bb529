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
import io
import json
import logging
import os
import tarfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from PIL import Image
from tqdm import tqdm

from bench.atomic import atomic_path, write_json, write_text
from bench.cli import UserError, add_common_arguments, run_main, setup_logging
from bench.download import file_digest
from generators.align import CropGeometry
from generators.networks import BeganDiscriminator, make_fitting_network, make_generator

log = logging.getLogger(__name__)

LAYOUTS = ("folder", "webdataset")
SCORE_COLUMNS = ("d_error", "cycle_error", "centroid_distance")


@dataclass(frozen=True)
class SynthesisConfig:
    identities: int = 10_000
    per_identity: int = 50
    seed: int = 1  # the translator's synthetic pool uses its training seed (0): seed 1 gives new identities
    batch_size: int = 64
    output_size: int = 108
    image_format: str = "jpg"  # jpg (quality 95) or png
    also_renders: bool = False
    scores: bool = True
    embedder: str = "dlib-resnet"  # C, for centroid_distance
    layout: str = "folder"
    images_per_tar: int = 1000  # webdataset: images per tar (whole identities)
    bf16: bool = True  # autocast for G, G', D_R on the CPU
    channels_last: bool = False
    model: str = "ict"
    model_format: str | None = None
    keep_triangles: float = 0.3


PRESETS = {
    "paper": SynthesisConfig(identities=10_000, per_identity=50),
    "cpu": SynthesisConfig(identities=500, per_identity=20, also_renders=True),
    "smoke": SynthesisConfig(identities=6, per_identity=3, batch_size=3, also_renders=True),
}


# ----------------------------------------------------------------------------------- the translator

@dataclass
class Translator:
    """The frozen networks of a trained translator, in eval mode (dropout off, batch-norm statistics)."""

    G: torch.nn.Module  # EMA weights
    G_prime: torch.nn.Module
    D_real: torch.nn.Module
    image_size: int
    training_seed: int
    digest: str


def save_untrained_translator(path: Path, preset: str = "smoke", seed: int = 0) -> Path:
    """A checkpoint in generators.train's format with seeded random weights: for tests and speed benchmarks,
    where what G learnt does not matter."""
    from generators.train import PRESETS as TRAIN_PRESETS

    torch.manual_seed(seed)
    config = TRAIN_PRESETS[preset]
    G = make_generator(config.network)
    networks = {"G": G.state_dict(), "G_ema": G.state_dict(), "G_prime": make_fitting_network(config.network).state_dict(),
                "D_real": BeganDiscriminator(config.network).state_dict()}
    with atomic_path(path) as temporary:
        torch.save({"config": asdict(config), "networks": networks}, temporary)
    return Path(path)


def load_translator(path: Path) -> Translator:
    """A `generators.train` run folder (or its checkpoint.pt) -> G_ema, G', D_R."""
    from generators.train import config_from_dict

    path = Path(path)
    checkpoint = path / "checkpoint.pt" if path.is_dir() else path
    if not checkpoint.is_file():
        raise UserError(f"--generator {path}: no checkpoint.pt; train one with `python -m generators.train`")
    try:
        stored = torch.load(checkpoint, map_location="cpu", weights_only=False)
        config = config_from_dict(stored["config"])
        networks = stored["networks"]
        G, G_prime, D_real = (make_generator(config.network), make_fitting_network(config.network),
                              BeganDiscriminator(config.network))
        G.load_state_dict(networks["G_ema"])
        G_prime.load_state_dict(networks["G_prime"])
        D_real.load_state_dict(networks["D_real"])
    except (KeyError, RuntimeError, TypeError, EOFError) as error:
        raise UserError(f"--generator {checkpoint}: not a translator checkpoint of generators.train ({error})") from None
    for network in (G, G_prime, D_real):
        network.eval().requires_grad_(False)
    return Translator(G, G_prime, D_real, config.network.image_size, config.seed, file_digest(checkpoint, "sha256")[:16])


# ------------------------------------------------------------------------------------- the work plan

def chunk_identities(config: SynthesisConfig) -> int:
    """Identities per chunk: one batch's worth (folders) or one tar's worth (webdataset)."""
    images = config.images_per_tar if config.layout == "webdataset" else config.batch_size
    return max(1, images // config.per_identity)


def chunk_ranges(config: SynthesisConfig) -> list[range]:
    step = chunk_identities(config)
    return [range(start, min(start + step, config.identities)) for start in range(0, config.identities, step)]


def parse_shard(text: str) -> tuple[int, int]:
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise UserError(f"--shard {text}: expected i/n, e.g. 0/4") from None
    if count < 1 or not 0 <= index < count:
        raise UserError(f"--shard {text}: need 0 <= i < n")
    return index, count


def part_path(out: Path, chunk: int) -> Path:
    return out / "parts" / f"chunk-{chunk:06d}.csv"


def image_name(identity: int, image: int, suffix: str) -> str:
    return f"id_{identity:05d}/{image:03d}.{suffix}"


def wds_key(identity: int, image: int) -> str:
    return f"id_{identity:05d}_{image:03d}"


def tar_path(out: Path, chunk: int) -> Path:
    return out / "webdataset" / f"ganfaces-{chunk:06d}.tar"


def _encode(pixels: np.ndarray, image_format: str) -> bytes:
    buffer = io.BytesIO()
    if image_format == "png":
        Image.fromarray(pixels).save(buffer, format="PNG", compress_level=1)
    else:
        Image.fromarray(pixels).save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


def _write_bytes(path: Path, data: bytes) -> None:
    with atomic_path(path) as temporary:
        temporary.write_bytes(data)


def _add_to_tar(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)  # fixed owner, mode and time: byte-identical tars for a seed
    info.size, info.mode, info.mtime = len(data), 0o644, 0
    archive.addfile(info, io.BytesIO(data))


def _to_uint8(images: torch.Tensor, size: int) -> np.ndarray:
    """(B, 3, s, s) in [-1, 1] -> (B, size, size, 3) uint8, resized with antialiasing when s != size."""
    images = images.float()
    if images.shape[-1] != size:
        images = F.interpolate(images, size=(size, size), mode="bicubic", antialias=True, align_corners=False)
    return ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


# ------------------------------------------------------------------------------------------ the work

class Synthesizer:
    """Render, translate, score and write chunks; keeps a running split of where the time goes."""

    def __init__(self, config: SynthesisConfig, translator: Translator, out: Path):
        from generators.morphable.render import FaceRenderer
        from generators.render import RenderConfig, load_render_model

        self.config, self.translator, self.out = config, translator, Path(out)
        self.model = load_render_model(RenderConfig(model=config.model, model_format=config.model_format,
                                                    keep_triangles=config.keep_triangles))
        self.renderer = FaceRenderer(self.model, CropGeometry(translator.image_size, 0.25), config.batch_size)
        self.embedder = None
        if config.scores:
            from recognition.embedders import get_embedder

            self.embedder = get_embedder(config.embedder).eval().requires_grad_(False)
        if config.channels_last:
            for network in (translator.G, translator.G_prime, translator.D_real):
                network.to(memory_format=torch.channels_last)
        self.seconds = {"render": 0.0, "G": 0.0, "scores": 0.0, "write": 0.0}

    def _autocast(self):
        return torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.config.bf16)

    def _translate(self, rendered: np.ndarray) -> dict[str, torch.Tensor]:
        x = torch.from_numpy(rendered).permute(0, 3, 1, 2).float() / 127.5 - 1
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
                result["d_error"] = (reconstructed.float() - generated.float()).abs().mean((1, 2, 3))
                result["cycle_error"] = (cycled.float() - x).abs().mean((1, 2, 3))
                size = self.embedder.input_size[0]  # same 0.25 margin: a resize gives C's crop geometry
                chips = F.interpolate(generated.float(), size=(size, size), mode="bilinear", antialias=True,
                                      align_corners=False)
                result["embedding"] = self.embedder((chips.clamp(-1, 1) + 1) * 127.5).float()
            self.seconds["scores"] += time.perf_counter() - started
        return result

    def run_chunk(self, chunk: int, identities: range) -> pd.DataFrame:
        """Compute one chunk in its fixed batches, write its images, then its part table (the done marker)."""
        from generators.morphable.render import batch_from_samples
        from generators.morphable.sampling import sample_identity, sample_image

        config, out = self.config, self.out
        started = time.perf_counter()
        people = {i: sample_identity(self.model, config.seed, i) for i in identities}
        samples = [(people[i], sample_image(self.model, config.seed, i, j))
                   for i in identities for j in range(config.per_identity)]
        self.seconds["render"] += time.perf_counter() - started
        rows, embeddings, archive_entries = [], [], []
        scale = config.output_size / self.translator.image_size
        for start in range(0, len(samples), config.batch_size):
            batch = samples[start : start + config.batch_size]
            started = time.perf_counter()
            rendered, landmarks = self.renderer.render(batch_from_samples(self.model, batch))
            self.seconds["render"] += time.perf_counter() - started
            result = self._translate(rendered)
            started = time.perf_counter()
            generated = _to_uint8(result["generated"], config.output_size)
            renders = _to_uint8(result["x"], config.output_size) if config.also_renders else None
            for k, (person, sample) in enumerate(batch):
                name = image_name(sample.identity, sample.image, config.image_format)
                files = {"ganfaces": _encode(generated[k], config.image_format)}
                if renders is not None:
                    files["renders"] = _encode(renders[k], config.image_format)
                if config.layout == "folder":
                    for folder, data in files.items():
                        _write_bytes(out / folder / name, data)
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
                    _add_to_tar(archive, name, data)
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
            stale.unlink()
        except FileNotFoundError:  # another shard cleaned it
            pass


def synthesize(config: SynthesisConfig, generator: Path, out: Path, shard: tuple[int, int] = (0, 1),
               progress: bool = True) -> dict:
    """Do (or finish) this shard's chunks; merge when every chunk is done. Returns a summary."""
    validate(config)
    out = Path(out)
    translator = load_translator(generator)
    if config.seed == translator.training_seed:
        log.warning("seed %d is the translator's training seed: the identities are those G was trained on, "
                    "not new ones", config.seed)
    _prepare_out(config, translator, out)
    ranges = chunk_ranges(config)
    index, count = shard
    todo = [c for c in range(len(ranges)) if c % count == index and not part_path(out, c).exists()]
    summary = {"shard": f"{index}/{count}", "chunks": len(todo), "images": 0, "seconds": 0.0}
    if todo:
        synthesizer = Synthesizer(config, translator, out)
        started = time.perf_counter()
        with tqdm(total=sum(len(ranges[c]) for c in todo) * config.per_identity, desc=f"synthesize {index}/{count}",
                  unit="img", disable=not progress) as bar:
            for chunk in todo:
                synthesizer.run_chunk(chunk, ranges[chunk])
                bar.update(len(ranges[chunk]) * config.per_identity)
                bar.set_postfix({k: f"{v:.0f}s" for k, v in synthesizer.seconds.items()})
        summary.update(images=sum(len(ranges[c]) for c in todo) * config.per_identity, seconds=time.perf_counter() - started, split=dict(synthesizer.seconds))
    missing = [c for c in range(len(ranges)) if not part_path(out, c).exists()]
    summary["complete"] = not missing
    if not missing:
        summary["merge"] = merge(out)
    return summary


def validate(config: SynthesisConfig) -> None:
    for name in ("identities", "per_identity", "batch_size", "output_size", "images_per_tar"):
        if getattr(config, name) < 1:
            raise UserError(f"--{name.replace('_', '-')} must be positive")
    if config.image_format not in ("jpg", "png"):
        raise UserError(f"--format must be jpg or png, not '{config.image_format}'")
    if config.layout not in LAYOUTS:
        raise UserError(f"--layout must be one of {', '.join(LAYOUTS)}, not '{config.layout}'")


# ------------------------------------------------------------------------------------------- merging

def read_config(out: Path) -> SynthesisConfig:
    stored = Path(out) / "config.json"
    if not stored.is_file():
        raise UserError(f"{out} holds no GANFaces run (no config.json): run `python -m generators.synthesize` first")
    values = json.loads(stored.read_text())
    return SynthesisConfig(**{k: v for k, v in values.items() if k in SynthesisConfig.__dataclass_fields__})


def merge(out: Path) -> dict:
    """Check that every chunk is done and every identity has all its images; write the merged tables."""
    out = Path(out)
    config = read_config(out)
    ranges = chunk_ranges(config)
    missing = [c for c in range(len(ranges)) if not part_path(out, c).exists()]
    if missing:
        first = ranges[missing[0]]
        raise UserError(f"{out}: {len(missing)} of {len(ranges)} chunks are not done (first: identities "
                        f"{first.start}-{first.stop - 1}, chunk {missing[0]}); run the remaining shards, "
                        "or run without --shard to finish them")
    table = pd.concat([pd.read_csv(part_path(out, c)) for c in range(len(ranges))], ignore_index=True)
    problems = []
    duplicated = table.file[table.file.duplicated()].tolist()
    if duplicated:
        problems.append(f"{len(duplicated)} duplicate files (first {duplicated[0]})")
    counts = table.groupby("identity").size()
    wrong = counts[counts != config.per_identity]
    absent = sorted(set(range(config.identities)) - set(counts.index))
    if len(wrong) or absent:
        problems.append(f"identities with a wrong number of images: {list(wrong.index[:5])}, missing: {absent[:5]}")
    problems += _check_files(out, config, table)
    if problems:
        raise UserError(f"{out} is inconsistent: " + "; ".join(problems) + ". Delete the affected parts/chunk-*.csv "
                        "and re-run to redo them")
    write_text(out / "metadata.csv", table.to_csv(index=False))
    summary = {"identities": config.identities, "images": len(table), "layout": config.layout,
               "renders": config.also_renders}
    if config.scores:
        summary["scores"] = {c: {"mean": float(table[c].mean()), "p95": float(table[c].quantile(0.95))}
                             for c in SCORE_COLUMNS}
    write_json(out / "summary.json", summary)
    contact_sheet(out, table, out / "contact_sheet.png")
    return summary


def _check_files(out: Path, config: SynthesisConfig, table: pd.DataFrame) -> list[str]:
    columns = ["file"] + (["render_file"] if config.also_renders else [])
    if config.layout == "folder":
        listed = set()
        for column in columns:
            listed |= set(table[column])
        on_disk = {p.relative_to(out).as_posix() for folder in ("ganfaces", "renders") if (out / folder).is_dir()
                   for p in (out / folder).rglob(f"*.{config.image_format}")}
        problems = []
        if listed - on_disk:
            problems.append(f"{len(listed - on_disk)} listed images are missing (first {min(listed - on_disk)})")
        if on_disk - listed:
            problems.append(f"{len(on_disk - listed)} images on disk belong to no identity of this run "
                            f"(first {min(on_disk - listed)})")
        return problems
    problems = []
    for tar, group in table.groupby(table.file.str.split(":").str[0]):
        with tarfile.open(out / tar) as archive:
            names = set(archive.getnames())
        wanted = {f.split(":")[1] for column in columns for f in group[column]}
        if wanted - names:
            problems.append(f"{tar} lacks {len(wanted - names)} images")
    return problems


def read_image(out: Path, file: str) -> Image.Image:
    """An image of the run by its metadata `file` (a path, or `tar:member` for webdataset)."""
    if ":" in file:
        tar, member = file.split(":", 1)
        with tarfile.open(Path(out) / tar) as archive:
            return Image.open(io.BytesIO(archive.extractfile(member).read())).convert("RGB")
    with Image.open(Path(out) / file) as image:
        return image.convert("RGB")


def contact_sheet(out: Path, table: pd.DataFrame, path: Path, identities: int = 6, per_identity: int = 8) -> None:
    """Per identity a row of GANFaces, under it (with renders) the row of their 3DMM renders."""
    from torchvision.transforms.functional import to_tensor
    from torchvision.utils import save_image

    tiles = []
    columns = min(per_identity, int(table.groupby("identity").size().min()))
    for identity in sorted(table.identity.unique())[:identities]:
        rows = table[table.identity == identity].head(columns)
        if isinstance(rows.render_file.iloc[0], str) and rows.render_file.iloc[0]:
            tiles += [to_tensor(read_image(out, f)) for f in rows.render_file]
        tiles += [to_tensor(read_image(out, f)) for f in rows.file]
    with atomic_path(path) as temporary:
        save_image(torch.stack(tiles), temporary, nrow=columns, padding=2, pad_value=1.0, format="png")


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
    parser.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=None)
    parser.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None)
    parser.add_argument("--model", help="3DMM file (default: the ICT model in the data root)")
    parser.add_argument("--model-format")
    parser.add_argument("--shard", help="i/n: do every n-th chunk starting at i (default: torchrun's rank/world)")
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
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
        from generators.train import distributed_rank_and_size

        distributed_rank_and_size()
    summary = synthesize(config, args.generator, args.out, shard)
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
