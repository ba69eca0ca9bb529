"""One leaderboard across protocols: every embedder on every set whose data is present, in the field's columns.

    python -m bench.leaderboard --embedders dlib-resnet,lbp
    python -m bench.leaderboard --embedders dlib-resnet,lbp,recognizer:runs/rec/checkpoint.pt --fixtures

Columns, in the field's order (what each is, `COLUMNS`; where its data is looked for under the data root):
LFW (`protocols.lfw`, View 2 10-fold accuracy, the project's convention, no flip), CFP-FP, AgeDB-30, CALFW,
CPLFW (`protocols.verification` on insightface's .bin files, accuracy in insightface's convention with flip),
IJB-B and IJB-C (`protocols.ijbc`, 1:1 TAR@FAR=1e-4, media then template pooling, no flip) and IJB-A
(`protocols.ijba`, 1:1 TAR@FAR=1e-3, mean over splits). A set whose files are absent is marked missing with
the file or folder looked for. With --fixtures, the LFW-made format fixtures (`protocols.bin_fixture`,
`protocols.ijbc_fixture`, `protocols.ijba_fixture`, built once into the cache folder) are evaluated too and
shown in a separate table whose columns say FIXTURE: they exercise the code paths and are never the real sets.

Each (embedder, set) result is written where the protocol's own command writes it (results/lfw/...,
results/verification/<embedder>/<set>, results/<ijbb|ijbc>/<embedder>, results/ijba/<embedder>; fixtures under
<out>/fixtures/) and reused when its metrics.json holds the same evaluation (embedder key, the data's content
digest, options): a rerun with one more embedder evaluates that embedder only (--force recomputes). Embeddings
are cached as for every protocol (`protocols.embedding`).

--embedders is a comma-separated list of names as `--embedder` takes them (`lbp`, `onnx:PATH?opts`,
`timm:NAME`), and `NAME:WEIGHTS` for a registered embedder that takes a weights file
(`recognizer:runs/rec`, `dlib-resnet:/models/dlib.dat`).
"""
from __future__ import annotations

import argparse
import hashlib
import logging
import math
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from bench.common.atomic import write_text
from bench.common.cli import UserError, add_common_arguments, check_output_folder, run_main, setup_logging
from bench.common.datasets import cache_dir, data_root, portable_path
from bench.common.machine import describe_machine, machine
from protocols.bin_fixture import build_lfw_bin
from protocols.embedding import add_embedding_arguments, embedding_options
from protocols.ijba import evaluate_ijba, find_splits
from protocols.ijba_fixture import build_ijba_fixture
from protocols.ijbc import evaluate_ijb, load_protocol, write_ijb_report
from protocols.ijbc_fixture import build_ijbc_fixture
from protocols.lfw import default_out, evaluate_lfw, stored_lfw_result, write_lfw_report
from protocols.lfw_files import PAIRS_FILES, LFWLayout
from protocols.report import stored_metrics, write_report
from protocols.verification import evaluate_bin, write_verification_report
from protocols.verification_files import FIXTURE_MARKER_SUFFIX, read_bin
from recognition.embedders import Embedder, get_embedder, list_embedders
from recognition.embedders.registry import file_safe_name, parse_embedder_name

log = logging.getLogger(__name__)

# Where each set is looked for under the data root (overridable: --bin-dir, --ijb-dir, --ijba-dir)
BIN_DIR = "verification"  # insightface's lfw.bin, cfp_fp.bin, agedb_30.bin, calfw.bin, cplfw.bin (as in faces_emore/)
IJB_DIR = "IJB_release"  # insightface's IJB_release/IJBB and IJB_release/IJBC
IJBA_DIR = "IJB-A_11_sets"  # split1..split10 (as bench.run looks for it)

# The format fixtures --fixtures builds from LFW (sized so that each column's figure is measurable on it:
# 70 people give the IJB-C layout over 10,000 impostor pairs, which TAR@FAR=1e-4 needs)
FIXTURE_BIN_PAIRS = 600
FIXTURE_IJBC_SUBJECTS = 70
FIXTURE_IJBA = {"splits": 3, "subjects": 30, "impostors": 1000}
FIXTURE_SEED = 0


