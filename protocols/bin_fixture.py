"""Build a verification .bin from LFW pairs: a FORMAT FIXTURE in insightface's layout, NOT insightface's lfw.bin.

    python -m protocols.bin_fixture --lfw-pairs 10fold --out /tmp/lfw-fixture.bin [--limit 600]

insightface's .bin files cannot be downloaded here, so this writes one from the LFW of the data root to
exercise `protocols.verification` on real faces and to check it against `protocols.lfw` on the same pairs:
each photo aligned by MTCNN to ArcFace's 112x112 template (`ARCFACE_CROP`), JPEG-encoded, two images per
pair in the pairs file's order (so the ten consecutive blocks are LFW's ten folds), pickled as
(images, issame). A marker file `<out>.FIXTURE.txt` beside it says what it is; reports of evaluations on it
carry the word FIXTURE. It holds LFW images: keep it out of the repository.
"""
from __future__ import annotations

import argparse
import io
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from bench.common.atomic import write_text
from bench.common.cli import UserError, add_common_arguments, run_main, setup_logging
from bench.common.datasets import data_root, portable_path
from protocols.lfw_files import PAIRS_FILES, LFWLayout, Pair
from protocols.verification_files import FIXTURE_MARKER_SUFFIX, write_bin
from recognition.faces.align import ARCFACE_CROP, MTCNNAligner

log = logging.getLogger(__name__)

MARKER = """FORMAT FIXTURE - NOT insightface's lfw.bin.
Built by `python -m protocols.bin_fixture` from LFW ({pairs_files}, {pairs} pairs{limited}) under data root {root}:
MTCNN landmarks -> ArcFace 112x112 template, JPEG quality {quality}. MTCNN found no face in {misses} of
{faces} distinct photos (centred-box fallback). Numbers measured on it exercise the .bin code path only.
"""


def chosen_pairs(pairs: Sequence[Pair], limit: int | None) -> list[Pair]:
    """All pairs, or `limit` of them spread evenly over the file (each tenth then still holds one LFW fold's
    genuine and impostor pairs, where the first `limit` lines would all be genuine)."""
    if limit is None or limit >= len(pairs):
        return list(pairs)
    if limit < 10:
        raise UserError(f"--limit {limit}: a verification set needs at least 10 pairs (10 folds)")
    return [pairs[i] for i in np.linspace(0, len(pairs) - 1, limit).round().astype(int)]


def arcface_faces(layout: LFWLayout, photos: Sequence[tuple[str, int]], quality: int = 95, batch_size: int = 32,
                  progress: bool = True) -> tuple[dict[tuple[str, int], bytes], int]:
    """JPEG bytes of each LFW photo aligned to ArcFace's 112x112 template by MTCNN, and how many had no face."""
    aligner = MTCNNAligner()
    encoded: dict[tuple[str, int], bytes] = {}
    for start in tqdm(range(0, len(photos), batch_size), desc="align to ArcFace 112", disable=not progress):
        batch = photos[start : start + batch_size]
        images = []
        for name, number in batch:
            with Image.open(layout.image_path(name, number)) as photo:
                images.append(photo.convert("RGB"))
        chips, _ = aligner.chips(images, ARCFACE_CROP)
        for key, chip in zip(batch, chips):
            buffer = io.BytesIO()
            chip.save(buffer, format="JPEG", quality=quality)
            encoded[key] = buffer.getvalue()
    return encoded, aligner.misses


def build_lfw_bin(root: Path | None, out: Path, split: str = "10fold", limit: int | None = None,
                  quality: int = 95, progress: bool = True) -> Path:
    """Write the fixture .bin (and its FIXTURE marker) from LFW's `split` pairs; returns `out`."""
    if split not in PAIRS_FILES:
        raise UserError(f"unknown LFW pairs '{split}'; choose one of {', '.join(PAIRS_FILES)}")
    layout = LFWLayout(data_root(root))
    pairs = chosen_pairs([p for name in PAIRS_FILES[split] for p in layout.pairs(name)], limit)
    photos = list(dict.fromkeys(photo for p in pairs for photo in ((p.name1, p.image1), (p.name2, p.image2))))
    encoded, misses = arcface_faces(layout, photos, quality, progress=progress)
    images = [encoded[photo] for p in pairs for photo in ((p.name1, p.image1), (p.name2, p.image2))]
    out = write_bin(Path(out), images, [p.same for p in pairs])
    write_text(out.with_name(out.name + FIXTURE_MARKER_SUFFIX), MARKER.format(
        pairs_files=" + ".join(PAIRS_FILES[split]), pairs=len(pairs), root=portable_path(layout.data_root, root),
        quality=quality, limited=f", --limit {limit} spread evenly" if limit and limit < len(pairs) else "",
        misses=misses, faces=len(photos)))
    log.info("%d pairs, %d distinct photos, MTCNN missed %d: %s", len(pairs), len(photos), misses, out)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m protocols.bin_fixture", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser)
    parser.add_argument("--lfw-pairs", choices=tuple(PAIRS_FILES), default="10fold",
                        help="10fold: pairs.txt (View 2, 6,000 pairs); view1: DevTrain + DevTest")
    parser.add_argument("--out", type=Path, required=True, help="the .bin to write (outside the repository)")
    parser.add_argument("--limit", type=int, default=None, help="only this many pairs, spread over the file")
    parser.add_argument("--quality", type=int, default=95, help="JPEG quality")
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    if args.out.suffix != ".bin":
        raise UserError(f"--out {args.out}: name the file NAME.bin (the verification sets are found by that suffix)")
    if not 1 <= args.quality <= 100:
        raise UserError("--quality must be 1..100")
    build_lfw_bin(args.data_root, args.out, args.lfw_pairs, args.limit, args.quality)
    print(f"verification .bin FORMAT FIXTURE (NOT insightface's lfw.bin) written to {args.out}")
    return 0


if __name__ == "__main__":
    run_main(main)
