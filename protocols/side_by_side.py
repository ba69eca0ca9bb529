"""The same faces from several sets, a row per set: what an ablation changes, seen at a glance.

    python -m protocols.side_by_side --row renders=runs/ganfaces/renders --row "all losses=runs/ganfaces/ganfaces" \\
        --row "no L_C=runs/ganfaces-no-lc/ganfaces" --images 10 --out results/translator/ablation-sheet.png

Each `--row NAME=FOLDER` is a folder of identity sub-folders (as `generators.synthesize` writes its
`ganfaces/` and `renders/`). Synthesis with the same seed and identities writes the same relative file
names for the same renders whichever translator made them, so a column is one render and its
translations: the sheet takes files present in every row, one per identity (the first), from as many
identities as `--images` asks, in sorted order.

`--difference-from NAME` also measures what the sheet shows: for every row, the mean absolute difference from
row NAME in grey levels (0-255, over pixels and channels) over *all* the files the two rows share, not only
the columns shown, printed and written as `<out>.csv`. An ablated translator that changes nothing gives ~0.
"""
from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw, ImageFont

from bench.common.atomic import atomic_path, write_text
from bench.common.cli import UserError, add_common_arguments, check_output_folder, run_main, setup_logging

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
TILE = 108  # the canonical crop's side
PADDING = 2
LABEL_WIDTH = 120


@dataclass(frozen=True)
class SheetLayout:
    """Where tile (row, column) lies in the sheet: a label column, then tiles with padding between."""

    rows: int
    columns: int
    tile: int = TILE

    def box(self, row: int, column: int) -> tuple[int, int, int, int]:
        left = LABEL_WIDTH + PADDING + column * (self.tile + PADDING)
        top = PADDING + row * (self.tile + PADDING)
        return left, top, left + self.tile, top + self.tile

    @property
    def size(self) -> tuple[int, int]:
        return (LABEL_WIDTH + PADDING + self.columns * (self.tile + PADDING),
                PADDING + self.rows * (self.tile + PADDING))


def images_under(folder: Path) -> list[str]:
    """Relative paths of the images in `folder`'s identity sub-folders, sorted."""
    return sorted(p.relative_to(folder).as_posix() for p in folder.glob("*/*") if p.suffix.lower() in IMAGE_SUFFIXES)


def common_files(rows: Mapping[str, Path], images: int) -> list[str]:
    """The first image of each of the first `images` identities that every row holds."""
    present = None
    for name, folder in rows.items():
        if not folder.is_dir():
            raise UserError(f"--row {name}={folder}: no such folder")
        files = set(images_under(folder))
        if not files:
            raise UserError(f"--row {name}={folder}: no images in identity sub-folders (<identity>/<image>.jpg|png)")
        present = files if present is None else present & files
    chosen, identities = [], set()
    for relative in sorted(present):
        identity = relative.split("/")[0]
        if identity not in identities:
            identities.add(identity)
            chosen.append(relative)
        if len(chosen) == images:
            break
    if not chosen:
        raise UserError("the rows share no image file names: were they synthesised with the same seed and identities?")
    return chosen


def side_by_side(rows: Mapping[str, Path], images: int = 10) -> tuple[Image.Image, list[str]]:
    """The sheet (labels on the left, a row per set) and the relative files shown in its columns."""
    files = common_files(rows, images)
    layout = SheetLayout(len(rows), len(files))
    sheet = Image.new("RGB", layout.size, "white")
    draw, font = ImageDraw.Draw(sheet), ImageFont.load_default(size=15)
    for row, (name, folder) in enumerate(rows.items()):
        top = layout.box(row, 0)[1]
        draw.multiline_text((6, top + TILE // 2 - 12), name.replace(" ", "\n", 1) if len(name) > 14 else name,
                            fill="black", spacing=4, font=font)
        for column, relative in enumerate(files):
            with Image.open(folder / relative) as image:
                tile = image.convert("RGB").resize((TILE, TILE), Image.Resampling.BILINEAR)
            sheet.paste(tile, layout.box(row, column)[:2])
    return sheet, files


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB").resize((TILE, TILE), Image.Resampling.BILINEAR), dtype=np.int16)


def differences_from(rows: Mapping[str, Path], reference: str) -> pd.DataFrame:
    """Per row: the files it shares with row `reference` and their mean absolute difference from it (grey levels)."""
    if reference not in rows:
        raise UserError(f"--difference-from {reference}: no row of that name (rows: {', '.join(rows)})")
    base = {f: _pixels(rows[reference] / f) for f in images_under(rows[reference])}  # decoded once for every row
    table = []
    for name, folder in rows.items():
        shared = sorted(set(base) & set(images_under(folder)))
        mean = float(np.mean([np.abs(_pixels(folder / f) - base[f]).mean() for f in shared])) if shared else float("nan")
        table.append({"row": name, "files": len(shared), f"mean |row - {reference}| (grey levels)": round(mean, 3)})
    return pd.DataFrame(table)


def parse_rows(specs: Sequence[str]) -> dict[str, Path]:
    rows = {}
    for spec in specs:
        name, equals, folder = spec.partition("=")
        if not equals or not name or not folder:
            raise UserError(f"--row '{spec}': expected NAME=FOLDER")
        if name in rows:
            raise UserError(f"--row '{spec}': the name '{name}' is given twice")
        rows[name] = Path(folder)
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m protocols.side_by_side", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser)
    parser.add_argument("--row", action="append", required=True, help="NAME=FOLDER of identity sub-folders")
    parser.add_argument("--images", type=int, default=10, help="columns: one image of each of this many identities")
    parser.add_argument("--out", type=Path, required=True, help="the PNG to write")
    parser.add_argument("--difference-from", metavar="NAME", default=None,
                        help="also measure each row's mean absolute difference from row NAME over all shared files "
                             "(printed, and written as <out>.csv)")
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    if args.images < 1:
        raise UserError(f"--images must be at least 1, not {args.images}")
    check_output_folder(args.out.parent)
    rows = parse_rows(args.row)
    table = None if args.difference_from is None else differences_from(rows, args.difference_from)
    sheet, files = side_by_side(rows, args.images)
    with atomic_path(args.out) as temporary:
        sheet.save(temporary, format="png")
    print(f"{len(args.row)} rows x {len(files)} images ({files[0]} ... {files[-1]}) in {args.out}")
    if table is not None:
        write_text(args.out.with_suffix(".csv"), table.to_csv(index=False))
        print(table.to_markdown(index=False))
    return 0


if __name__ == "__main__":
    run_main(main)