@dataclass(frozen=True)
class Column:
    """One leaderboard column: the set, the protocol that measures it, the figure shown and where its data lies."""

    key: str  # results folder / file name of the set: lfw, cfp_fp, ..., ijbb, ijbc, ijba
    title: str
    kind: str  # lfw | bin | ijb | ijba
    figure: str  # what the cell holds
    note: str  # protocol and convention
    fixture: bool = False


BIN_NOTE = ("`protocols.verification` on insightface's .bin (112x112 ArcFace-aligned faces warped into the embedder's "
            "crop), flip on; insightface's convention: L2-normalised features, squared distance, threshold grid "
            "0..4 step 0.01, KFold(10) unshuffled; mean ± std (ddof=0) over the ten folds")
IJB_NOTE = ("`protocols.ijbc` 1:1 template verification: faces warped by the given five points, pooled within media "
            "then templates, cosine; no flip, no score weighting; TAR at the largest ROC point with FAR <= 1e-4 "
            "(n/a with fewer than 10,000 impostor pairs)")
IJBA_NOTE = ("`protocols.ijba` 1:1 verification: faces cropped by their box (MTCNN alignment for aligned-crop "
             "embedders), media then template pooling, cosine; TAR@FAR=1e-3 per split, mean ± std (ddof=1) over splits")
LFW_NOTE = ("`protocols.lfw` View 2 (pairs.txt), 10 folds: threshold from the other nine folds (the project's "
            "convention, `protocols.metrics`), the embedder's own metric, MTCNN alignment for aligned-crop embedders, "
            "no flip; mean ± std (ddof=1) over the folds")

COLUMNS = (
    Column("lfw", "LFW", "lfw", "accuracy (%)", LFW_NOTE),
    Column("cfp_fp", "CFP-FP", "bin", "accuracy (%)", BIN_NOTE),
    Column("agedb_30", "AgeDB-30", "bin", "accuracy (%)", BIN_NOTE),
    Column("calfw", "CALFW", "bin", "accuracy (%)", BIN_NOTE),
    Column("cplfw", "CPLFW", "bin", "accuracy (%)", BIN_NOTE),
    Column("ijbb", "IJB-B", "ijb", "TAR@FAR=1e-4 (%)", IJB_NOTE),
    Column("ijbc", "IJB-C", "ijb", "TAR@FAR=1e-4 (%)", IJB_NOTE),
    Column("ijba", "IJB-A", "ijba", "TAR@FAR=1e-3 (%)", IJBA_NOTE),
)
FIXTURE_COLUMNS = (
    Column("lfw-bin", "LFW .bin FIXTURE", "bin", "accuracy (%)", BIN_NOTE, fixture=True),
    Column("ijbc", "IJB-C layout FIXTURE", "ijb", "TAR@FAR=1e-4 (%)", IJB_NOTE, fixture=True),
    Column("ijba", "IJB-A layout FIXTURE", "ijba", "TAR@FAR=1e-3 (%)", IJBA_NOTE, fixture=True),
)


@dataclass
class Cell:
    """One embedder on one column: the figure (percent) and its spread, or why there is none."""

    status: str  # computed | stored | missing (a present set whose figure cannot be measured: value None, n/a)
    value: float | None = None
    std: float | None = None
    folder: Path | None = None
    fixture_note: str | None = None  # the set found where the real one belongs is itself a fixture
    seconds: float = 0.0


@dataclass
class Source:
    """Where a column's data is and what identifies it: `path` as looked for, `digest` of its content."""

    path: Path
    present: bool
    digest: str | None = None
    loaded: Any = None  # the set read once for all embedders (VerificationSet, IJBProtocol), when needed
    note: str | None = None  # fixture marker text


@dataclass
class Entry:
    """One --embedders entry: the text the user gave (the row label) and the embedder it names."""

    label: str
    embedder: Embedder


# ----------------------------------------------------------------------------------------------------- embedders

def parse_embedder_list(text: str) -> list[str]:
    """The entries of --embedders: comma-separated, none empty, none twice."""
    entries = [part.strip() for part in text.split(",")]
    if not text.strip() or any(not entry for entry in entries):
        raise UserError(f"--embedders {text!r}: a comma-separated list of embedder names with no empty entry, "
                        "e.g. --embedders dlib-resnet,lbp")
    twice = sorted({entry for entry in entries if entries.count(entry) > 1})
    if twice:
        raise UserError(f"--embedders: {', '.join(twice)} named twice")
    return entries


