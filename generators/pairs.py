"""Paired real photos and 3DMM renders of the same face, for the pair-matching loss L_DP (eq. 6).

    python -m generators.pairs --lfw peopleDevTrain --out runs/pairs --limit 2000
    python -m generators.pairs --images DIR --out runs/pairs --limit 500

Per photo: MTCNN alignment to the canonical geometry at twice its size (216x216), dlib's 68
landmarks on that crop (or the photo's own landmark file, `<stem>.pts` or `<stem>.txt`, when
present), the 3DMM fitted to them (`generators.morphable.fit`), its light and colour fitted to the
photo, and the fitted face rendered with the synthetic domain's renderer and alignment. Written:
`real/NNNNNN.png` (108x108, the photo's canonical crop), `render/NNNNNN.png`, and per chunk a CSV
row per photo with the fitted parameters, the landmark error in pixels at 108x108 and a status.

Fits whose mean landmark error exceeds `--max-error` (default 3.0 px at 108x108, about 7% of the
eye distance) are dropped, as are photos without a detected face and unreadable images or landmark
files; the summary counts each. Chunks are written atomically and skipped when re-run.
Only LFW's View 1 training people may be used (`--lfw peopleDevTrain`): evaluation people never.
"""
from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image, UnidentifiedImageError
from torchvision.transforms.functional import to_tensor
from torchvision.utils import save_image
from tqdm import tqdm

from bench.common.atomic import atomic_path, write_json, write_text
from bench.common.cli import UserError, add_common_arguments, run_main, setup_logging
from bench.common.datasets import data_root
from bench.common.devices import resolve_device
from recognition.faces.align import CANONICAL_CROP, CropGeometry, MTCNNAligner, similarity_transform, warp_to_crop
from generators.landmarks import DlibLandmarks, LandmarkFileError, read_landmark_file
from generators.morphable.albedo import procedural_albedo
from generators.morphable.decimate import decimate
from generators.morphable.fit import FitConfig, fit_landmarks, fit_lighting
from generators.morphable.ict import load_ict
from generators.morphable.render import FaceRenderer, RenderBatch
from bench.common.atomic import save_image_atomically
from bench.common.images import to_rgb

log = logging.getLogger(__name__)
LANDMARK_CROP = CropGeometry(CANONICAL_CROP.size * 2, CANONICAL_CROP.padding)
RENDER_DISTANCE_MM = 3000.0  # far camera: close to the fit's weak perspective
ALLOWED_LFW_PEOPLE = ("peopleDevTrain",)


@dataclass(frozen=True)
class PairsConfig:
    limit: int = 2000
    chunk: int = 32
    max_error_px: float = 3.0
    images_per_person: int = 2
    keep_triangles: float = 0.3


PRESETS = {"paper": PairsConfig(limit=5000), "cpu": PairsConfig(limit=2000), "smoke": PairsConfig(limit=16, chunk=8)}


@dataclass(frozen=True)
class Photo:
    key: str
    path: Path
    landmarks: Path | None = None


def lfw_photos(people_file: str, images_per_person: int, root: Path | None = None) -> list[Photo]:
    """Photos of LFW people listed in `people_file` (only View 1 training people are allowed)."""
    if people_file not in ALLOWED_LFW_PEOPLE:
        raise UserError(f"--lfw {people_file}: pairs may only use LFW's training people ({', '.join(ALLOWED_LFW_PEOPLE)}); "
                        "evaluation people must never be seen in training")
    from protocols.lfw_files import LFWLayout

    layout = LFWLayout(data_root(root))
    people = layout.people(f"{people_file}.txt")
    return [Photo(f"lfw/{p.name}/{i:04d}", layout.image_path(p.name, i))
            for p in people for i in range(1, min(p.images, images_per_person) + 1)]


def folder_photos(folder: Path) -> list[Photo]:
    if not Path(folder).is_dir():
        raise UserError(f"--images {folder} is not a folder")
    photos = []
    for path in sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png")):
        marks = next((c for c in (path.with_suffix(".pts"), path.with_suffix(".txt")) if c.exists()), None)
        photos.append(Photo(str(path.relative_to(folder)), path, marks))
    if not photos:
        raise UserError(f"--images {folder}: no .jpg or .png files")
    return photos


