"""The grid of issue 19: Fig. 7 and supplementary Table 1 at one preset, as many `bench.run` runs, recorded so that
it can span machines.

    python -m bench.grid --preset cpu --plan                  # every run: recorded, cached, to do; estimate, budget
    python -m bench.grid --preset cpu --hours 2.5             # run what fits, record each finished run
    python -m bench.grid --preset cpu --hours 2.5             # again, here or on another machine: the next runs
    python -m bench.tables --runs runs/grid --records results/grid/cpu   # the tables from runs and records
(`python -m bench.run --grid cpu ...` is the same command.)

The grid is real 20/50/100% x {none, 3DMM renders, GANFaces} and, at 50%, GANFaces of the translators without
L_C, L_DP and L_cyc, for each recognizer seed; every run is `bench.run`'s own stages (`plan_stages`: the same
keys, the same cache), so a stage shared by several runs is made once per output folder.

Why records: the grid needs more hours than one working session of a 2-core machine has, and a session's
`runs/` does not outlive its machine (nor may it be committed: it holds LFW-derived faces and networks). Each
finished run therefore leaves a small JSON record in `--record` (default `results/grid/<preset>`): its
settings, every stage key, the LFW View 1 and fixture metrics, the machine, the stage times. A run whose record
exists (same evaluation key, i.e. the same configuration all the way up) is not run again anywhere, and
`bench.tables --records` puts recorded and local runs in one table. A translator that later runs need is
retrained on the next machine from the same key and seed: bit-identical on the same CPU and libraries, within
the regression tolerances elsewhere (README, "Reproducibility"); every record names its machine.
"""
from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from bench.common.atomic import write_json
from bench.common.cli import UserError, add_common_arguments, run_main, setup_logging
from bench.common.datasets import data_root
from bench.common.machine import machine
from bench.run import (MARKER, REAL_FRACTIONS, RUN_PRESETS, Stage, add_shared_arguments, check_data,
                       check_shared_arguments, format_duration, measured_seconds, plan_stages, run_stages)

RECORDS_DIR = Path(__file__).resolve().parents[1] / "results" / "grid"

GRID_SEEDS = (0, 1, 2)
GRID_ABLATION_REAL = 0.5
GRID_HOURS = 6.0  # the budget the grid is sized to on this 2-core machine (README, "The grid")


@dataclass(frozen=True)
class GridRun:
    """One recognizer run of the grid: its real share, synthetic set, recognizer seed and translator seed."""

    real: float
    synth: str
    seed: int
    synth_seed: int = 0


def grid_runs(seeds: Sequence[int] = GRID_SEEDS, synth_seed: int = 0) -> list[GridRun]:
    """The grid of issue 19 in the order it is run, most telling first, so that a cut or interrupted grid holds
    whole seeds of the comparisons that matter most: (1) real 20/50/100% without and with GANFaces, seed by
    seed (the paper's claim and its paired test); (2) the same with raw 3DMM renders; (3) at 50%, GANFaces of
    the translators without L_C, L_DP and L_cyc. Every GANFaces run uses the translator of `synth_seed`, so
    the recognizer seeds share one translator per synthetic variant."""
    runs = [GridRun(real, synth, seed, synth_seed) for seed in seeds for real in REAL_FRACTIONS
            for synth in ("none", "ganfaces")]
    runs += [GridRun(real, "3dmm", seed, synth_seed) for seed in seeds for real in REAL_FRACTIONS]
    runs += [GridRun(GRID_ABLATION_REAL, synth, seed, synth_seed) for seed in seeds
             for synth in ("ganfaces-no-lc", "ganfaces-no-ldp", "ganfaces-no-cyc")]
    return runs


def plan_grid(preset_name: str, out: Path, root: Path | None = None, seeds: Sequence[int] = GRID_SEEDS,
              synth_seed: int = 0, gpus: int = 0) -> list[tuple[GridRun, list[Stage]]]:
    """Each grid run with its stages (bench.run's own plan_stages: the same keys, the same cache)."""
    return [(run, plan_stages(preset_name, run.real, run.synth, run.seed, out, root, run.synth_seed, gpus))
            for run in grid_runs(seeds, synth_seed)]


# ------------------------------------------------------------------------------------------ records

def record_name(run: GridRun, evaluation_key: str) -> str:
    """`real0.5-ganfaces-seed0-synth0-<evaluation key>.json`: readable, and unique by the key."""
    synth_seed = f"-synth{run.synth_seed}" if run.synth.startswith("ganfaces") else ""
    return f"real{run.real:g}-{run.synth}-seed{run.seed}{synth_seed}-{evaluation_key}.json"


def recorded_keys(records: Path | None) -> dict[str, Path]:
    """Evaluation key -> record file, for every record in the folder (none when it does not exist)."""
    if records is None or not Path(records).is_dir():
        return {}
    found = {}
    for path in sorted(Path(records).glob("*.json")):
        try:
            found[json.loads(path.read_text())["keys"]["evaluation"]] = path
        except (json.JSONDecodeError, KeyError, TypeError) as error:
            raise UserError(f"{path}: not a grid record ({error}); remove it or restore it from git") from None
    return found