def build_embedder(entry: str) -> Embedder:
    """`NAME`, `PREFIX:TARGET?options` (onnx:, torchscript:, timm:) or `NAME:WEIGHTS` for a registered NAME."""
    try:
        name, colon, weights = entry.partition(":")
        if colon and parse_embedder_name(entry) is None and name in list_embedders():
            if not weights:
                raise UserError(f"nothing after '{name}:'; write {name}:WEIGHTS")
            return get_embedder(name, weights=weights)
        return get_embedder(entry)
    except UserError as error:
        raise UserError(f"--embedders: '{entry}': {error}") from None


# ------------------------------------------------------------------------------------------------------- sources

def _sha1(path: Path, digest=None):
    digest = digest or hashlib.sha1()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest


def files_digest(paths: Sequence[Path]) -> str:
    """SHA-1 over the names and contents of protocol files: a stored result is reused only for the same files."""
    digest = hashlib.sha1()
    for path in paths:
        digest.update(Path(path).name.encode() + b"\0")
        _sha1(path, digest)
    return digest.hexdigest()


def lfw_source(root: Path) -> Source:
    layout = LFWLayout(root)
    pairs = layout.root / PAIRS_FILES["10fold"][0]
    present = pairs.is_file() and layout.images_dir.is_dir()
    return Source(pairs if not present else layout.root, present, loaded=layout if present else None)


def bin_source(path: Path) -> Source:
    if not path.is_file():
        return Source(path, False)
    marker = path.with_name(path.name + FIXTURE_MARKER_SUFFIX)
    note = marker.read_text().strip().splitlines()[0] if marker.is_file() else None
    return Source(path, True, _sha1(path).hexdigest(), note=note)  # what protocols.verification records as bin_sha1


def ijb_source(folder: Path, set_name: str) -> Source:
    """IJB_release/IJBB or IJBC: present when its face list is there; digest over every meta file."""
    face_list = folder / "meta" / f"{set_name}_face_tid_mid.txt"
    if not face_list.is_file():
        return Source(face_list, False)
    metas = sorted(p for p in (folder / "meta").iterdir() if p.is_file() and p.name.startswith(f"{set_name}_"))
    readme = folder / "README.txt"
    first = readme.read_text(errors="replace").strip().splitlines()[:1] if readme.is_file() else []
    note = first[0] if first and "FIXTURE" in first[0] else None
    return Source(folder, True, files_digest(metas), note=note)


def ijba_source(folder: Path) -> Source:
    if not folder.is_dir():
        return Source(folder, False)
    numbers = find_splits(folder)  # a folder that is there but broken is the user's to fix: UserError
    files = [folder / f"split{n}" / f"verify_{what}_{n}.csv" for n in numbers for what in ("metadata", "comparisons")]
    readme = folder / "README.txt"
    first = readme.read_text(errors="replace").strip().splitlines()[:1] if readme.is_file() else []
    note = first[0] if first and "FIXTURE" in first[0] else None
    return Source(folder, True, files_digest(files), note=note)


# ---------------------------------------------------------------------------------------------------- evaluation

def _percent(value: Any) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else 100 * float(value)


def lfw_cell(entry: Entry, source: Source, folder: Path, options: dict, force: bool) -> Cell:
    embedder, layout = entry.embedder, source.loaded
    stored = None if force else stored_lfw_result(folder, embedder, layout)
    if stored is not None:
        summary, status = stored["metrics"], "stored"
    else:
        result = evaluate_lfw(embedder, layout.data_root, "10fold", layout=layout, aligner="mtcnn", flip=False,
                              **options)
        write_lfw_report(result, folder)
        summary, status = result.summary, "computed"
    return Cell(status, summary["accuracy_percent"], summary["accuracy_std_percent"], folder)


def bin_cell(entry: Entry, source: Source, folder: Path, options: dict, force: bool) -> Cell:
    embedder = entry.embedder
    stored = None if force else stored_metrics(folder, {"embedder_key": embedder.cache_key, "bin_sha1": source.digest,
                                                        "flip": True})
    if stored is not None:
        summary, status = stored["metrics"], "stored"
    else:
        if source.loaded is None:
            source.loaded = read_bin(source.path)  # read once, for every embedder that needs it
        result = evaluate_bin(embedder, source.loaded, flip=True, **options)
        write_verification_report(result, folder)
        summary, status = result.summary, "computed"
    return Cell(status, summary["insightface_accuracy_percent"], summary["insightface_accuracy_std_percent"], folder,
                source.note)