class PairMaker:
    """Holds the models (MTCNN, dlib's predictor, the 3DMM, the renderer) across chunks."""

    def __init__(self, config: PairsConfig, fit_config: FitConfig = FitConfig(), device: str = "cpu"):
        self.config, self.fit_config = config, fit_config
        self.model = load_ict()
        self.render_model = decimate(self.model, config.keep_triangles)
        self.aligner = MTCNNAligner(device=str(device))  # the 68-point fit itself stays on the CPU (README, GPUs)
        self.landmarker = DlibLandmarks()
        self.renderer = FaceRenderer(self.render_model, CANONICAL_CROP, config.chunk)
        self.albedo, _ = procedural_albedo(self.render_model, np.random.default_rng(0))

    def chunk(self, photos: Sequence[Photo]) -> tuple[list[dict], list[tuple[np.ndarray, np.ndarray]]]:
        """Rows (one per photo, with status) and (real crop, render) pixels of the kept pairs, in row order."""
        rows: list[dict] = [{"key": p.key, "source": str(p.path), "status": "ok"} for p in photos]
        crops, landmarks, kept = [], [], []
        images = []
        for row, photo in zip(rows, photos):
            try:
                with Image.open(photo.path) as opened:
                    images.append(to_rgb(opened))
            except (OSError, UnidentifiedImageError) as error:
                row["status"], row["detail"] = "unreadable image", str(error)
                images.append(None)
        readable = [i for i, image in enumerate(images) if image is not None]
        points, found = self.aligner.landmarks([images[i] for i in readable]) if readable else ([], [])
        for i, five, hit in zip(readable, points, found):
            if not hit:
                rows[i]["status"] = "no face found"
                continue
            to_crop = similarity_transform(five, LANDMARK_CROP.template())
            crop = warp_to_crop(images[i], five, LANDMARK_CROP)
            if photos[i].landmarks is not None:
                try:
                    marks = read_landmark_file(photos[i].landmarks) @ to_crop[:, :2].T + to_crop[:, 2]
                except LandmarkFileError as error:
                    rows[i]["status"], rows[i]["detail"] = "bad landmark file", str(error)
                    continue
            else:
                marks = self.landmarker(crop, LANDMARK_CROP)
            crops.append(crop)
            landmarks.append(marks / 2)  # in the 108x108 canonical crop
            kept.append(i)
        pixels: list[tuple[np.ndarray, np.ndarray]] = []
        if not kept:
            return rows, pixels
        fit = fit_landmarks(self.model, np.stack(landmarks), self.fit_config)
        k_id = fit.identity.shape[1]
        vertices, lights = [], []
        for n, i in enumerate(kept):
            identity = np.zeros(len(self.model.identity_basis), np.float32)
            identity[:k_id] = fit.identity[n]
            shape = self.render_model.shape(identity, fit.expression[n])
            rotated = shape @ fit.rotation[n].T
            projection = 2 * (fit.scale[n] * rotated[:, :2] * np.array([1.0, -1.0]) + fit.translation[n])
            sh = fit_lighting(self.render_model, shape, fit.rotation[n], projection, self.albedo, np.asarray(crops[n]))
            vertices.append(shape)
            lights.append(sh)
            rows[i].update({"yaw": fit.yaw[n], "pitch": fit.pitch[n], "roll": fit.roll[n],
                            "landmark_error_px": float(fit.error[n]),
                            "identity": json.dumps(np.round(identity[:k_id], 4).tolist()),
                            "expression": json.dumps(np.round(fit.expression[n], 4).tolist()),
                            "sh": json.dumps(np.round(sh, 4).tolist()),
                            "landmarks": json.dumps(np.round(landmarks[n], 2).tolist())})
        renders, _ = self.renderer.render(RenderBatch(
            np.stack(vertices), np.repeat(self.albedo[None], len(kept), 0), fit.rotation,
            np.stack(lights).astype(np.float32), np.full(len(kept), RENDER_DISTANCE_MM)))
        for n, i in enumerate(kept):
            if fit.error[n] > self.config.max_error_px:
                rows[i]["status"] = "landmark error above threshold"
                continue
            real = np.asarray(crops[n].resize((CANONICAL_CROP.size,) * 2, Image.Resampling.BILINEAR))
            pixels.append((real, renders[n]))
        return rows, pixels


