"""Filling the leaderboard: one cell per (embedder, column), by the protocol's own functions, stored results reused."""
from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common.cli import UserError
from bench.common.datasets import portable_path
from bench.leaderboard.columns import Column, Source
from protocols.ijba import evaluate_ijba
from protocols.ijbc import evaluate_ijb, load_protocol, write_ijb_report
from protocols.lfw import default_out, evaluate_lfw, stored_lfw_result, write_lfw_report
from protocols.report import stored_metrics, write_report
from protocols.verification import evaluate_bin, write_verification_report
from protocols.verification_files import read_bin
from recognition.embedders import Embedder, get_embedder, list_embedders
from recognition.embedders.registry import file_safe_name, parse_embedder_name

log = logging.getLogger(__name__)


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
class Entry:
    """One --embedders entry: the text the user gave (the row label) and the embedder it names."""

    label: str
    embedder: Embedder



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


def portable_label(entry: str, root: Path | str | None = None) -> str:
    """An --embedders entry as its row label and results folder name: every absolute path in it (`NAME:WEIGHTS`,
    `onnx:PATH?options`) written as `portable_path` writes it, so that a committed leaderboard names no folder of
    the machine that made it and another machine reuses the stored results of the same file. `root`: --data-root."""
    body, question, options = entry.partition("?")
    parts = [portable_path(part, root) if part.startswith(("/", "~")) else part for part in body.split(":")]
    return ":".join(parts) + question + options


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
            log.info("%s, %s: %s (%s, %.0f s)", entry.label, column.title, format_cell(cell), cell.status, cell.seconds)
            board.cells[entry.label, column.title] = cell
    return board


def format_cell(cell: Cell, column: Column | None = None) -> str:
    """`value ± std`, `missing` or `n/a`; `(fixture)` after a figure measured on a fixture found where a real set
    belongs (fixture columns say so in their title)."""
    if cell.status == "missing":
        return "missing"
    if cell.value is None:
        return "n/a"
    text = f"{cell.value:.2f}" + (f" ± {cell.std:.2f}" if cell.std is not None and not math.isnan(cell.std) else "")
    return text + (" (fixture)" if cell.fixture_note and not (column and column.fixture) else "")