def ijb_cell(entry: Entry, source: Source, folder: Path, options: dict, force: bool, set_name: str) -> Cell:
    embedder = entry.embedder
    wanted = {"embedder_key": embedder.cache_key, "set": set_name, "meta_digest": source.digest, "flip": False,
              "score_weighting": False, "pooling": "media"}
    stored = None if force else stored_metrics(folder, wanted)
    if stored is not None:
        summary, status = stored["metrics"], "stored"
    else:
        if source.loaded is None:
            source.loaded = load_protocol(source.path, set_name)
        result = evaluate_ijb(embedder, source.loaded, flip=False, **options)
        result.config["meta_digest"] = source.digest  # what a rerun checks before reusing it
        write_ijb_report(result, folder)
        summary, status = result.summary, "computed"
    return Cell(status, _percent(summary.get("tar@far=0.0001")), None, folder, source.note)


def ijba_cell(entry: Entry, source: Source, folder: Path, options: dict, force: bool) -> Cell:
    embedder = entry.embedder
    aligner = "mtcnn" if embedder.crop else None
    wanted = {"embedder_key": embedder.cache_key, "protocol_digest": source.digest, "flip": False, "aligner": aligner}
    stored = None if force else stored_metrics(folder, wanted)
    if stored is not None:
        summary, status = stored["metrics"], "stored"
    else:
        result = evaluate_ijba(embedder, source.path, None, None, flip=False, aligner="mtcnn", **options)
        config = {**result.config, "protocol_digest": source.digest, "aligner": aligner}
        title = f"IJB-A 1:1 verification ({source.path.name}): {entry.label}"
        write_report(folder, title, result.summary, config, {"splits": result.per_split}, result.curves)
        summary, status = result.summary, "computed"
    return Cell(status, _percent(summary.get("tar@far=0.001_mean")), _percent(summary.get("tar@far=0.001_std")),
                folder, source.note)


# ------------------------------------------------------------------------------------------------------ fixtures

def build_fixtures(root: Path, folder: Path) -> dict[str, Path]:
    """The three LFW-made format fixtures under `folder` (the cache), each built once: column key -> path."""
    folder = Path(folder)
    lfw_bin = folder / f"lfw-bin-{FIXTURE_BIN_PAIRS}pairs" / "lfw.bin"
    if not (lfw_bin.is_file() and lfw_bin.with_name(lfw_bin.name + FIXTURE_MARKER_SUFFIX).is_file()):
        log.info("building the .bin format fixture (%d LFW pairs, MTCNN) in %s", FIXTURE_BIN_PAIRS, lfw_bin)
        build_lfw_bin(root, lfw_bin, "10fold", FIXTURE_BIN_PAIRS)  # the marker is written last
    ijbc = folder / f"ijbc-{FIXTURE_IJBC_SUBJECTS}people-seed{FIXTURE_SEED}"
    if not (ijbc / "README.txt").is_file():  # README.txt is written last
        log.info("building the IJB-C-layout format fixture (%d LFW people) in %s", FIXTURE_IJBC_SUBJECTS, ijbc)
        build_ijbc_fixture(root, ijbc, FIXTURE_IJBC_SUBJECTS, FIXTURE_SEED)
    ijba = folder / "ijba-{splits}splits-{subjects}people-{impostors}impostors-seed{seed}".format(
        **FIXTURE_IJBA, seed=FIXTURE_SEED)
    if not (ijba / "README.txt").is_file():
        log.info("building the IJB-A-layout format fixture in %s", ijba)
        build_ijba_fixture(root, ijba, seed=FIXTURE_SEED, **FIXTURE_IJBA)
    return {"lfw-bin": lfw_bin, "ijbc": ijbc, "ijba": ijba}


# ----------------------------------------------------------------------------------------------------- the table

@dataclass
class Leaderboard:
    entries: list[Entry]
    columns: list[Column]
    sources: dict[str, Source]  # by column title
    cells: dict[tuple[str, str], Cell] = field(default_factory=dict)  # (label, column title) -> cell


