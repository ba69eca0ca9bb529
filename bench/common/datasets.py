"""The data root and the cache directory, and the registry of datasets they may hold.

The root is an explicit `--data-root`, else $FACEBENCH_DATA, else ~/.cache/facebench. It may be
read-only; anything the project computes (embedding caches, converted weights) goes to the cache
directory instead ($FACEBENCH_CACHE, else ~/.cache/facebench-work).

Datasets declare themselves here (`register_dataset`) from the module that reads them (LFW from
`protocols.lfw_files`, the ICT Face Model from `generators.morphable.ict`), so this base module
never imports upward; `python -m bench.data check|fetch` lists whatever has been declared.
"""
from __future__ import annotations

import os
import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench.common.cli import UserError
from bench.common.download import file_digest

DEFAULT_DATA_ROOT = "~/.cache/facebench"
DEFAULT_CACHE_DIR = "~/.cache/facebench-work"


def data_root(explicit: str | os.PathLike | None = None) -> Path:
    """The data root: the explicit argument, else $FACEBENCH_DATA, else ~/.cache/facebench."""
    chosen = explicit or os.environ.get("FACEBENCH_DATA") or DEFAULT_DATA_ROOT
    return Path(chosen).expanduser().resolve()


DATA_ROOT_VARIABLE = "$FACEBENCH_DATA"
CACHE_VARIABLE = "$FACEBENCH_CACHE"


def portable_path(path: str | os.PathLike, root: str | os.PathLike | None = None) -> str:
    """`path` as another machine can read it in a committed record: under the data root as
    "$FACEBENCH_DATA/<relative>", under the cache folder as "$FACEBENCH_CACHE/<relative>" (fixtures built
    there), under the working folder (the checkout) relative to it, else unchanged.

    Results are committed from one machine and read on others, where the data root and the checkout
    lie elsewhere; an absolute path would name the folders of the machine that made the record.
    `root` is an explicit data root (`--data-root`), as `data_root` takes it. Relative paths and paths
    already written this way are returned as they are."""
    given = Path(path).expanduser()
    if not given.is_absolute():
        return str(path)
    resolved = given.resolve()
    cache = Path(os.environ.get("FACEBENCH_CACHE") or DEFAULT_CACHE_DIR).expanduser().resolve()  # cache_dir's, unmade
    for base, prefix in ((data_root(root), DATA_ROOT_VARIABLE), (cache, CACHE_VARIABLE), (Path.cwd().resolve(), None)):
        for candidate in (resolved, given):  # resolved as data_root() is; as given for a symlinked checkout
            if candidate.is_relative_to(base):
                relative = candidate.relative_to(base).as_posix()
                if prefix is None:
                    return relative
                return prefix if relative == "." else f"{prefix}/{relative}"
    return str(given)


def portable_command(words: Sequence[str]) -> str:
    """A command line for a committed record: absolute paths as `portable_path` writes them, every word
    quoted for a POSIX shell except the $VARIABLE that starts a portable path, so a pasted command expands it."""
    quoted = []
    for word in words:
        word = portable_path(word) if word.startswith("/") else word
        variable, slash, rest = word.partition("/")
        if word.startswith("$") and variable[1:].replace("_", "").isalnum():
            quoted.append(variable + slash + (shlex.quote(rest) if rest else ""))
        else:
            quoted.append(shlex.quote(word))
    return " ".join(quoted)


def cache_dir(explicit: str | os.PathLike | None = None) -> Path:
    """Where derived, recomputable files go (embedding caches): never inside a read-only data root."""
    chosen = explicit or os.environ.get("FACEBENCH_CACHE") or DEFAULT_CACHE_DIR
    path = Path(chosen).expanduser().resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


@dataclass(frozen=True)
class DataFile:
    """One file (or folder) under the data root, with its checksum and the stages that need it."""

    relpath: str
    stages: tuple[str, ...]
    checksum: str | None = None
    algorithm: str = "md5"
    min_files: int = 0  # for folders: how many files a complete copy holds
    alternative: str | None = None  # another accepted file (checked by its own loader), e.g. a zip of the same


@dataclass(frozen=True)
class Dataset:
    """A named group of files with a way to fetch them for users who are online."""

    name: str
    description: str
    files: tuple[DataFile, ...]
    how_to_get: str
    fetch: Callable[[Path], None] | None = field(default=None, compare=False)


DATASETS: dict[str, Dataset] = {}


def register_dataset(dataset: Dataset) -> Dataset:
    """Declare a dataset (from the module that reads it); declaring one name twice is a bug."""
    if dataset.name in DATASETS and DATASETS[dataset.name] != dataset:
        raise ValueError(f"dataset '{dataset.name}' declared twice")
    DATASETS[dataset.name] = dataset
    return dataset


def _count_files(folder: Path) -> int:
    return sum(len(files) for _, _, files in os.walk(folder))


def file_status(root: Path, item: DataFile) -> str:
    """'ok', 'missing', 'incomplete (N files)' or 'checksum mismatch'."""
    path = root / item.relpath
    if not path.exists():
        if item.alternative and (root / item.alternative).exists():
            return f"ok ({item.alternative})"
        return "missing"
    if path.is_dir():
        count = _count_files(path)
        return "ok" if count >= item.min_files else f"incomplete ({count} of {item.min_files} files)"
    if item.checksum and file_digest(path, item.algorithm) != item.checksum:
        return "checksum mismatch"
    return "ok"


def require(root: Path, relpaths: Sequence[str], dataset: str) -> None:
    """Raise UserError naming every missing path, where it was looked for, and how to obtain it."""
    missing = [p for p in relpaths if not (root / p).exists()]
    if missing:
        listed = "\n  ".join(str(root / p) for p in missing)
        raise UserError(
            f"{dataset} files missing from the data root {root}:\n  {listed}\n"
            f"Set FACEBENCH_DATA or --data-root to the folder that holds them. To obtain them: "
            f"{DATASETS[dataset].how_to_get}"
        )


def fetch(name: str, root: Path) -> None:
    """Download a declared dataset into the data root (online users), or say how to get it by hand."""
    if name not in DATASETS:
        raise UserError(f"unknown dataset '{name}'; known: {', '.join(sorted(DATASETS))}")
    dataset = DATASETS[name]
    if dataset.fetch is None:
        raise UserError(f"{name} cannot be downloaded automatically: {dataset.how_to_get}")
    if not os.access(root if root.exists() else root.parent, os.W_OK):
        raise UserError(f"data root {root} is not writable; pass --data-root to a writable folder")
    root.mkdir(parents=True, exist_ok=True)
    dataset.fetch(root)
