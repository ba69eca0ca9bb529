"""The whole experiment in one command: data -> 3DMM -> pairs -> translator -> GANFaces -> recognizer -> LFW/IJB-A -> tables.

    python -m bench.run --real 0.5 --synth ganfaces                  # cpu preset, about an hour on 2 cores
    python -m bench.run --preset smoke --real 1.0 --synth ganfaces   # minutes: every stage, tiny
    python -m bench.run --preset paper --real 0.2 --synth ganfaces-no-lc --seed 1 --out runs/paper
    python -m bench.run --real 0.5 --synth ganfaces --plan           # print the plan only
    python -m bench.run --real 1.0 --synth ganfaces --seed 2 --synth-seed 0   # recognizer seed 2, GANFaces of seed 0

Every stage writes into its own folder under `--out`, named by the stage and a hash of its
configuration and of the configurations of the stages it depends on; a stage is done when its
`stage.json` exists (written last, atomically). Re-running skips what is done, a killed stage resumes
(each stage's own resume), and a changed option redoes only the stages that depend on it: `--real`
reruns the recognizer and its evaluation, `--synth ganfaces-no-lc` a translator, its GANFaces and
what follows. The plan (what runs, what is cached, an estimate of the time) is printed first and a
summary of every finished run under `--out` at the end (`python -m bench.tables` writes the tables).

The real set is LFW's View 1 training people (peopleDevTrain; at the cpu preset those with at least 4
aligned photos, `RunPreset.real_min_images`) and evaluation LFW View 1 (pairsDevTest) plus, at the cpu
preset, an IJB-A-format fixture built once from View 1's test people only (the `fixture` stage,
`protocols.ijba_fixture --people devtest`; its numbers are labelled "IJB-A format fixture from LFW"), both
checked against the recognizer's identities by the leakage guard; the translator's real domain and its
pairs come from the same training people (never an evaluation identity), aligned once by the real_faces stage.

    python -m bench.run --grid cpu --plan        # issue 19's grid (bench.grid): every run, recorded, cached or to do
    python -m bench.run --grid cpu --hours 2.5   # runs what fits, records each finished run; again to continue

It is one file because the stage graph (`plan_stages`), the stage runners and the presets share the `Stage`
type and its keys and read as one pipeline; the grid of many runs is `bench.grid`.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd

from bench.common.atomic import write_json
from bench.common.cli import UserError, add_common_arguments, require_at_least, run_main, setup_logging
from bench.common.datasets import data_root
from bench.common.locks import exclusive_folder

log = logging.getLogger(__name__)

SYNTHETIC_SETS = ("none", "3dmm", "ganfaces", "ganfaces-no-lc", "ganfaces-no-ldp", "ganfaces-no-cyc")
REAL_FRACTIONS = (0.2, 0.5, 1.0)
ABLATIONS = {"ganfaces": {}, "ganfaces-no-lc": {"use_identity": False}, "ganfaces-no-ldp": {"use_pair": False},
             "ganfaces-no-cyc": {"use_cycle": False}}
MARKER = "stage.json"
PERF_DIR = Path(__file__).resolve().parents[1] / "results" / "perf"


@dataclass(frozen=True)
class RunPreset:
    """Which preset each stage uses, and the stage times measured on this 2-core CPU (seconds) for the plan."""

    real_faces: int | None  # LFW training photos aligned for the translator's real domain (None: all)
    pairs: str
    translator: str
    synthesis: str
    recognizer: str
    seconds: dict[str, float] = field(default_factory=dict)
    # the recognizer's real classes: LFW DevTrain people with at least this many aligned photos (README, "The
    # real training set"); the real fraction is then drawn by image within them
    real_min_images: int = 1
    # the IJB-A-format fixture from LFW View 1's test people every recognizer is also evaluated on (a stage
    # shared by all runs; protocols.ijba_fixture arguments), None for LFW View 1 only
    fixture: dict[str, Any] | None = None


RUN_PRESETS = {
    "smoke": RunPreset(48, "smoke", "smoke", "smoke", "smoke",
                       {"real_faces": 30, "pairs": 40, "translator": 20, "ganfaces": 20, "renders": 10,
                        "recognizer": 20, "evaluation": 240}),
    # cpu seconds: measured 2026-11-25 (evaluation_first: MTCNN's first pass over View 1 and the fixture, later
    # evaluations read the chip cache); translator: 1,500 iterations x 2.5 s (results/perf/train-profile.json,
    # replaced by the record when it exists: measured_seconds); recognizer: MobileNetV2, 600 iterations, ~2
    # CPU-seconds each (README, "The recognizer"); fixture: writing ~6,000 canvases; evaluation_first: MTCNN at
    # ~28 photos/s (4,992 View 1 photos in 180 s) over View 1 and the ~6,000 fixture faces, then the embedding
    "cpu": RunPreset(None, "cpu", "cpu", "cpu", "cpu",
                     {"real_faces": 240, "pairs": 160, "translator": 3750, "ganfaces": 170, "renders": 60,
                      "recognizer": 650, "fixture": 120, "evaluation": 90, "evaluation_first": 500},
                     real_min_images=4,
                     fixture={"people": "devtest", "splits": 10, "subjects": 100, "impostors": 2000, "seed": 0,
                              "min_images": 4}),
    "paper": RunPreset(None, "paper", "paper", "paper", "paper",
                       {"real_faces": 400, "pairs": 700, "translator": 70 * 3600, "ganfaces": 5 * 3600,
                        "renders": 1800, "recognizer": 9 * 3600, "evaluation": 600}),
}


@dataclass
class Stage:
    name: str
    config: dict[str, Any]  # what determines the output, upstream stages' keys included
    run: Callable[[Path], dict]  # folder -> outputs (paths relative to the folder, figures)
    out: Path = Path()

    @property
    def key(self) -> str:
        blob = json.dumps({"stage": self.name, **self.config}, sort_keys=True, default=str)
        return hashlib.sha1(blob.encode()).hexdigest()[:10]

    @property
    def folder(self) -> Path:
        return self.out / f"{self.name}-{self.key}"

    @property
    def done(self) -> bool:
        return (self.folder / MARKER).exists()

    def status(self) -> str:
        if self.done:
            return "cached"
        return "resume" if self.folder.exists() else "run"


# ------------------------------------------------------------------------------------------ stages

# fields that say how to compute, not what: they do not enter a stage's key (a run resumes across them)
HOW_TO_COMPUTE = frozenset({"precision", "bf16", "channels_last", "sync_batchnorm", "log_every", "sample_every",
                            "checkpoint_every", "diagnose_every", "workers", "data_workers"})


def preset_settings(module: str, name: str) -> dict[str, Any]:
    """The contents of preset `name` of a stage's `module.PRESETS`, for the stage's key: a cached stage is
    reused only while its preset still says the same (editing a preset invalidates it)."""
    import importlib
    from dataclasses import asdict

    settings = asdict(importlib.import_module(module).PRESETS[name])
    return {k: v for k, v in settings.items() if k not in HOW_TO_COMPUTE}


def _real_faces(preset: RunPreset, root: Path | None) -> Callable[[Path], dict]:
    def run(folder: Path) -> dict:
        from generators.real_faces import lfw_training_photos
        from recognition.faces.real_faces import prepare_faces

        photos = lfw_training_photos("peopleDevTrain", root)
        counts = prepare_faces(photos[: preset.real_faces] if preset.real_faces else photos, folder / "faces")
        return {"faces": "faces", **counts}

    return run


def _pairs(preset: RunPreset, root: Path | None) -> Callable[[Path], dict]:
    def run(folder: Path) -> dict:
        from generators.pairs import PRESETS, lfw_photos, make_pairs

        config = PRESETS[preset.pairs]
        summary = make_pairs(config, lfw_photos("peopleDevTrain", config.images_per_person, root), folder / "pairs")
        return {"pairs": "pairs", "kept": summary["pairs"]}

    return run


ABLATION_FLAGS = {"use_identity": "--no-identity", "use_pair": "--no-pair", "use_cycle": "--no-cycle"}


def distributed_command(gpus: int, module: str, arguments: Sequence[str]) -> list[str]:
    """`module` under torch's elastic launcher, one process per GPU on this machine (torchrun --standalone):
    each process takes its GPU from LOCAL_RANK (bench.common.devices) and rank 0 writes."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={gpus}", "-m", module,
            *map(str, arguments)]


