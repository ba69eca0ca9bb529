"""Build an IJB-A-format protocol folder from LFW identities: a FORMAT FIXTURE, NOT IJB-A.

    python -m protocols.ijba_fixture --out /tmp/ijba-fixture --splits 10 --subjects 100
    python -m protocols.ijba_fixture --out /tmp/ijba-devtest --people devtest   # View 1 test people only

IJB-A cannot be downloaded here, so this exercises the IJB-A code path (CSV parsing, cropping by
face box, media and template pooling, per-split TAR@FAR) on real faces. Each LFW photo is pasted at a
random scale and position onto a larger canvas and its face box (LFW's: the central 1/2.2 of the
250x250 image) is written to the metadata, so cropping by the box must recover the face. Each subject
gets 2 templates (3 when it has 6+ images), faces within a template are grouped into media of up to
two; comparisons are all genuine template pairs plus `impostors` random impostor pairs per split.

`--people devtest` draws the subjects from LFW View 1's test people only (peopleDevTest.txt, whose
people are disjoint from peopleDevTrain's): the fixture a recognizer trained on DevTrain people can be
evaluated on without identity leakage (`bench.run`). The names used are written to `people.txt`, which
the leakage guard reads (`fixture_identity_names`); numbers from it are labelled FIXTURE_LABEL.
"""
from __future__ import annotations

import argparse
import itertools
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from tqdm import tqdm

from bench.common.atomic import atomic_path, write_text
from bench.common.cli import UserError, add_common_arguments, require_at_least, run_main, setup_logging
from bench.common.datasets import data_root
from protocols.ijba import METADATA_COLUMNS
from protocols.lfw_files import LFWLayout
from recognition.embedders.registry import LFW_GEOMETRY_EXPANSION

log = logging.getLogger(__name__)

CANVAS = (360, 300)
FIXTURE_LABEL = "IJB-A format fixture from LFW"  # how a number measured on a fixture is labelled wherever shown
PEOPLE = {"all": None, "devtest": "peopleDevTest.txt"}  # --people: LFW people the subjects come from
PEOPLE_FILE = "people.txt"  # the fixture's subject names, one a line (for the leakage guard)
README = """FORMAT FIXTURE - NOT IJB-A.
Built by `python -m protocols.ijba_fixture` from LFW identities ({people}; data root {root}) with seed {seed}.
Same file layout and columns as IJB-A's 1:1 verification protocol; the faces are LFW photos pasted onto
larger canvases with their face boxes recorded. Numbers measured on it say nothing about IJB-A.
"""


def lfw_identities(layout: LFWLayout, min_images: int, people: str = "all") -> dict[str, int]:
    """Name -> image count for LFW people with at least `min_images` images: from the image folders (`all`),
    or from a people file's counts (`devtest`: View 1's test people, peopleDevTest.txt)."""
    if people not in PEOPLE:
        raise UserError(f"--people {people}: choose one of {', '.join(PEOPLE)}")
    if PEOPLE[people] is not None:
        layout.require(PEOPLE[people])
        counts = {person.name: person.images for person in layout.people(PEOPLE[people])}
    else:
        layout.require()
        counts = {folder.name: sum(1 for _ in folder.glob("*.jpg")) for folder in sorted(layout.images_dir.iterdir())
                  if folder.is_dir()}
    return {name: n for name, n in sorted(counts.items()) if n >= min_images}


def fixture_identity_names(protocol_dir: Path) -> list[str] | None:
    """The LFW names of a fixture's subjects (its people.txt; for older fixtures the LFW_SOURCE column of the
    metadata), or None for a folder that is not a fixture of this module (real IJB-A has numbered subjects)."""
    protocol_dir = Path(protocol_dir)
    listed = protocol_dir / PEOPLE_FILE
    if listed.is_file():
        return [line.strip() for line in listed.read_text().splitlines() if line.strip()]
    names: set[str] = set()
    for metadata in sorted(protocol_dir.glob("split*/verify_metadata_*.csv")):
        frame = pd.read_csv(metadata)
        if "LFW_SOURCE" not in frame.columns:
            return None
        names.update(str(source).rsplit("_", 1)[0] for source in frame.LFW_SOURCE)
    return sorted(names) if names else None


def _place_face(photo: Image.Image, rng: np.random.Generator, jitter: float) -> tuple[Image.Image, tuple]:
    """Paste a 250x250 LFW photo onto a canvas at a random scale and offset; return it and the face box."""
    scale = rng.uniform(0.55, 1.0)
    side = round(photo.width * scale)
    resized = photo.resize((side, side), Image.Resampling.BILINEAR)
    canvas = Image.new("RGB", CANVAS, tuple(int(v) for v in rng.integers(40, 200, 3)))
    box_side = side / LFW_GEOMETRY_EXPANSION
    margin = (side - box_side) / 2
    # keep the face box inside the canvas; the loose surroundings may be cut off
    x0 = int(rng.integers(-int(margin) + 1, CANVAS[0] - side + int(margin)))
    y0 = int(rng.integers(-int(margin) + 1, CANVAS[1] - side + int(margin)))
    canvas.paste(resized, (x0, y0))
    shift = rng.uniform(-jitter, jitter, 2) * box_side
    box = (x0 + margin + shift[0], y0 + margin + shift[1], box_side, box_side)
    return canvas, tuple(round(float(v), 1) for v in box)