def _cell_runner(column: Column) -> Callable[..., Cell]:
    if column.kind == "lfw":
        return lfw_cell
    if column.kind == "bin":
        return bin_cell
    if column.kind == "ijb":
        return lambda *args: ijb_cell(*args, set_name=column.key)
    return ijba_cell


def result_folder(column: Column, entry: Entry, results: Path, out: Path) -> Path:
    """Where the protocol's own command writes this result (fixtures: <out>/fixtures/<fixture>/<embedder>)."""
    name = file_safe_name(entry.label)
    if column.fixture:
        return out / "fixtures" / column.key / name
    if column.kind == "lfw":
        return results / "lfw" / default_out(entry.label, entry.embedder).name
    if column.kind == "bin":
        return results / "verification" / name / column.key
    return results / column.key / name


def evaluate(board: Leaderboard, results: Path, out: Path, options: dict, force: bool = False) -> Leaderboard:
    """Fill every (embedder, column) cell whose data is present: stored results reused, the rest evaluated."""
    for column in board.columns:
        source = board.sources[column.title]
        for entry in board.entries:
            if not source.present:
                board.cells[entry.label, column.title] = Cell("missing")
                continue
            started = time.perf_counter()
            folder = result_folder(column, entry, results, out)
            cell = _cell_runner(column)(entry, source, folder, options, force)
            cell.seconds = time.perf_counter() - started
            log.info("%s, %s: %s (%s, %.0f s)", entry.label, column.title, _format(cell), cell.status, cell.seconds)
            board.cells[entry.label, column.title] = cell
    return board


def _format(cell: Cell) -> str:
    if cell.status == "missing":
        return "missing"
    if cell.value is None:
        return "n/a"
    text = f"{cell.value:.2f}" + (f" ± {cell.std:.2f}" if cell.std is not None and not math.isnan(cell.std) else "")
    return text + (" (fixture)" if cell.fixture_note else "")


def table(board: Leaderboard, fixtures: bool) -> pd.DataFrame:
    """One row per embedder; the real sets' columns, or the fixtures' (each titled FIXTURE)."""
    columns = [c for c in board.columns if c.fixture == fixtures]
    return pd.DataFrame([{"embedder": f"`{e.label}`", **{c.title: _format(board.cells[e.label, c.title])
                                                         for c in columns}} for e in board.entries])


def long_table(board: Leaderboard, root: Path | None) -> pd.DataFrame:
    """Every cell as a row: for the CSV."""
    rows = []
    for column in board.columns:
        source = board.sources[column.title]
        for entry in board.entries:
            cell = board.cells[entry.label, column.title]
            rows.append({"embedder": entry.label, "column": column.title, "set": column.key,
                         "fixture": column.fixture or bool(cell.fixture_note), "figure": column.figure,
                         "value": cell.value, "std": cell.std, "status": cell.status,
                         "data": portable_path(source.path, root),
                         "results": portable_path(cell.folder) if cell.folder else "", "seconds": round(cell.seconds, 1)})
    return pd.DataFrame(rows)


def column_notes(board: Leaderboard, root: Path | None) -> list[str]:
    """What each column measures (columns sharing a protocol listed together), then where its data was looked for."""
    conventions: dict[str, list[Column]] = {}
    for column in board.columns:
        conventions.setdefault(column.note, []).append(column)
    lines = [f"- **{', '.join(c.title for c in columns)}**, {columns[0].figure}: {note}."
             for note, columns in conventions.items()]
    lines += ["", "Data:", ""]
    for column in board.columns:
        source = board.sources[column.title]
        where = portable_path(source.path, root)
        if not source.present:
            lines.append(f"- {column.title}: **missing**, looked for `{where}`")
        else:
            fixture = f" (**a format fixture**: {source.note})" if source.note and not column.fixture else ""
            lines.append(f"- {column.title}: `{where}`{fixture}")
    return lines


def markdown(board: Leaderboard, command: str, root: Path | None, fixtures: bool, seconds: float) -> str:
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    sections = [
        "# Leaderboard\n",
        f"`{command}`\n",
        f"Machine: {describe_machine(machine())}. Date: {now}. Wall time: {seconds:.0f} s "
        "(stored results are reused: see the CSV's status column).\n",
        "## Real sets\n",
        "Columns in the field's order. *missing*: the set's files are not in the data root (the note says where "
        "they are looked for).\n",
        table(board, fixtures=False).to_markdown(index=False) + "\n",
    ]
    if fixtures:
        sections += [
            "## Format fixtures (built from LFW; NOT the sets they are named after)\n",
            "Each fixture has the layout of the set it is named after, built by the project's fixture command from "
            "LFW photos. Numbers on it exercise that protocol's code path and say nothing about the real set.\n",
            table(board, fixtures=True).to_markdown(index=False) + "\n",
        ]
    sections += ["## Columns\n", "\n".join(column_notes(board, root)) + "\n"]
    return "\n".join(sections)