def launch(command: list[str], stage: str) -> None:
    log.info("%s: %s", stage, " ".join(command))
    if subprocess.run(command).returncode != 0:
        raise UserError(f"{stage}: the distributed run failed (command above; re-run bench.run to resume)")


def _translator(preset: RunPreset, synth: str, seed: int, real: Stage, pairs: Stage | None,
                gpus: int = 0) -> Callable[[Path], dict]:
    def run(folder: Path) -> dict:
        from generators.train import PRESETS, train

        if gpus > 1:
            flags = [ABLATION_FLAGS[name] for name, on in ABLATIONS[synth].items() if not on]
            launch(distributed_command(gpus, "generators.train", [
                "--preset", preset.translator, "--seed", seed, "--real", real.folder / "faces",
                *(["--pairs", pairs.folder / "pairs"] if pairs else []), "--out", folder / "run",
                *(["--resume"] if (folder / "run" / "checkpoint.pt").exists() else []), *flags]), "translator")
            return {"run": "run", "iterations": PRESETS[preset.translator].iterations, "gpus": gpus}
        config = PRESETS[preset.translator]
        config = replace(config, seed=seed, weights=replace(config.weights, **ABLATIONS[synth]))
        trainer = train(config, real.folder / "faces", pairs.folder / "pairs" if pairs else None, folder / "run",
                        resume=(folder / "run" / "checkpoint.pt").exists())
        if trainer.state.iteration < config.iterations:
            raise UserError(f"translator stopped at iteration {trainer.state.iteration}; re-run to resume")
        return {"run": "run", "iterations": trainer.state.iteration}

    return run


