"""Build an IJB-C-layout folder (insightface's IJB_release/IJBC) from LFW people: a FORMAT FIXTURE, NOT IJB-C.

    python -m protocols.ijbc_fixture --out /tmp/ijbc-fixture --subjects 40 [--seed 0] [--impostors N]

IJB-B/C cannot be downloaded here, so this exercises `protocols.ijbc` (the files, the given five points,
media-then-template pooling, 1:1 and open-set 1:N) on real faces. Only LFW's View 1 DevTest people with
3+ images are used (none of them is a DevTrain person, the project's training people). For each chosen
subject, up to 6 photos become loose crops (a random square around the face, 0.55-0.95 of the photo, at a
random size of 112-224 px, JPEG); MTCNN detects each crop's five points and face probability once, written as
`meta/ijbc_name_5pts_score.txt` (a crop without a detected face is dropped; a subject left with fewer than
2 crops too). A subject's crops form 2 templates (3 with 5+ crops), each of 1-3 media; the first template is
its gallery template. Subjects alternate between gallery G1 and G2 (so every probe is a non-mated search in
one of them); the other templates are the probes (`ijbc_1N_probe_mixed.csv`). 1:1 pairs: every genuine
template pair, and every impostor pair (or `--impostors` of them, drawn at random).
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
from protocols.ijbc import FIXTURE_MARK, GALLERY_NAMES, SETS, meta_path
from protocols.lfw_files import LFWLayout
from recognition.faces.align import MTCNNAligner

log = logging.getLogger(__name__)

PEOPLE_FILE = "peopleDevTest.txt"  # never DevTrain: the project trains on DevTrain people
MAX_PHOTOS = 6
README = FIXTURE_MARK + """ - NOT {upper}.
Built by `python -m protocols.ijbc_fixture` from {subjects} LFW people of {people} (data root {root}), seed {seed}.
Same file layout as insightface's IJB_release/{folder} (meta/{set}_face_tid_mid.txt, {set}_name_5pts_score.txt,
{set}_template_pair_label.txt, {set}_1N_gallery_{g1}.csv / _{g2}.csv, {set}_1N_probe_mixed.csv, loose_crop/).
The faces are loose crops of LFW photos; their five points and scores are MTCNN's ({dropped} crop(s) without a
detected face dropped). fixture_sources.txt names each crop's LFW photo. Numbers measured on it exercise the
IJB-B/C code path only and say nothing about IJB-B or IJB-C. It holds LFW images: keep it out of the repository.
"""


def devtest_people(layout: LFWLayout, min_images: int = 3) -> list[tuple[str, int]]:
    """(name, image count) of LFW's DevTest people with at least `min_images` images, in the file's order."""
    return [(p.name, p.images) for p in layout.people(PEOPLE_FILE) if p.images >= min_images]


def loose_crop(photo: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A random square around the face of a 250x250 LFW photo, resized to a random side (an IJB-style loose crop)."""
    side = photo.width * rng.uniform(0.55, 0.95)
    centre = np.array(photo.size) / 2 + rng.uniform(-0.04, 0.04, 2) * photo.width
    left, top = centre - side / 2
    size = int(rng.integers(112, 225))
    return photo.transform((size, size), Image.Transform.EXTENT, (left, top, left + side, top + side),
                           resample=Image.Resampling.BILINEAR)


def _media_groups(count: int, rng: np.random.Generator) -> list[int]:
    """Media index (0..m-1) of each of a template's `count` faces, m = 1..min(3, count) media."""
    media = int(rng.integers(1, min(3, count) + 1))
    return [i % media for i in range(count)]


