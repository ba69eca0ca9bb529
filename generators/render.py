"""Render a synthetic face dataset from a 3D morphable model: the synthetic domain S.

    python -m generators.render --identities 100 --per-identity 10 --seed 0 --out runs/renders

Writes an ImageFolder (`<out>/id_00000/000.png`, one folder per identity), per-identity metadata
(`<out>/id_00000/metadata.csv`, written last, atomically: its presence marks the identity done),
the merged table `<out>/metadata.csv` (every sampled parameter and the 68 landmarks in crop pixels)
and `<out>/contact_sheet.png`. Re-running skips finished identities; a killed run leaves no
half-written image (each image is written to a temporary name and renamed).
"""
from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import pandas as pd
import torch
from PIL import Image
from torchvision.transforms.functional import to_tensor
from torchvision.utils import save_image
from tqdm import tqdm

from bench.common.atomic import atomic_path, save_image_atomically, write_json, write_text
from bench.common.cli import UserError, add_common_arguments, require_at_least, run_main, setup_logging
from recognition.faces.align import CANONICAL_CROP
from generators.morphable.decimate import decimate
from generators.morphable.model import MorphableModel, load_model
from generators.morphable.render import FaceRenderer, batch_from_samples
from generators.morphable.sampling import add_pose_argument, sample_identity, sample_image, sampling_config

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RenderConfig:
    identities: int = 100
    per_identity: int = 10
    seed: int = 0
    batch_size: int = 64
    image_format: str = "png"  # png (lossless, compress level 1) or jpg (quality 95)
    model: str = "ict"  # a 3DMM file, or "ict" for the ICT model in the data root
    model_format: str | None = None
    keep_triangles: float = 0.3  # decimation: 30% of the ICT mesh's triangles look the same at 108x108
    pose: str = "wide"  # pose distribution (generators.morphable.sampling.POSE_DISTRIBUTIONS)


PRESETS = {
    "paper": RenderConfig(identities=10_000, per_identity=50),
    "cpu": RenderConfig(identities=1_000, per_identity=20),
    "smoke": RenderConfig(identities=8, per_identity=4, batch_size=16),
}


def identity_folder(out: Path, identity: int) -> Path:
    return out / f"id_{identity:05d}"


def load_render_model(config: RenderConfig) -> MorphableModel:
    """The configured 3DMM, decimated for small renders."""
    if config.model == "ict":
        from generators.morphable.ict import load_ict

        model = load_ict()
    else:
        model = load_model(Path(config.model), config.model_format)
    return decimate(model, config.keep_triangles)


def _batches(model: MorphableModel, config: RenderConfig, todo: Sequence[int]) -> Iterator[list[tuple]]:
    """Groups of (identity sample, image sample) of at most batch_size, identities in order."""
    batch: list[tuple] = []
    sampling = sampling_config(config.pose)
    for identity in todo:
        person = sample_identity(model, config.seed, identity)
        for image in range(config.per_identity):
            batch.append((person, sample_image(model, config.seed, identity, image, sampling)))
            if len(batch) == config.batch_size:
                yield batch
                batch = []
    if batch:
        yield batch