def _ganfaces(preset: RunPreset, translator: Stage, gpus: int = 0) -> Callable[[Path], dict]:
    def run(folder: Path) -> dict:
        from generators.synthesize import PRESETS, synthesize

        if gpus > 1:  # ranks take shards of the identities, rank 0 merges (generators.synthesize)
            launch(distributed_command(gpus, "generators.synthesize", [
                "--generator", translator.folder / "run", "--preset", preset.synthesis, "--also-renders",
                "--out", folder / "ganfaces"]), "ganfaces")
            return {"images": "ganfaces/ganfaces", "renders": "ganfaces/renders", "gpus": gpus}

        summary = synthesize(replace(PRESETS[preset.synthesis], also_renders=True), translator.folder / "run",
                             folder / "ganfaces")
        return {"images": "ganfaces/ganfaces", "renders": "ganfaces/renders", "summary": summary.get("merge", {})}

    return run


def _renders(preset: RunPreset) -> Callable[[Path], dict]:
    def run(folder: Path) -> dict:
        from generators.render import RenderConfig, render_dataset
        from generators.synthesize import PRESETS
        from generators.train import PRESETS as TRANSLATOR_PRESETS

        sizes = PRESETS[preset.synthesis]
        # the renders baseline in the pose GANFaces get: the translator's (synthesis follows it)
        table = render_dataset(RenderConfig(identities=sizes.identities, per_identity=sizes.per_identity,
                                            seed=sizes.seed, image_format="jpg",
                                            pose=TRANSLATOR_PRESETS[preset.translator].pose), folder / "renders")
        return {"images": "renders", "count": len(table)}

    return run


def _recognizer(preset: RunPreset, real: float, seed: int, real_faces: Stage,
                synthetic: Stage | None, gpus: int = 0, fixture: Stage | None = None) -> Callable[[Path], dict]:
    def run(folder: Path) -> dict:
        from recognition.train import PRESETS, train

        # the fixture (built by an earlier stage) only for the leakage guard before training: evaluation is a stage
        ijba = str(fixture.folder / "ijba") if fixture is not None else None
        images = None if synthetic is None else synthetic.folder / json.loads(
            (synthetic.folder / MARKER).read_text())["outputs"]["images"]
        if gpus > 1:
            launch(distributed_command(gpus, "recognition.train", [
                "--preset", preset.recognizer, "--real-set", real_faces.folder / "faces", "--lfw-split", "view1",
                "--real", real, "--seed", seed, "--no-eval", "--min-images", preset.real_min_images,
                *(["--synth", images] if images is not None else []), *(["--ijba", ijba] if ijba else []),
                "--out", folder / "run", *(["--resume"] if (folder / "run" / "checkpoint.pt").exists() else [])]),
                "recognizer")
            return {"run": "run", "iterations": PRESETS[preset.recognizer].iterations, "gpus": gpus}
        # the aligned LFW training people of the real_faces stage; evaluated on View 1 (never their names)
        config = replace(PRESETS[preset.recognizer], real_set=str(real_faces.folder / "faces"), lfw_split="view1",
                         real_fraction=real, seed=seed, evaluate=False, min_images=preset.real_min_images, ijba=ijba,
                         synthetic_set=None if images is None else str(images))
        trainer = train(config, folder / "run", resume=(folder / "run" / "checkpoint.pt").exists())
        if trainer.state.iteration < config.iterations:
            raise UserError(f"recognizer stopped at iteration {trainer.state.iteration}; re-run to resume")
        return {"run": "run", "iterations": trainer.state.iteration}

    return run


