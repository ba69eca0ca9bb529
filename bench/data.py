"""The data root's command line: what it holds, what is missing, and how to fetch it.

    python -m bench.data check                 # datasets and weight files, per stage, with checksums
    python -m bench.data fetch lfw             # download a dataset (online users)
    python -m bench.data fetch openface-nn4    # or a weight file from its canonical release

Datasets and weight files are declared by the modules that read them (`bench.common.datasets`,
`bench.common.weights`); this command imports those modules so that every declaration is listed.
"""
from __future__ import annotations

import argparse
import importlib
import logging
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from bench.common.cli import add_common_arguments, run_main, setup_logging
from bench.common.datasets import DATASETS, data_root, fetch as fetch_dataset, file_status
from bench.common.weights import WEIGHTS, fetch_weights, packaged_rows, weights_rows

log = logging.getLogger(__name__)

# The modules that declare datasets and weight files; importing them registers their declarations.
DECLARING_MODULES = ("protocols.lfw_files", "generators.morphable.ict", "recognition.embedders",
                     "recognition.models")


def declare_all() -> None:
    for module in DECLARING_MODULES:
        importlib.import_module(module)


def check_table(root: Path) -> pd.DataFrame:
    """One row per file: dataset (or weight file), path, stages, status."""
    declare_all()
    rows = [
        {"dataset": ds.name, "path": item.relpath, "stages": ", ".join(item.stages), "status": file_status(root, item)}
        for ds in DATASETS.values()
        for item in ds.files
    ]
    return pd.DataFrame(rows + packaged_rows() + weights_rows(root))


def fetch(name: str, root: Path) -> None:
    """A dataset or a weight file by name."""
    declare_all()
    if name in WEIGHTS:
        fetch_weights(name, root)
    else:
        fetch_dataset(name, root)
    log.info("%s is ready under %s", name, root)


def main(argv: Sequence[str] | None = None) -> int:
    declare_all()
    parser = argparse.ArgumentParser(prog="python -m bench.data", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("check", help="list what the data root holds and what is missing, per stage")
    fetch_parser = sub.add_parser("fetch", help="download a dataset or weight file (needs internet)")
    fetch_parser.add_argument("name", choices=sorted(DATASETS) + sorted(WEIGHTS))
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    root = data_root(args.data_root)
    if args.command == "fetch":
        fetch(args.name, root)
        return 0
    table = check_table(root)
    print(f"data root: {root}\n")
    print(table.to_markdown(index=False))
    # weight files are optional (each embedder says how to get its own); datasets and dlib's models are not
    required = table.dataset.isin(list(DATASETS) + ["models"])
    incomplete = table[required & ~table.status.str.startswith("ok")]
    if len(incomplete):
        print()
        for name in incomplete.dataset.unique():
            if name in DATASETS:
                print(f"{name}: {DATASETS[name].how_to_get}")
        return 1
    return 0


if __name__ == "__main__":
    run_main(main)