def same_machine(a: dict | None, b: dict | None) -> bool:
    """Whether two machine descriptions (bench.common.machine) time alike: the same CPU model, vector extensions
    and core count (the session VMs of this project moved between AVX2 and AVX-512 BF16 hosts, 3.5x apart)."""
    keys = ("cpu_model", "cpu_vector_flags", "cpu_count")
    return bool(a and b) and all(a.get(key) == b.get(key) for key in keys) and bool(a.get("cpu_model"))


def recorded_seconds(records: Path | None, host: dict) -> dict[str, float]:
    """The median time of each stage in the records made on a machine like `host`: a grid continued on such a
    machine is planned with its own measured times, not the preset's (which were measured on one host)."""
    times: dict[str, list[float]] = {}
    for path in sorted(Path(records).glob("*.json")) if records is not None and Path(records).is_dir() else []:
        record = json.loads(path.read_text())
        if same_machine(record.get("machine"), host):
            for stage, seconds in (record.get("stage_seconds") or {}).items():
                if seconds is not None:
                    times.setdefault(stage, []).append(float(seconds))
    return {stage: float(pd.Series(values).median()) for stage, values in times.items()}


def write_record(run: GridRun, stages: Sequence[Stage], records: Path, preset: str) -> Path:
    """The record of a finished run (every stage done): what `bench.tables` needs to count it, and what makes it
    checkable (stage keys, machine, stage times); no path of the machine that made it."""
    evaluation = stages[-1]
    results = json.loads((evaluation.folder / json.loads((evaluation.folder / MARKER).read_text())["outputs"]["results"]).read_text())
    recognizer = stages[-2]
    lfw_metrics = next((recognizer.folder / "run").glob("lfw-*/metrics.json"), None)
    machine = json.loads(lfw_metrics.read_text()).get("machine") if lfw_metrics else None
    record = {"preset": preset, **asdict(run), "keys": {stage.name: stage.key for stage in stages},
              # the metrics (portable already) without the checkpoint's path, which names this machine's runs folder
              "results": {key: value for key, value in results.items() if key != "checkpoint"},
              "machine": machine,
              "stage_seconds": {stage.name: json.loads((stage.folder / MARKER).read_text()).get("seconds")
                                for stage in stages},
              "recorded": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
    path = Path(records) / record_name(run, evaluation.key)
    write_json(path, record)
    return path


def grid_table(planned: Sequence[tuple[GridRun, list[Stage]]], seconds: dict[str, float],
               hours: float = GRID_HOURS, recorded: dict[str, Path] | None = None) -> pd.DataFrame:
    """One row per run: its status, the stages it adds (a stage shared with an earlier run is counted once),
    their estimated time and the running total; runs whose total passes `hours` (0: no limit) are cut, except runs
    with nothing left to do (cached here: recording them is free). A run
    with a record (`recorded`: evaluation key -> file) is "recorded": nothing of it is to do here."""
    recorded = recorded or {}
    counted: set[Path] = set()
    evaluated = any(stage.done for _, stages in planned for stage in stages if stage.name == "evaluation")
    rows, total = [], 0.0
    for number, (run, stages) in enumerate(planned, 1):
        is_recorded = stages[-1].key in recorded
        todo = [] if is_recorded else [stage for stage in stages if not stage.done and stage.folder not in counted]
        estimate = 0.0
        for stage in todo:
            name = stage.name
            if name == "evaluation" and not evaluated:  # the first evaluation aligns the photos (chip cache)
                name, evaluated = "evaluation_first", True
            estimate += seconds.get(name, seconds.get(stage.name, 0))
            counted.add(stage.folder)
        total += estimate
        done = all(stage.done for stage in stages)
        started = any(stage.folder.exists() for stage in todo)  # a killed stage resumes (estimated in full)
        status = "recorded" if is_recorded else "cached" if done else "resume" if started else "to do"
        rows.append({"run": number, "real": f"{run.real:.0%}", "synth": run.synth, "seed": run.seed,
                     "synth seed": run.synth_seed if run.synth.startswith("ganfaces") else "-",
                     "status": status, "new stages": ", ".join(stage.name for stage in todo) or "-",
                     "estimate": "-" if not todo else format_duration(estimate), "total": format_duration(total),
                     # a run with nothing left to do costs nothing: always taken (and recorded)
                     "seconds": estimate, "in budget": not hours or not todo or total <= hours * 3600})
    return pd.DataFrame(rows)


def run_grid(planned: Sequence[tuple[GridRun, list[Stage]]], table: pd.DataFrame, preset: str,
             records: Path | None = None) -> list[Path]:
    """The runs within the budget, in the grid's order, each recorded in `records` as soon as it is finished
    (runs cached here but not yet recorded are recorded without running anything); cached stages are skipped,
    a killed one resumes. Returns the records written."""
    written = []
    chosen = [(run, stages) for (run, stages), status, keep in zip(planned, table.status, table["in budget"])
              if keep and status != "recorded"]
    for number, (run, stages) in enumerate(chosen, 1):
        print(f"\n=== grid run {number}/{len(chosen)}: {run.real:.0%} real, {run.synth}, seed {run.seed}", flush=True)
        run_stages(stages)
        if records is not None:
            written.append(write_record(run, stages, records, preset))
            print(f"recorded: {written[-1]}", flush=True)
    return written


def print_grid_plan(preset: str, out: Path, planned, table: pd.DataFrame, hours: float) -> None:
    shown = table.drop(columns=["seconds"]).assign(**{"in budget": table["in budget"].map({True: "yes", False: "cut"})})
    translators = {stage.folder for _, stages in planned for stage in stages if stage.name == "translator"}
    kept, cut = table[table["in budget"]], table[~table["in budget"]]
    print(f"grid: preset {preset}, {len(planned)} runs ({(table.status == 'recorded').sum()} recorded, "
          f"{(table.status == 'cached').sum()} cached here), "
          f"{len(translators)} translators (one per GANFaces variant, shared by the recognizer seeds), out {out}\n"
          f"{shown.to_markdown(index=False)}\n"
          f"estimated time of what is to do: {format_duration(table.seconds.sum())} on a 2-core CPU; "
          + (f"budget {hours:g} h: {len(kept)} runs ({format_duration(kept.seconds.sum())})"
             + (f", cut: {len(cut)} runs ({format_duration(cut.seconds.sum())}): {_cut_summary(cut)}; run the same "
                "command again to continue with them" if len(cut) else "") if hours else "no budget limit"),
          flush=True)


def _cut_summary(cut: pd.DataFrame) -> str:
    groups = cut.groupby(["synth", "real"], sort=False).seed.apply(lambda s: ",".join(map(str, s)))
    return "; ".join(f"{synth} at {real} seeds {seeds}" for (synth, real), seeds in groups.items())


def add_grid_arguments(parser: argparse.ArgumentParser) -> None:
    """The grid's own options (shared by `python -m bench.grid` and `python -m bench.run --grid`)."""
    parser.add_argument("--seeds", default=",".join(map(str, GRID_SEEDS)), help="the grid's recognizer seeds")
    parser.add_argument("--hours", type=float, default=GRID_HOURS,
                        help="the grid's budget: runs past this estimated total are left for the next invocation "
                             "(0: no limit)")
    parser.add_argument("--record", type=Path, default=None,
                        help="folder of the grid's run records (default results/grid/<preset>): finished runs are "
                             "recorded there and recorded runs are not run again")
    parser.add_argument("--no-record", action="store_true", help="neither read nor write records")


def grid_main(args: argparse.Namespace, root: Path) -> int:
    """Plan the grid of `args.grid` (a preset), print it, and run what fits in `args.hours`."""
    try:
        seeds = sorted({int(seed) for seed in args.seeds.split(",")})
    except ValueError:
        raise UserError(f"--seeds {args.seeds}: give comma-separated integers, e.g. 0,1,2") from None
    if not seeds or min(seeds) < 0:
        raise UserError(f"--seeds {args.seeds}: give seeds of at least 0")
    if args.hours < 0:
        raise UserError(f"--hours {args.hours}: give a budget in hours (0 for no limit)")
    records = None if args.no_record else (args.record or RECORDS_DIR / args.grid)
    if records is not None and records.exists() and not records.is_dir():
        raise UserError(f"--record {records}: not a folder")
    synth_seed = 0 if args.synth_seed is None else args.synth_seed
    planned = plan_grid(args.grid, args.out, seeds=seeds, synth_seed=synth_seed, gpus=args.gpus)
    seconds = measured_seconds(args.grid, args.out, recorded=recorded_seconds(records, machine()))
    table = grid_table(planned, seconds, args.hours, recorded_keys(records))
    print_grid_plan(args.grid, args.out, planned, table, args.hours)
    if records is not None:
        print(f"records: {records} ({(table.status == 'recorded').sum()} of the grid's runs)")
    if args.plan:
        return 0
    check_data(root)
    run_grid(planned, table, args.grid, records)
    records_option = f" --records {records}" if records is not None else ""
    print(f"\ngrid runs within the budget are done; tables and figures: python -m bench.tables --runs {args.out}"
          f"{records_option}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.grid", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser)
    parser.add_argument("--preset", dest="grid", choices=RUN_PRESETS, default="cpu")
    add_shared_arguments(parser, default_out=Path("runs/grid"))
    add_grid_arguments(parser)
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    check_shared_arguments(args)
    return grid_main(args, data_root())


if __name__ == "__main__":
    run_main(main)