def _fixture(settings: dict[str, Any], root: Path | None) -> Callable[[Path], dict]:
    def run(folder: Path) -> dict:
        from protocols.ijba_fixture import FIXTURE_LABEL, build_ijba_fixture, fixture_identity_names

        build_ijba_fixture(root, folder / "ijba", **settings)
        return {"protocol_dir": "ijba", "label": FIXTURE_LABEL,
                "identities": len(fixture_identity_names(folder / "ijba") or [])}

    return run


def _evaluation(recognizer: Stage, fixture: Stage | None, root: Path | None) -> Callable[[Path], dict]:
    def run(folder: Path) -> dict:
        from recognition.evaluation import check_run_identities, evaluate_run

        ijba = fixture.folder / "ijba" if fixture is not None else None
        # the recognizer's identities (both heads) against View 1's test people and the fixture's subjects
        check_run_identities(recognizer.folder / "run", "view1", ijba, root)
        results = evaluate_run(recognizer.folder / "run", "view1", ijba, "mtcnn", root)
        write_json(folder / "results.json", results)
        return {"results": "results.json"}

    return run


def plan_stages(preset_name: str, real: float, synth: str, seed: int, out: Path, root: Path | None = None,
                synth_seed: int | None = None, gpus: int = 0) -> list[Stage]:
    """The stages of one run, in order, each keyed by its configuration and its inputs' keys.

    `seed` seeds the recognizer; `synth_seed` (default: `seed`) the translator, so several recognizer
    seeds can share one GANFaces set and their spread measures the recognizer's variance alone.
    `gpus` > 1 launches the two trainers and synthesis under torchrun; the trainers' keys then include
    the number of processes, since data-parallel training on N GPUs sees N batches per iteration.
    """
    parallel = {"gpus": gpus} if gpus > 1 else {}
    synth_seed = seed if synth_seed is None else synth_seed
    preset = RUN_PRESETS[preset_name]
    stages: list[Stage] = []
    synthetic = None
    real_faces = Stage("real_faces", {"preset": preset_name, "photos": preset.real_faces}, _real_faces(preset, root))
    stages.append(real_faces)
    fixture = None
    if preset.fixture is not None:  # one folder for every run of the preset (its key is its settings alone)
        fixture = Stage("fixture", {"builder": "protocols.ijba_fixture", **preset.fixture},
                        _fixture(preset.fixture, root))
        stages.append(fixture)
    if synth.startswith("ganfaces"):
        pairs = None if synth == "ganfaces-no-ldp" else Stage("pairs", {"preset": preset.pairs, "settings": preset_settings("generators.pairs", preset.pairs)}, _pairs(preset, root))
        translator = Stage("translator", {"preset": preset.translator, "synth": synth, "seed": synth_seed,
                                          "settings": preset_settings("generators.train", preset.translator),
                                          "real_faces": real_faces.key, "pairs": pairs.key if pairs else None, **parallel},
                           _translator(preset, synth, synth_seed, real_faces, pairs, gpus))
        synthetic = Stage("ganfaces", {"preset": preset.synthesis, "translator": translator.key,
                                       "settings": preset_settings("generators.synthesis_plan", preset.synthesis)},
                          _ganfaces(preset, translator, gpus))
        stages += [s for s in (pairs, translator, synthetic) if s is not None]
    elif synth == "3dmm":
        synthetic = Stage("renders", {"preset": preset.synthesis, "pose": preset_settings(
            "generators.train", preset.translator)["pose"], "settings": preset_settings(
            "generators.synthesis_plan", preset.synthesis)}, _renders(preset))
        stages.append(synthetic)
    # the real classes' minimum photo count enters the key only when it filters (keys of k = 1 stay as before)
    min_images = {"min_images": preset.real_min_images} if preset.real_min_images > 1 else {}
    recognizer = Stage("recognizer", {"preset": preset.recognizer, "real": real, "seed": seed, "synth": synth,
                                      "settings": preset_settings("recognition.train", preset.recognizer),
                                      "real_faces": real_faces.key, "synthetic": synthetic.key if synthetic else None,
                                      **min_images, **parallel},
                       _recognizer(preset, real, seed, real_faces, synthetic, gpus, fixture))
    evaluation = Stage("evaluation", {"recognizer": recognizer.key, "lfw": "view1",
                                      **({"fixture": fixture.key} if fixture is not None else {})},
                       _evaluation(recognizer, fixture, root))
    stages += [recognizer, evaluation]
    for stage in stages:
        stage.out = out
    return stages