def build_ijbc_fixture(root: Path | None, out_dir: Path, subjects: int = 40, seed: int = 0,
                       impostors: int | None = None, set_name: str = "ijbc", progress: bool = True) -> Path:
    """Write the layout under `out_dir` (see the module docstring); returns `out_dir`."""
    if set_name not in SETS:
        raise UserError(f"--set {set_name}: choose one of {', '.join(SETS)}")
    layout = LFWLayout(data_root(root))
    people = devtest_people(layout)
    if not 2 <= subjects <= len(people):
        raise UserError(f"--subjects {subjects}: choose 2 to {len(people)} (LFW DevTest people with 3+ images)")
    out_dir = Path(out_dir)
    (out_dir / "loose_crop").mkdir(parents=True, exist_ok=True)
    (out_dir / "meta").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    aligner = MTCNNAligner()
    chosen = [people[i] for i in rng.permutation(len(people))]
    faces, marks, sources, templates = [], [], [], []  # templates: (template id, subject id, is gallery)
    image_number, template_id, media_id, dropped, used = 0, 0, 0, 0, 0
    bar = tqdm(total=subjects, desc="ijbc fixture subjects", disable=not progress)
    for subject_id, (name, count) in enumerate(chosen, 1):
        if used == subjects:
            break
        numbers = rng.permutation(count)[:MAX_PHOTOS] + 1
        crops = []
        for number in numbers:
            with Image.open(layout.image_path(name, int(number))) as photo:
                crops.append(loose_crop(photo.convert("RGB"), rng))
        points, found, scores = aligner.detect(crops)
        dropped += int((~found).sum())
        kept = [(int(n), c, p, s) for n, c, p, s, f in zip(numbers, crops, points, scores, found) if f]
        if len(kept) < 2:
            log.info("%s: MTCNN found %d face(s) in %d crops; subject skipped", name, len(kept), len(crops))
            continue
        used += 1
        bar.update()
        n_templates = 3 if len(kept) >= 5 else 2
        for t in range(n_templates):
            template_id += 1
            members = kept[t::n_templates]
            templates.append((template_id, subject_id, t == 0))
            groups = _media_groups(len(members), rng)
            for (number, crop, point, score), group in zip(members, groups):
                image_number += 1
                file = f"{image_number}.jpg"
                with atomic_path(out_dir / "loose_crop" / file) as temporary:
                    crop.save(temporary, format="JPEG", quality=92)
                faces.append((file, template_id, media_id + group + 1))
                marks.append((file, *np.round(point.ravel(), 3), round(float(score), 6)))
                sources.append((file, f"{name}_{number:04d}"))
            media_id += max(groups) + 1
    bar.close()
    if used < subjects:
        raise UserError(f"--subjects {subjects}: only {used} DevTest people kept 2+ detected faces")
    write_text(meta_path(out_dir, set_name, "face_tid_mid.txt"), "".join(f"{f} {t} {m}\n" for f, t, m in faces))
    write_text(meta_path(out_dir, set_name, "name_5pts_score.txt"),
               "".join(" ".join(f"{v:g}" if not isinstance(v, str) else v for v in row) + "\n" for row in marks))
    write_text(out_dir / "fixture_sources.txt", "".join(f"{f} {s}\n" for f, s in sources))
    subject_of = {t: s for t, s, _ in templates}
    genuine = [(a, b) for a, b in itertools.combinations(sorted(subject_of), 2) if subject_of[a] == subject_of[b]]
    impostor = [(a, b) for a, b in itertools.combinations(sorted(subject_of), 2) if subject_of[a] != subject_of[b]]
    if impostors is not None:
        if impostors > len(impostor):
            raise UserError(f"--impostors {impostors}: the {subjects} subjects' templates make only {len(impostor)}")
        impostor = [impostor[i] for i in sorted(rng.choice(len(impostor), impostors, replace=False))]
    write_text(meta_path(out_dir, set_name, "template_pair_label.txt"),
               "".join(f"{a} {b} 1\n" for a, b in genuine) + "".join(f"{a} {b} 0\n" for a, b in impostor))
    frame = pd.DataFrame(faces, columns=["FILENAME", "TEMPLATE_ID", "SIGHTING_ID"])
    frame["SUBJECT_ID"] = frame.TEMPLATE_ID.map(subject_of)
    frame["FILENAME"] = "img/" + frame.FILENAME
    frame = frame[["TEMPLATE_ID", "SUBJECT_ID", "FILENAME", "SIGHTING_ID"]]
    gallery = {t for t, _, is_gallery in templates if is_gallery}
    subjects_in_order = sorted({s for _, s, _ in templates})
    first_gallery = set(subjects_in_order[0::2])
    names = GALLERY_NAMES[set_name]
    for gallery_name, in_gallery in ((names[0], frame.SUBJECT_ID.isin(first_gallery)),
                                     (names[1], ~frame.SUBJECT_ID.isin(first_gallery))):
        rows = frame[frame.TEMPLATE_ID.isin(gallery) & in_gallery]
        write_text(meta_path(out_dir, set_name, f"1N_gallery_{gallery_name}.csv"), rows.to_csv(index=False))
    write_text(meta_path(out_dir, set_name, "1N_probe_mixed.csv"),
               frame[~frame.TEMPLATE_ID.isin(gallery)].to_csv(index=False))
    write_text(out_dir / "README.txt", README.format(upper=set_name.upper().replace("IJB", "IJB-"), folder=set_name.upper(), subjects=used,
                                                     people=PEOPLE_FILE, root=layout.data_root, seed=seed,
                                                     set=set_name, g1=names[0], g2=names[1], dropped=dropped))
    log.info("%d subjects, %d templates, %d faces, %d genuine and %d impostor pairs; MTCNN missed %d crop(s)",
             used, len(templates), len(faces), len(genuine), len(impostor), dropped)
    return out_dir


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m protocols.ijbc_fixture", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser)
    parser.add_argument("--out", type=Path, required=True, help="folder to write (outside the repository)")
    parser.add_argument("--subjects", type=int, default=40, help="LFW DevTest people (2 or more)")
    parser.add_argument("--impostors", type=int, default=None, help="impostor pairs (default: every one)")
    parser.add_argument("--set", choices=SETS, default="ijbc", help="file prefix: ijbc, or ijbb for IJB-B's names")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    require_at_least(args, seed=0)
    if args.subjects < 2 or (args.impostors is not None and args.impostors < 1):
        raise UserError("--subjects must be at least 2 and --impostors positive")
    build_ijbc_fixture(args.data_root, args.out, args.subjects, args.seed, args.impostors, args.set)
    print(f"{args.set.upper()}-layout FORMAT FIXTURE (NOT {args.set.upper().replace('IJB', 'IJB-')}) written to {args.out}")
    return 0


if __name__ == "__main__":
    run_main(main)