def _templates_of(image_count: int) -> int:
    """A subject's templates: 3 when it has 6+ images (of the at most 8 used), else 2."""
    return 3 if min(image_count, 8) >= 6 else 2


def _check_impostors(names: list[str], identities: dict[str, int], splits: int, subjects: int, impostors: int,
                     seed: int) -> None:
    """Refuse, before any image is written, more impostor pairs than a split's templates make (the loop
    drawing them would never end). Replays each split's first draw, its subjects, on a generator of its own."""
    for split in range(1, splits + 1):
        chosen = np.random.default_rng([seed, split]).choice(len(names), subjects, replace=False)
        counts = [_templates_of(identities[names[i]]) for i in chosen]
        possible = sum(counts) * (sum(counts) - 1) // 2 - sum(n * (n - 1) // 2 for n in counts)
        if impostors > possible:
            raise UserError(f"--impostors {impostors}: the {subjects} subject(s) of split {split} have {sum(counts)} "
                            f"templates, which make only {possible} impostor pairs; ask for at most {possible} "
                            f"or for more --subjects")


def build_ijba_fixture(root: Path | None, out_dir: Path, splits: int = 10, subjects: int = 100,
                       impostors: int = 2000, seed: int = 0, min_images: int = 4, jitter: float = 0.03,
                       progress: bool = True, people: str = "all") -> Path:
    """Write split1..split{splits}, images/img/*.jpg and people.txt under `out_dir`; returns `out_dir`.
    `people`: all LFW people, or `devtest` (View 1's test people only)."""
    layout = LFWLayout(data_root(root))
    identities = lfw_identities(layout, min_images, people)
    if subjects > len(identities):
        raise UserError(f"--subjects {subjects}: LFW has only {len(identities)} people with >= {min_images} images"
                        + ("" if people == "all" else f" among --people {people}"))
    names = sorted(identities)
    _check_impostors(names, identities, splits, subjects, impostors, seed)
    out_dir = Path(out_dir)
    (out_dir / "images" / "img").mkdir(parents=True, exist_ok=True)
    sighting, used = 0, set()
    for split in tqdm(range(1, splits + 1), desc="ijba fixture splits", disable=not progress):
        rng = np.random.default_rng([seed, split])
        rows, template_subject = [], {}
        template, media = 0, 0
        for subject_index in rng.choice(len(names), subjects, replace=False):
            name = names[subject_index]
            used.add(name)
            images = rng.permutation(identities[name])[:8] + 1
            n_templates = _templates_of(len(images))
            for t in range(n_templates):
                template += 1
                template_subject[template] = int(subject_index)
                for position, image in enumerate(images[t::n_templates]):
                    if position % 2 == 0:
                        media += 1
                    sighting += 1
                    with Image.open(layout.image_path(name, int(image))) as photo:
                        canvas, box = _place_face(photo.convert("RGB"), rng, jitter)
                    file = f"img/{sighting}.jpg"
                    with atomic_path(out_dir / "images" / file) as temporary:
                        canvas.save(temporary, format="JPEG", quality=92)
                    rows.append((template, int(subject_index), file, media, sighting, *box, f"{name}_{image:04d}"))
        metadata = pd.DataFrame(rows, columns=[*METADATA_COLUMNS, "LFW_SOURCE"])
        by_subject: dict[int, list[int]] = {}
        for t, s in template_subject.items():
            by_subject.setdefault(s, []).append(t)
        genuine = [pair for ts in by_subject.values() for pair in itertools.combinations(ts, 2)]
        impostor: set[tuple[int, int]] = set()
        ids = np.array(list(template_subject))
        while len(impostor) < impostors:
            a, b = (int(v) for v in rng.choice(ids, 2, replace=False))
            if template_subject[a] != template_subject[b]:
                impostor.add((min(a, b), max(a, b)))
        comparisons = genuine + sorted(impostor)
        folder = out_dir / f"split{split}"
        write_text(folder / f"verify_metadata_{split}.csv", metadata.to_csv(index=False))
        write_text(folder / f"verify_comparisons_{split}.csv", "".join(f"{a},{b}\n" for a, b in comparisons))
    write_text(out_dir / PEOPLE_FILE, "".join(f"{name}\n" for name in sorted(used)))
    source = "all LFW people" if people == "all" else f"LFW View 1 test people only, {PEOPLE[people]}"
    write_text(out_dir / "README.txt", README.format(people=source, root=layout.data_root, seed=seed))
    return out_dir


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m protocols.ijba_fixture", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--splits", type=int, default=10)
    parser.add_argument("--subjects", type=int, default=100, help="subjects per split")
    parser.add_argument("--impostors", type=int, default=2000, help="impostor comparisons per split")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--people", choices=PEOPLE, default="all",
                        help="LFW people to draw subjects from: all, or devtest (View 1's test people, disjoint "
                             "from the DevTrain people a recognizer trains on)")
    parser.add_argument("--min-images", type=int, default=4, help="subjects need at least this many photos")
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    require_at_least(args, seed=0)
    if min(args.splits, args.subjects, args.impostors) < 1:
        raise UserError("--splits, --subjects and --impostors must be positive")
    if args.min_images < 2:
        raise UserError("--min-images must be at least 2 (a subject needs two templates)")
    build_ijba_fixture(args.data_root, args.out, args.splits, args.subjects, args.impostors, args.seed,
                       min_images=args.min_images, people=args.people)
    print(f"IJB-A-format fixture (NOT IJB-A) written to {args.out}")
    return 0


if __name__ == "__main__":
    run_main(main)