def until_stage(stages: Sequence[Stage], until: str | None) -> list[Stage]:
    """The plan cut after the stage named `until` (all of it for None): the stages are cached by key, so a run cut
    here and run again later without `--until` goes on from where this one stopped."""
    names = [stage.name for stage in stages]
    if until is None:
        return list(stages)
    if until not in names:
        raise UserError(f"--until {until}: this run's stages are {', '.join(names)}")
    return list(stages[: names.index(until) + 1])


def measured_seconds(preset_name: str, out: Path | None = None, perf_dir: Path = PERF_DIR,
                     recorded: dict[str, float] | None = None) -> dict[str, float]:
    """The stage times the plan assumes: the preset's, the translator's from the profile record when it
    profiles this preset (results/perf/train-profile.json: seconds per iteration x the preset's iterations),
    then `recorded` (the grid's records made on a machine like this one, bench.grid.recorded_seconds), and the
    median of this output folder's own finished stages of the preset where there are some."""
    preset = RUN_PRESETS[preset_name]
    seconds = dict(preset.seconds)
    profile = perf_dir / "train-profile.json"
    if profile.is_file():
        rows = [row for row in json.loads(profile.read_text()).get("rows", []) if row.get("preset") == preset.translator]
        if rows:
            from generators.train import PRESETS

            seconds["translator"] = sum(row["seconds_per_iteration"] for row in rows) * PRESETS[preset.translator].iterations
    seconds.update(recorded or {})
    if out is not None and Path(out).is_dir():
        finished: dict[str, list[float]] = {}
        for marker in Path(out).glob(f"*/{MARKER}"):
            stage = json.loads(marker.read_text())
            if stage.get("stage") in ("translator", "ganfaces", "recognizer", "renders") and \
                    stage.get("config", {}).get("preset") == getattr(preset, stage["stage"], preset.synthesis) and \
                    "seconds" in stage:
                finished.setdefault(stage["stage"], []).append(float(stage["seconds"]))
        seconds.update({name: float(pd.Series(values).median()) for name, values in finished.items()})
    return seconds


def plan_table(stages: Sequence[Stage], preset: str, seconds: dict[str, float] | None = None) -> pd.DataFrame:
    seconds = RUN_PRESETS[preset].seconds if seconds is None else seconds
    return pd.DataFrame([{"stage": s.name, "status": s.status(), "folder": s.folder.name,
                          "estimate": "-" if s.done else format_duration(seconds.get(s.name, 0))} for s in stages])


def format_duration(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.0f} min" if seconds >= 60 else f"{seconds:.0f} s"


def run_stages(stages: Sequence[Stage]) -> None:
    for number, stage in enumerate(stages, 1):
        if stage.done:
            log.info("[%d/%d] %s: cached (%s)", number, len(stages), stage.name, stage.folder.name)
            continue
        print(f"[{number}/{len(stages)}] {stage.name} -> {stage.folder}", flush=True)
        with exclusive_folder(stage.folder, f"the {stage.name} stage"):  # two bench.runs never share a stage
            if stage.done:  # finished by the process that held the lock
                continue
            stage.folder.mkdir(parents=True, exist_ok=True)
            write_json(stage.folder / "config.json", {"stage": stage.name, **stage.config})
            started = time.perf_counter()
            outputs = stage.run(stage.folder)
            write_json(stage.folder / MARKER, {"stage": stage.name, "key": stage.key, "config": stage.config,
                                               "outputs": outputs, "seconds": time.perf_counter() - started})


def check_data(root: Path) -> None:
    """LFW (photos and View 1 protocol files) and the ICT model must be in the data root."""
    from bench.data import check_table

    table = check_table(root)
    missing = table[~table.status.astype(str).str.startswith("ok")]
    if len(missing):
        raise UserError(f"the data root {root} lacks what the pipeline needs:\n{missing.to_string(index=False)}\n"
                        "fetch it with `python -m bench.data fetch lfw` / `fetch ict-facekit`, or set FACEBENCH_DATA")


