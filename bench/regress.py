"""Regression of metrics: small deterministic runs compared with a committed baseline, in CI.

    python -m bench.regress                    # run every probe, compare, exit 1 on a regression
    python -m bench.regress --probe translator  # one probe
    python -m bench.regress --update           # deliberately rewrite results/baselines/regress.json

A probe runs a tiny, seeded piece of the pipeline on the real data root and returns named metrics;
the baseline stores each metric's value and its tolerance (absolute, stated per metric: rendering and
convolutions may differ in the last bits between CPUs, so exact equality would fail across machines
for no reason). A metric outside its tolerance, or missing, fails with a table of baseline, value,
difference and tolerance. `--update` keeps the tolerances and rewrites the values (new metrics get
their probe's default tolerance) and records the machine they were measured on; commit the diff with a
sentence saying why the numbers moved. Every run prints that machine beside this one: on the same
machine and thread count the values repeat bit for bit, elsewhere they differ within the tolerances.
"""
from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bench.common.atomic import write_json
from bench.common.cli import UserError, add_common_arguments, run_main, setup_logging
from bench.common.datasets import data_root
from bench.common.machine import describe_machine, machine
from bench.fixtures import inverted_pairs, lfw_centre_crops

log = logging.getLogger(__name__)
BASELINE = Path("results/baselines/regress.json")
EXIT_REGRESSION = 1
RECORDED_ON = "machine"  # the baseline's entry for the machine it was measured on, beside one entry per probe


@dataclass(frozen=True)
class Probe:
    name: str
    run: Callable[[Path], dict[str, float]]  # scratch folder -> metrics
    tolerances: dict[str, float]  # metric name prefix -> absolute tolerance ("" = default)
    description: str

    def tolerance(self, metric: str) -> float:
        matches = [prefix for prefix in self.tolerances if metric.startswith(prefix)]
        return self.tolerances[max(matches, key=len)]


PROBES: dict[str, Probe] = {}


def register_probe(name: str, tolerances: dict[str, float], description: str):
    if name == RECORDED_ON:
        raise ValueError(f"'{RECORDED_ON}' names the baseline's machine entry, not a probe")

    def decorate(run: Callable[[Path], dict[str, float]]):
        PROBES[name] = Probe(name, run, tolerances, description)
        return run

    return decorate


# ------------------------------------------------------------------------------------------ probes

# L_C (eq. 7) divides distances by a small learned variance: kernel-level differences between CPUs (AVX2 against
# AVX-512 builds of the same fp32 code) reach 0.05 in it after 4 steps while every other loss agrees to 1e-4
@register_probe("translator", {"": 2e-3, "M_global": 2e-3, "k_": 1e-5, "C@": 0.1},
                "losses of the translator's smoke preset at each of its 4 iterations")
def translator_probe(scratch: Path) -> dict[str, float]:
    from generators.train import PRESETS, train

    real = lfw_centre_crops(scratch / "real", 12)
    pairs = inverted_pairs(real, scratch / "pairs")
    train(PRESETS["smoke"], real, pairs, scratch / "run", progress=False)
    table = pd.read_csv(scratch / "run" / "metrics.csv")
    return {f"{column}@{int(row.iteration)}": float(getattr(row, column)) for row in table.itertuples()
            for column in ("G", "G_prime", "cyc", "C", "DP", "D_R", "D_S", "M_global")}


@register_probe("separation", {"": 0.02, "auc": 0.01, "eer": 0.02},
                "identity separation of 8 x 4 smoke renders in the dlib ResNet port, 60 pairs")
def separation_probe(scratch: Path) -> dict[str, float]:
    from generators.render import PRESETS, render_dataset
    from protocols.separation import folder_dataset, separation
    from recognition.embedders import get_embedder

    render_dataset(PRESETS["smoke"], scratch / "renders", progress=False)
    result = separation(folder_dataset("renders", scratch / "renders"), get_embedder("dlib-resnet"), 60,
                        progress=False, use_cache=False, workers=0)
    return {k: float(result.row[k]) for k in ("mean_same", "mean_different", "d_prime", "auc", "eer")}


@register_probe("lfw-view1-lbp", {"": 0.005, "accuracy_percent": 0.3},
                "LFW View 1 (DevTrain threshold, DevTest accuracy) of the weights-free LBP embedder")
def lfw_probe(scratch: Path) -> dict[str, float]:
    from protocols.lfw import evaluate_lfw
    from recognition.embedders import get_embedder

    result = evaluate_lfw(get_embedder("lbp"), split="view1", progress=False, use_cache=False)
    summary = result.summary
    return {"accuracy_percent": summary["accuracy_percent"], "auc": summary["auc"], "eer": summary["eer"]}


@register_probe("recognizer", {"": 1.0, "loss": 2e-3, "auc": 0.01, "eer": 0.01},
                "a 4-iteration smoke recognizer on 200 LFW DevTrain crops, evaluated on LFW View 1 (MTCNN chips)")