def render_dataset(config: RenderConfig, out: Path, progress: bool = True) -> pd.DataFrame:
    """Render (or finish rendering) the dataset of `config` into `out`; returns the merged metadata."""
    if config.image_format not in ("png", "jpg"):
        raise UserError(f"--format must be png or jpg, not '{config.image_format}'")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    stored_config = out / "config.json"
    if stored_config.exists():
        previous = json.loads(stored_config.read_text())
        if previous != asdict(config):
            raise UserError(f"{out} holds a dataset rendered with another configuration ({stored_config}); "
                            "choose another --out or delete it")
    else:
        write_json(stored_config, asdict(config))
    for stale in out.rglob(".tmp-*"):  # left by a killed run; never read
        stale.unlink()
    model = load_render_model(config)
    todo = [i for i in range(config.identities) if not (identity_folder(out, i) / "metadata.csv").exists()]
    if todo:
        log.info("%d of %d identities to render", len(todo), config.identities)
        renderer = FaceRenderer(model, CANONICAL_CROP, config.batch_size)
        pending: dict[int, list[dict]] = {}
        with tqdm(total=len(todo) * config.per_identity, desc="render", unit="img", disable=not progress) as bar:
            for batch in _batches(model, config, todo):
                images, landmarks = renderer.render(batch_from_samples(model, batch))
                for (person, sample), pixels, marks in zip(batch, images, landmarks):
                    folder = identity_folder(out, sample.identity)
                    name = f"{sample.image:03d}.{config.image_format}"
                    save_image_atomically(pixels, folder / name, config.image_format)
                    row = {"file": f"{folder.name}/{name}", **sample.record(model.expression_names),
                           **{f"albedo_{k}": json.dumps(v) for k, v in person.albedo_parameters.items()},
                           **{f"lm{k}_{axis}": float(marks[k, a]) for k in range(68) for a, axis in enumerate("xy")}}
                    pending.setdefault(sample.identity, []).append(row)
                    if len(pending[sample.identity]) == config.per_identity:
                        write_text(folder / "metadata.csv", pd.DataFrame(pending.pop(sample.identity)).to_csv(index=False))
                bar.update(len(batch))
    table = pd.concat([pd.read_csv(identity_folder(out, i) / "metadata.csv") for i in range(config.identities)],
                      ignore_index=True)
    write_text(out / "metadata.csv", table.to_csv(index=False))
    contact_sheet(out, table, out / "contact_sheet.png")
    return table


def contact_sheet(out: Path, table: pd.DataFrame, path: Path, identities: int = 8, per_identity: int = 8) -> None:
    """Rows = identities, columns = their images: identity, expression, pose and light at a glance."""
    chosen = sorted(table.identity.unique())[:identities]
    per_identity = min(per_identity, int(table.groupby("identity").size().max()))
    tiles = []
    for identity in chosen:
        files = table[table.identity == identity].file.tolist()[:per_identity]
        tiles += [to_tensor(Image.open(out / f).convert("RGB")) for f in files]
        tiles += [to_tensor(Image.new("RGB", Image.open(out / files[0]).size))] * (per_identity - len(files))
    with atomic_path(path) as temporary:
        save_image(torch.stack(tiles), temporary, nrow=per_identity, padding=2, pad_value=1.0, format="png")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m generators.render", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser)
    parser.add_argument("--preset", choices=PRESETS, default=None, help="named sizes (options below override)")
    parser.add_argument("--identities", type=int)
    parser.add_argument("--per-identity", type=int)
    parser.add_argument("--seed", type=int)
    add_pose_argument(parser)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--format", dest="image_format", choices=("png", "jpg"))
    parser.add_argument("--model", help="3DMM file or folder (default: the ICT model in the data root)")
    parser.add_argument("--model-format", help="3DMM format name when the file name does not tell")
    parser.add_argument("--keep-triangles", type=float, help="fraction of the mesh's triangles to keep (1 = all)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    require_at_least(args, seed=0)
    if args.data_root:
        import os

        os.environ["FACEBENCH_DATA"] = args.data_root
    config = PRESETS[args.preset] if args.preset else RenderConfig()
    overrides = {k: v for k, v in vars(args).items()
                 if k in RenderConfig.__dataclass_fields__ and v is not None}
    config = replace(config, **overrides)
    for name in ("identities", "per_identity", "batch_size"):
        if getattr(config, name) < 1:
            raise UserError(f"--{name.replace('_', '-')} must be positive")
    table = render_dataset(config, args.out)
    print(f"{len(table)} images of {config.identities} identities in {args.out} (contact sheet: "
          f"{args.out / 'contact_sheet.png'})")
    return 0


if __name__ == "__main__":
    run_main(main)