class W300LPPairMaker:
    """Pairs from 3DDFA fits (300W-LP / AFLW2000-3D `.mat` beside each image) and the user's BFM.

    The photo is aligned by the fit's own 68 landmarks; the render uses the fit's pose and scale
    composed with that same alignment (an orthographic camera), so both crops line up exactly as the
    fit does. Light is fitted to the photo as for the project's own pairs.
    """

    def __init__(self, config: PairsConfig, model, unit_per_mm: float = 1000.0):
        if model.origin_mm is None:
            raise UserError(f"3DMM '{model.name}' does not record its original frame (origin_mm); load it with "
                            "generators.morphable.model.load_model")
        self.config, self.model, self.unit = config, model, unit_per_mm
        self.renderer = FaceRenderer(model, CANONICAL_CROP, config.chunk)
        self.albedo = model.albedo(np.zeros(0)) if model.albedo_mean is not None else \
            procedural_albedo(model, np.random.default_rng(0))[0]

    def chunk(self, photos: Sequence[Photo]) -> tuple[list[dict], list[tuple[np.ndarray, np.ndarray]]]:
        from generators.morphable.render import five_points
        from generators.morphable.w300lp import read_300wlp, schema_coefficients

        rows: list[dict] = [{"key": p.key, "source": str(p.path), "status": "ok"} for p in photos]
        kept, reals, shapes, cameras, lights = [], [], [], [], []
        for i, photo in enumerate(photos):
            try:
                fit = read_300wlp(photo.landmarks)
                with Image.open(photo.path) as opened:
                    image = to_rgb(opened)
            except UserError as error:
                rows[i]["status"], rows[i]["detail"] = "bad fit file", str(error)
                continue
            except (OSError, UnidentifiedImageError) as error:
                rows[i]["status"], rows[i]["detail"] = "unreadable image", str(error)
                continue
            to_crop = similarity_transform(five_points(fit.landmarks), CANONICAL_CROP.template())
            identity, expression = schema_coefficients(fit, self.model, self.unit)
            shape = self.model.shape(np.pad(identity, (0, len(self.model.identity_basis) - len(identity))),
                                     np.pad(expression, (0, len(self.model.expression_basis) - len(expression))))
            rotation = fit.rotation()
            # image = s * unit * R (v + origin) + t, y flipped by the image height (3DDFA, 0-based pixels)
            a = fit.scale * self.unit
            offset = a * (rotation @ self.model.origin_mm)
            to_image = np.array([[a, 0, offset[0] + fit.translation[0]],
                                 [0, -a, image.height - 1 - (offset[1] + fit.translation[1])]])
            camera = to_crop[:, :2] @ to_image
            camera[:, 2] += to_crop[:, 2]
            real = warp_to_crop(image, five_points(fit.landmarks), CANONICAL_CROP)
            posed = shape @ rotation.T
            projection = posed[:, :2] @ camera[:, :2].T + camera[:, 2]
            lights.append(fit_lighting(self.model, shape, rotation, projection, self.albedo, np.asarray(real)))
            kept.append(i)
            reals.append(np.asarray(real))
            shapes.append(shape)
            cameras.append((camera, rotation))
            rows[i].update({"yaw": float(np.degrees(fit.yaw)), "pitch": float(np.degrees(fit.pitch)),
                            "roll": float(np.degrees(fit.roll)), "landmark_error_px": None})
        pixels = []
        if kept:
            renders, _ = self.renderer.render(RenderBatch(
                np.stack(shapes), np.repeat(self.albedo[None], len(kept), 0), np.stack([r for _, r in cameras]),
                np.stack(lights).astype(np.float32), np.full(len(kept), RENDER_DISTANCE_MM),
                model_to_crop=np.stack([c for c, _ in cameras])))
            pixels = list(zip(reals, renders))
        return rows, pixels


def w300lp_photos(folder: Path) -> list[Photo]:
    """Images with a 3DDFA `.mat` of the same name (300W-LP / AFLW2000-3D layout)."""
    if not Path(folder).is_dir():
        raise UserError(f"--w300lp {folder} is not a folder")
    photos = []
    for fit in sorted(Path(folder).rglob("*.mat")):
        image = next((fit.with_suffix(s) for s in (".jpg", ".png") if fit.with_suffix(s).exists()), None)
        if image is not None:
            photos.append(Photo(str(fit.relative_to(folder).with_suffix("")), image, fit))
    if not photos:
        raise UserError(f"--w300lp {folder}: no .mat files with an image of the same name")
    return photos