def recognizer_probe(scratch: Path) -> dict[str, float]:
    from dataclasses import replace

    from recognition.evaluation import evaluate_run
    from recognition.train import PRESETS, train

    real = lfw_centre_crops(scratch / "real", 200)
    config = replace(PRESETS["smoke"], real_set=str(real), lfw_split="view1", evaluate=False)
    train(config, scratch / "run", progress=False)
    losses = pd.read_csv(scratch / "run" / "metrics.csv")
    results = evaluate_run(scratch / "run", "view1", None, "mtcnn", progress=False)["lfw"]
    return {**{f"loss@{int(r.iteration)}": float(r.loss) for r in losses.itertuples()},
            "accuracy_percent": results["accuracy_percent"], "auc": results["auc"], "eer": results["eer"]}


# ---------------------------------------------------------------------------------------- comparing

def compare(baseline: dict, current: dict[str, dict[str, float]]) -> pd.DataFrame:
    """One row per baseline metric of the probes that ran (and per new metric): values, difference, status."""
    rows = []
    for probe, metrics in current.items():
        stored = baseline.get(probe, {})
        for metric in sorted(set(stored) | set(metrics)):
            base, value = stored.get(metric, {}).get("value"), metrics.get(metric)
            tolerance = stored.get(metric, {}).get("tolerance", PROBES[probe].tolerance(metric))
            if base is None:
                status = "new"
            elif value is None:
                status = "MISSING"
            elif _both_nan(base, value) or abs(value - base) <= tolerance:
                status = "ok"
            else:
                status = "REGRESSION"
            rows.append({"probe": probe, "metric": metric, "baseline": base, "value": value,
                         "difference": None if base is None or value is None else value - base,
                         "tolerance": tolerance, "status": status})
    return pd.DataFrame(rows)


def _both_nan(a, b) -> bool:
    return a is not None and b is not None and np.isnan(a) and np.isnan(b)


def updated_baseline(baseline: dict, current: dict[str, dict[str, float]], recorded_on: dict) -> dict:
    """The baseline with this run's values (stated tolerances kept) and `recorded_on`, the machine that
    measured them."""
    updated = {**baseline, RECORDED_ON: recorded_on}
    for probe, metrics in current.items():
        stored = baseline.get(probe, {})
        updated[probe] = {m: {"value": v, "tolerance": stored.get(m, {}).get("tolerance", PROBES[probe].tolerance(m))}
                          for m, v in sorted(metrics.items())}
    return updated


def machine_lines(baseline: dict, here: dict) -> str:
    """The machine the baseline was recorded on above this one: values repeat bit for bit only on the same
    CPU, thread count and library versions, so a small difference on another machine is expected."""
    recorded = baseline.get(RECORDED_ON)
    lines = [f"baseline recorded on: {describe_machine(recorded)}", f"this machine:         {describe_machine(here)}"]
    if not recorded:
        lines.append("(the baseline predates machine records; --update records the machine)")
    elif describe_machine(recorded) != describe_machine(here):
        lines.append("(another machine: values may differ, within the tolerances; README, Reproducibility)")
    return "\n".join(lines)


def run_probes(names: Sequence[str]) -> dict[str, dict[str, float]]:
    current = {}
    for name in names:
        started = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix=f"facebench-regress-{name}-") as scratch:
            metrics = PROBES[name].run(Path(scratch))
        current[name] = {k: float(v) for k, v in metrics.items()}
        log.info("probe %s: %d metrics in %.0f s", name, len(metrics), time.perf_counter() - started)
    return current


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.regress", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser)
    parser.add_argument("--probe", action="append", help=f"probes to run (default all: {', '.join(PROBES)})")
    parser.add_argument("--baseline", type=Path, default=BASELINE)
    parser.add_argument("--update", action="store_true", help="rewrite the baseline's values with this run's")
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    if args.data_root:
        import os

        os.environ["FACEBENCH_DATA"] = args.data_root
    names = args.probe or list(PROBES)
    unknown = [n for n in names if n not in PROBES]
    if unknown:
        raise UserError(f"--probe {', '.join(unknown)}: unknown; known: {', '.join(PROBES)}")
    root = data_root()
    if not (root / "lfw-py").is_dir():
        raise UserError(f"the probes need the real LFW under the data root {root} (set FACEBENCH_DATA or --data-root)")
    baseline = {}
    if args.baseline.exists():
        try:
            baseline = json.loads(args.baseline.read_text())
        except json.JSONDecodeError as error:
            raise UserError(f"{args.baseline}: not valid JSON ({error}); restore it from git or pass --update") from None
    elif not args.update:
        raise UserError(f"no baseline at {args.baseline}: create it deliberately with --update")
    current = run_probes(names)
    table = compare(baseline, current)
    here = machine()  # after the probes: torch loaded, its threads as the probes used them
    print(machine_lines(baseline, here) + "\n")
    with pd.option_context("display.width", 160, "display.max_rows", None):
        print(table.to_markdown(index=False, floatfmt=".5g"))
    if args.update:
        write_json(args.baseline, updated_baseline(baseline, current, here))
        print(f"baseline rewritten: {args.baseline}")
        return 0
    failed = table[table.status.isin(["REGRESSION", "MISSING"])]
    if len(failed):
        print(f"\n{len(failed)} metric(s) outside tolerance:\n{failed.to_markdown(index=False, floatfmt='.5g')}")
        return EXIT_REGRESSION
    print(f"\nall {len(table)} metrics within tolerance of {args.baseline}")
    return 0


if __name__ == "__main__":
    run_main(main)
