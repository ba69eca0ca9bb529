"""python -m bench.leaderboard: see the package's docstring."""
from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import bench.leaderboard
from bench.common.atomic import write_text
from bench.common.cli import UserError, add_common_arguments, check_output_folder, run_main, setup_logging
from bench.common.datasets import cache_dir, data_root
from bench.leaderboard import columns as columns_module
from bench.leaderboard.cells import (Entry, Leaderboard, build_embedder, evaluate, parse_embedder_list,
                                     portable_label)
from bench.leaderboard.columns import (
    BIN_DIR, COLUMNS, FIXTURE_COLUMNS, IJB_DIR, IJBA_DIR, bin_source, ijb_source, ijba_source, lfw_source,
)
from bench.leaderboard.report import leaderboard_command, long_table, markdown
from protocols.embedding import add_embedding_arguments, embedding_options

log = logging.getLogger(__name__)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.leaderboard", description=bench.leaderboard.__doc__,
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
    # every name checked before any work; labelled without this machine's folders
    entries = [Entry(portable_label(label, args.data_root), build_embedder(label)) for label in labels]
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
    building = time.perf_counter()
    if args.fixtures:
        if not sources["LFW"].present:
            raise UserError(f"--fixtures: the fixtures are built from LFW, which is missing: "
                            f"looked for {sources['LFW'].path}")
        built = columns_module.build_fixtures(root, cache_dir() / "leaderboard-fixtures")
        sources[FIXTURE_COLUMNS[0].title] = bin_source(built["lfw-bin"])
        sources[FIXTURE_COLUMNS[1].title] = ijb_source(built["ijbc"], "ijbc")
        sources[FIXTURE_COLUMNS[2].title] = ijba_source(built["ijba"])
        columns += FIXTURE_COLUMNS
    started = time.perf_counter()
    build_seconds = started - building
    board = evaluate(Leaderboard(entries, columns, sources), args.results, args.out, options, args.force)
    seconds = time.perf_counter() - started
    command = leaderboard_command(sys.argv[1:] if argv is None else argv)
    text = markdown(board, command, args.data_root, args.fixtures, seconds, build_seconds if args.fixtures else 0.0)
    write_text(args.out / "leaderboard.md", text)
    write_text(args.out / "leaderboard.csv", long_table(board, args.data_root).to_csv(index=False))
    print(text)
    print(f"written: {args.out / 'leaderboard.md'}, {args.out / 'leaderboard.csv'}")
    return 0


if __name__ == "__main__":
    run_main(main)
