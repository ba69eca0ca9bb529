"""Every speed benchmark in one go, then `results/perf/latest.md` gathering their records.

    python -m bench.perf [--only render,synthesize] [--quick]

Runs, one after another in fresh processes (so one's threads or caches do not slow the next):
embedders (dlib port vs dlib-bin), render, train (translator, on LFW centre crops), synthesize
(GANFaces end to end), recognizer (when the recognizer benchmark exists), protocols (faces/s of each
evaluation protocol, cold and cached). Each writes its own
`results/perf/<name>.json/.md`; latest.md puts them together with the machine description. Run it
on an otherwise idle machine: the numbers are only comparable within one run.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from bench.common.atomic import write_text
from bench.common.cli import UserError, add_common_arguments, run_main, setup_logging
from bench.perf.record import PERF_DIR, dated_machine


def benchmarks(scratch: Path, quick: bool) -> dict[str, list[str]]:
    """name -> arguments of `python -m bench.perf.<name>`; `quick` shrinks each to a smoke-sized run."""
    real, pairs = scratch / "real", scratch / "pairs"
    return {
        "embedders": ["--batches", "2" if quick else "6"],
        "render": ["--images", "256" if quick else "2048"],
        "train": ["--real", str(real), "--pairs", str(pairs), "--iterations", "2" if quick else "6",
                  "--presets", "smoke" if quick else "smoke,cpu"],
        "profile": ["--real", str(real), "--pairs", str(pairs), "--preset", "smoke" if quick else "cpu",
                    "--iterations", "1" if quick else "4"],
        "synthesize": ["--images", "60" if quick else "600", "--presets", "smoke" if quick else "cpu,paper"],
        "recognizer": ["--quick"] if quick else [],
        "protocols": ["--embedders", "lbp" if quick else "dlib-resnet,lbp", "--lfw-images", "8" if quick else "200"],
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.perf", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser)
    parser.add_argument("--only", help="comma-separated benchmark names")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, to check the benchmarks run")
    parser.add_argument("--collect", action="store_true",
                        help="run nothing: gather the existing records into latest.md (after rerunning one benchmark)")
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    if args.collect:
        ran = [(name, 0, float("nan")) for name in benchmarks(Path("."), False) if (PERF_DIR / f"{name}.md").exists()]
        write_text(PERF_DIR / "latest.md", latest_text(ran, PERF_DIR))
        print(f"wrote {PERF_DIR / 'latest.md'} from {len(ran)} records")
        return 0
    with tempfile.TemporaryDirectory(prefix="facebench-perf-") as scratch:
        plan = benchmarks(Path(scratch), args.quick)
        names = args.only.split(",") if args.only else list(plan)
        unknown = [n for n in names if n not in plan]
        if unknown:
            raise UserError(f"--only {', '.join(unknown)}: unknown; known: {', '.join(plan)}")
        names = [n for n in names if importlib.util.find_spec(f"bench.perf.{n}") is not None]
        if {"train", "profile"} & set(names):
            from bench.fixtures import inverted_pairs, lfw_centre_crops

            inverted_pairs(lfw_centre_crops(Path(scratch) / "real", 64, args.data_root), Path(scratch) / "pairs", 32)
        perf_dir = Path(scratch) / "perf" if args.quick else PERF_DIR  # quick numbers never replace real ones
        environment = {**os.environ, "FACEBENCH_PERF_DIR": str(perf_dir)}
        ran = []
        for name in names:
            command = [sys.executable, "-m", f"bench.perf.{name}", *plan[name]]
            if args.data_root:
                command += ["--data-root", args.data_root]
            print(f"== {' '.join(command[1:])}", flush=True)
            started = time.perf_counter()
            result = subprocess.run(command, check=False, env=environment)
            ran.append((name, result.returncode, time.perf_counter() - started))
        text = latest_text(ran, perf_dir)
    if args.quick:
        print(text)
    else:
        write_text(PERF_DIR / "latest.md", text)
        print(f"wrote {PERF_DIR / 'latest.md'}")
    return 0 if all(code == 0 for _, code, _ in ran) else 1


def latest_text(ran: list[tuple[str, int, float]], records: Path) -> str:
    import torch  # noqa: F401  loaded: the machine line then names torch's threads and kernels

    sections = [f"# Speed benchmarks, latest run\n\nMachine: `{json.dumps(dated_machine())}`\n"]
    for name, code, seconds in ran:
        record = records / f"{name}.md"
        status = "ok" if code == 0 else f"FAILED (exit {code})"
        body = record.read_text().replace("# ", "### ", 1) if code == 0 and record.exists() else ""
        took = "" if math.isnan(seconds) else f", {seconds:.0f} s"  # NaN: collected, not timed here
        sections.append(f"## {name}: {status}{took}\n\n{body}")
    return "\n".join(sections)


if __name__ == "__main__":
    run_main(main)
