"""The leaderboard as Markdown (one row per embedder, a note per column, machine, date, command) and as CSV."""
from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from bench.common.datasets import portable_command, portable_path
from bench.common.machine import describe_machine, machine
from bench.leaderboard.cells import Leaderboard, format_cell
from bench.leaderboard.columns import Column, fixture_recipes


def cells_line(board: Leaderboard) -> str:
    """How many cells were evaluated now, reused from stored results, and missing."""
    statuses = [cell.status for cell in board.cells.values()]
    counts = {status: statuses.count(status) for status in ("computed", "stored", "missing")}
    return (f"{len(statuses)} cells: {counts['computed']} evaluated now, {counts['stored']} reused from stored results, "
            f"{counts['missing']} missing")


def table(board: Leaderboard, fixtures: bool) -> pd.DataFrame:
    """One row per embedder; the real sets' columns, or the fixtures' (each titled FIXTURE)."""
    columns = [c for c in board.columns if c.fixture == fixtures]
    return pd.DataFrame([{"embedder": f"`{e.label}`", **{c.title: format_cell(board.cells[e.label, c.title], c)
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
            problem = f": {source.problem}" if source.problem else ""
            lines.append(f"- {column.title}: **missing**, looked for `{where}`{problem}")
        elif column.fixture:
            lines.append(f"- {column.title}: `{where}`, built by {fixture_recipes()[column.key]}")
        else:
            fixture = f" (**a format fixture**: {source.note})" if source.note else ""
            lines.append(f"- {column.title}: `{where}`{fixture}")
    return lines


def markdown(board: Leaderboard, command: str, root: Path | None, fixtures: bool, seconds: float,
             build_seconds: float = 0.0) -> str:
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    sections = [
        "# Leaderboard\n",
        f"`{command}`\n",
        f"Machine: {describe_machine(machine())}. Date: {now}. Evaluation wall time: {seconds:.0f} s "
        + (f"(after {build_seconds:.0f} s building the fixtures) " if build_seconds >= 1 else "")
        + f"for {cells_line(board)}. Each cell's results folder and status are in `leaderboard.csv`.\n",
        "## Real sets\n",
        "Columns in the field's order. *missing*: the set's files are not in the data root (the note says where "
        "they are looked for).\n",
        table(board, fixtures=False).to_markdown(index=False, disable_numparse=True) + "\n",
    ]
    if fixtures:
        sections += [
            "## Format fixtures (built from LFW; NOT the sets they are named after)\n",
            "Each fixture has the layout of the set it is named after, built by the project's fixture command from "
            "LFW photos. Numbers on it exercise that protocol's code path and say nothing about the real set.\n",
            table(board, fixtures=True).to_markdown(index=False, disable_numparse=True) + "\n",
        ]
    sections += ["## Columns\n", "\n".join(column_notes(board, root)) + "\n"]
    return "\n".join(sections)


def leaderboard_command(argv: Sequence[str]) -> str:
    return portable_command(["python", "-m", "bench.leaderboard", *argv])