def portable_command(argv: Sequence[str]) -> str:
    words = ["python", "-m", "bench.leaderboard", *argv]
    return " ".join(shlex.quote(portable_path(w) if w.startswith("/") else w) for w in words)


# ----------------------------------------------------------------------------------------------------------- CLI

def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.leaderboard", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser)
    parser.add_argument("--embedders", required=True,
                        help="comma-separated embedders: registered names, PREFIX:TARGET (onnx:, torchscript:, timm:) "
                             "or NAME:WEIGHTS (recognizer:runs/rec)")
    parser.add_argument("--fixtures", action="store_true",
                        help="also evaluate the LFW-made format fixtures (built once into the cache folder), "
                             "in a separate table marked FIXTURE")
    parser.add_argument("--bin-dir", type=Path, default=None,
                        help=f"folder of insightface's .bin sets (default: <data root>/{BIN_DIR})")
    parser.add_argument("--ijb-dir", type=Path, default=None,
                        help=f"insightface's IJB_release folder, holding IJBB/ and IJBC/ (default: <data root>/{IJB_DIR})")
    parser.add_argument("--ijba-dir", type=Path, default=None,
                        help=f"IJB-A's protocol folder, split1..split10 (default: <data root>/{IJBA_DIR})")
    parser.add_argument("--results", type=Path, default=Path("results"),
                        help="where per-protocol results are written and reused (default: results)")
    parser.add_argument("--out", type=Path, default=Path("results/leaderboard"),
                        help="leaderboard.md and leaderboard.csv (default: results/leaderboard)")
    parser.add_argument("--force", action="store_true", help="re-evaluate even where a stored result matches")
    add_embedding_arguments(parser)
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    labels = parse_embedder_list(args.embedders)
    check_output_folder(args.out)
    check_output_folder(args.results, "--results")
    options = embedding_options(args)
    options["progress"] = sys.stderr.isatty()
    entries = [Entry(label, build_embedder(label)) for label in labels]  # every name checked before any work
    root = data_root(args.data_root)
    sources = {"LFW": lfw_source(root)}
    bin_dir = args.bin_dir or root / BIN_DIR
    for column in COLUMNS:
        if column.kind == "bin":
            sources[column.title] = bin_source(bin_dir / f"{column.key}.bin")
        elif column.kind == "ijb":
            sources[column.title] = ijb_source((args.ijb_dir or root / IJB_DIR) / column.key.upper(), column.key)
        elif column.kind == "ijba":
            sources[column.title] = ijba_source(args.ijba_dir or root / IJBA_DIR)
    columns = list(COLUMNS)
    if args.fixtures:
        if not sources["LFW"].present:
            raise UserError(f"--fixtures: the fixtures are built from LFW, which is missing: "
                            f"looked for {sources['LFW'].path}")
        built = build_fixtures(root, cache_dir() / "leaderboard-fixtures")
        sources[FIXTURE_COLUMNS[0].title] = bin_source(built["lfw-bin"])
        sources[FIXTURE_COLUMNS[1].title] = ijb_source(built["ijbc"], "ijbc")
        sources[FIXTURE_COLUMNS[2].title] = ijba_source(built["ijba"])
        columns += FIXTURE_COLUMNS
    started = time.perf_counter()
    board = evaluate(Leaderboard(entries, columns, sources), args.results, args.out, options, args.force)
    seconds = time.perf_counter() - started
    command = portable_command(sys.argv[1:] if argv is None else argv)
    text = markdown(board, command, args.data_root, args.fixtures, seconds)
    write_text(args.out / "leaderboard.md", text)
    write_text(args.out / "leaderboard.csv", long_table(board, args.data_root).to_csv(index=False))
    print(text)
    print(f"written: {args.out / 'leaderboard.md'}, {args.out / 'leaderboard.csv'}")
    return 0


if __name__ == "__main__":
    run_main(main)