def make_pairs(config: PairsConfig, photos: Sequence[Photo], out: Path, progress: bool = True,
               maker_factory=None, device: str = "cpu") -> dict:
    """Make (or finish making) pairs for the first `config.limit` photos; returns the summary. MTCNN runs on
    `device`."""
    out = Path(out)
    for folder in ("real", "render", "chunks"):
        (out / folder).mkdir(parents=True, exist_ok=True)
    for stale in out.rglob(".tmp-*"):
        stale.unlink()
    photos = list(photos)[: config.limit]
    chunks = [photos[start : start + config.chunk] for start in range(0, len(photos), config.chunk)]
    todo = [n for n in range(len(chunks)) if not (out / "chunks" / f"{n:05d}.csv").exists()]
    maker = ((maker_factory or (lambda cfg: PairMaker(cfg, device=device)))(config)) if todo else None
    started = time.perf_counter()
    with tqdm(total=len(todo) * config.chunk, desc="pairs", unit="photo", disable=not progress) as bar:
        for n in todo:
            rows, pixels = maker.chunk(chunks[n])
            pair_ids = iter(range(n * config.chunk, (n + 1) * config.chunk))
            images = iter(pixels)
            for row in rows:
                if row["status"] == "ok":
                    index = next(pair_ids)
                    real, render = next(images)
                    row["pair"] = f"{index:06d}"
                    save_image_atomically(real, out / "real" / f"{index:06d}.png", "png")
                    save_image_atomically(render, out / "render" / f"{index:06d}.png", "png")
            write_text(out / "chunks" / f"{n:05d}.csv", pd.DataFrame(rows).to_csv(index=False))
            bar.update(len(chunks[n]))
    elapsed = time.perf_counter() - started
    table = pd.concat([pd.read_csv(out / "chunks" / f"{n:05d}.csv", dtype={"pair": str}) for n in range(len(chunks))],
                      ignore_index=True)
    write_text(out / "pairs.csv", table.to_csv(index=False))
    kept = table[table.status == "ok"]
    summary = {
        "photos": int(len(table)),
        "pairs": int(len(kept)),
        "dropped": {k: int(v) for k, v in table.status.value_counts().items() if k != "ok"},
        "mean_landmark_error_px_kept": float(kept.landmark_error_px.mean()) if len(kept) else None,
        "mean_landmark_error_px_all_fits": float(table.landmark_error_px.mean()) if "landmark_error_px" in table else None,
        "max_error_px": config.max_error_px,
        "seconds_per_photo_this_run": elapsed / max(1, len(todo) * config.chunk) if todo else None,
        "config": asdict(config),
    }
    write_json(out / "summary.json", summary)
    if len(kept):
        pair_sheet(out, kept.pair.tolist()[:24], out / "contact_sheet.png")
    return summary


def pair_sheet(out: Path, pairs: Sequence[str], path: Path, columns: int = 6) -> None:
    """Pairs side by side: real crop, then its render, `columns` pairs per row."""
    tiles = []
    for pair in pairs:
        tiles += [to_tensor(Image.open(out / "real" / f"{pair}.png")), to_tensor(Image.open(out / "render" / f"{pair}.png"))]
    with atomic_path(path) as temporary:
        save_image(torch.stack(tiles), temporary, nrow=2 * columns, padding=2, pad_value=1.0, format="png")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m generators.pairs", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--images", type=Path, help="a folder of face photos (optional <stem>.pts landmark files)")
    source.add_argument("--lfw", help="LFW people file without .txt: only peopleDevTrain is allowed")
    source.add_argument("--w300lp", type=Path, help="a 300W-LP / AFLW2000-3D folder (image + 3DDFA .mat pairs)")
    parser.add_argument("--bfm", type=Path, help="with --w300lp: the BFM the fits were made with")
    parser.add_argument("--bfm-format", default=None, help="format of --bfm when its name does not tell")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--preset", choices=PRESETS, default="cpu")
    parser.add_argument("--limit", type=int, help="number of photos to use")
    parser.add_argument("--max-error", type=float, help="drop fits with a larger mean landmark error (px at 108x108)")
    parser.add_argument("--device", default="auto",
                        help="where MTCNN runs: auto (this process's GPU when CUDA exists, else the CPU), cpu, cuda or cuda:N")
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    device = resolve_device(args.device)
    if args.data_root:
        import os

        os.environ["FACEBENCH_DATA"] = args.data_root
    config = PRESETS[args.preset]
    if args.limit is not None:
        config = replace(config, limit=args.limit)
    if args.max_error is not None:
        config = replace(config, max_error_px=args.max_error)
    if config.limit < 1:
        raise UserError("--limit must be positive")
    factory = None
    if args.w300lp:
        if args.bfm is None:
            raise UserError("--w300lp needs --bfm, the Basel Face Model the fits were made with")
        from generators.morphable.model import load_model

        bfm = load_model(args.bfm, args.bfm_format)
        photos = w300lp_photos(args.w300lp)
        factory = lambda cfg: W300LPPairMaker(cfg, bfm)  # noqa: E731
    elif args.images:
        photos = folder_photos(args.images)
    else:
        photos = lfw_photos(args.lfw, config.images_per_person)
    summary = make_pairs(config, photos, args.out, maker_factory=factory, device=device)
    print(json.dumps({k: v for k, v in summary.items() if k != "config"}, indent=2))
    return 0


if __name__ == "__main__":
    run_main(main)