def add_shared_arguments(parser: argparse.ArgumentParser, default_out: Path) -> None:
    """The options `bench.run` and `bench.grid` share (`bench.run --grid` is `bench.grid`'s command)."""
    parser.add_argument("--synth-seed", type=int, default=None,
                        help="the translator's seed, to share one GANFaces set across recognizer seeds (default: "
                             "--seed; in a grid 0)")
    parser.add_argument("--out", type=Path, default=default_out)
    parser.add_argument("--plan", action="store_true", help="print the plan and stop")
    parser.add_argument("--gpus", type=int, default=0,
                        help="GPUs on this machine: more than 1 runs the trainers and synthesis under torchrun, one "
                             "process per GPU (0 or 1: one process, on the GPU when there is one)")


def check_shared_arguments(args: argparse.Namespace) -> None:
    """Validate the shared options (exit 2 through UserError) and point FACEBENCH_DATA at --data-root."""
    require_at_least(args, synth_seed=0, gpus=0)
    if args.data_root:
        os.environ["FACEBENCH_DATA"] = args.data_root


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser)
    parser.add_argument("--real", type=float, default=1.0, help="share of the real training set: 0.2, 0.5 or 1.0")
    parser.add_argument("--synth", default="ganfaces", help=f"synthetic set: {', '.join(SYNTHETIC_SETS)}")
    parser.add_argument("--preset", choices=RUN_PRESETS, default="cpu")
    parser.add_argument("--seed", type=int, default=0, help="the recognizer's seed (and the translator's by default)")
    add_shared_arguments(parser, default_out=Path("runs/bench"))
    parser.add_argument("--until", default=None, metavar="STAGE",
                        help="run the plan's stages up to and including this one (e.g. `ganfaces`: a translator and "
                             "its GANFaces for protocols.separation, without a recognizer); the rest stay to do")
    parser.add_argument("--grid", choices=RUN_PRESETS, default=None, metavar="PRESET",
                        help="the whole grid of issue 19 at this preset (real 0.2/0.5/1.0 x none/3dmm/ganfaces, "
                             "the three ablations at 0.5, --seeds each, one translator per variant): prints every "
                             "run's status and estimate, then runs those within --hours (--real/--synth ignored)")
    from bench.grid import add_grid_arguments

    add_grid_arguments(parser)
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    require_at_least(args, seed=0)
    check_shared_arguments(args)
    if args.real not in REAL_FRACTIONS:
        raise UserError(f"--real {args.real}: choose one of {', '.join(map(str, REAL_FRACTIONS))}")
    if args.synth not in SYNTHETIC_SETS:
        raise UserError(f"--synth {args.synth}: choose one of {', '.join(SYNTHETIC_SETS)}")
    root = data_root()
    if args.grid is not None:  # bench.grid's command (the grid is its own module)
        from bench.grid import grid_main

        return grid_main(args, root)
    stages = until_stage(plan_stages(args.preset, args.real, args.synth, args.seed, args.out,
                                     synth_seed=args.synth_seed, gpus=args.gpus), args.until)
    seconds = measured_seconds(args.preset, args.out)
    table = plan_table(stages, args.preset, seconds)
    total = sum(seconds.get(s.name, 0) for s in stages if not s.done)
    seeds = f"seed {args.seed}" + ("" if args.synth_seed is None else f", synth seed {args.synth_seed}")
    print(f"plan: preset {args.preset}, real {args.real}, synth {args.synth}, {seeds}, out {args.out}\n"
          f"{table.to_markdown(index=False)}\nestimated time on a 2-core CPU: {format_duration(total)}", flush=True)
    if args.plan:
        return 0
    check_data(root)
    run_stages(stages)
    if stages[-1].name != "evaluation":
        print(f"stopped after {stages[-1].name} (--until): {stages[-1].folder}")
        return 0
    from bench.tables import collect_runs, summary_table

    runs = collect_runs(args.out)
    print(f"\nfinished runs under {args.out}:\n{summary_table(runs).dropna(axis=1, how='all').to_markdown(index=False, floatfmt='.2f')}")
    print(f"tables and ROC curves: python -m bench.tables --runs {args.out}")
    return 0


if __name__ == "__main__":
    run_main(main)
