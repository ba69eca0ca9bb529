"""A recognizer run evaluated through the project's protocols, results written beside its checkpoint.

    python -m recognition.evaluation --run runs/recognizer                   # LFW split chosen as in training
    python -m recognition.evaluation --run runs/recognizer --lfw-split 10fold --ijba IJB-A_11_sets

The checkpoint becomes the `recognizer` embedder and goes to `protocols.lfw.evaluate_lfw` (and
`protocols.ijba.evaluate_ijba` when a protocol folder is given, or `<data root>/IJB-A_11_sets`
exists): the path every other embedder takes, MTCNN alignment to the canonical crop included.
Results: `<run>/lfw-<split>/` and `<run>/ijba/` (metrics.json, tables, ROC) and `<run>/results.json`.

Before evaluating, `main` (and `bench.run`'s evaluation stage, through `check_run_identities`) runs the
leakage guard on the run's identities.json against the LFW split and, when the IJB-A folder is a fixture
built from LFW (`protocols.ijba_fixture`), against the fixture's subjects; numbers measured on such a
fixture are recorded with `source: "IJB-A format fixture from LFW"`.

Aligning ~5,000 LFW photos with MTCNN takes minutes on a CPU and gives the same chips for every
checkpoint, so `ChipCache` keeps the chips on disk keyed by the photo's pixels and the crop geometry;
evaluating the next checkpoint reads them back. The chips are stored losslessly (PNG), so the cached
path gives exactly the chips MTCNN gave.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from bench.common.atomic import atomic_path, write_json
from bench.common.cli import UserError, add_common_arguments, run_main, setup_logging
from bench.common.datasets import cache_dir, data_root, portable_path
from bench.common.images import to_rgb
from recognition.faces.align import ALIGNERS, Aligner, CropGeometry, get_aligner

log = logging.getLogger(__name__)

LFW_SPLITS = ("view1", "10fold")


class ChipCache(Aligner):
    """Another aligner's chips, remembered on disk by image content and geometry (same cache tag: same chips)."""

    def __init__(self, aligner: Aligner, folder: Path | None = None):
        super().__init__()
        self.aligner, self.name = aligner, aligner.name
        self.folder = Path(folder) if folder is not None else cache_dir() / "aligned-chips"

    @property
    def cache_tag(self) -> str:
        return self.aligner.cache_tag

    def _paths(self, image: Image.Image, geometry: CropGeometry) -> tuple[Path, Path]:
        digest = hashlib.sha1(f"{image.mode}{image.size}".encode() + image.tobytes()).hexdigest()
        folder = self.folder / f"{self.aligner.cache_tag}-{geometry.tag}" / digest[:2]
        return folder / f"{digest}.png", folder / f"{digest}.fallback.png"

    def chips(self, images, geometry):
        paths = [self._paths(image, geometry) for image in images]
        missing = [i for i, (hit, fallback) in enumerate(paths) if not hit.exists() and not fallback.exists()]
        computed = {}
        if missing:
            chips, found = self.aligner.chips([images[i] for i in missing], geometry)
            for i, chip, hit in zip(missing, chips, found):
                target = paths[i][0] if hit else paths[i][1]
                with atomic_path(target) as temporary:
                    chip.save(temporary, format="PNG")
                computed[i] = (chip, bool(hit))
        chips, found = [], np.zeros(len(images), dtype=bool)
        for i, (hit, fallback) in enumerate(paths):
            if i in computed:
                chip, found[i] = computed[i]
            else:
                found[i] = hit.exists()
                with Image.open(hit if found[i] else fallback) as stored:
                    chip = to_rgb(stored)
            chips.append(chip)
        self._count(found)
        return chips, found


def default_ijba_folder(root: Path | None = None) -> Path | None:
    folder = data_root(root) / "IJB-A_11_sets"
    return folder if folder.is_dir() else None


def check_run_identities(run: Path, lfw_split: str, ijba: Path | None = None, root: Path | None = None,
                         allow: bool = False) -> dict[str, list[str]]:
    """The leakage guard for a finished run: its identities.json (each head's identities) against LFW
    `lfw_split` and, when `ijba` is an IJB-A-format fixture from LFW, the fixture's subjects. {} when the run
    has no identities.json (then there is nothing to check)."""
    from recognition.leakage import check_identity_leakage, fixture_evaluations

    identities = Path(run) / "identities.json"
    if not identities.is_file():
        return {}
    return check_identity_leakage(json.loads(identities.read_text()), lfw_split, root, allow=allow,
                                  other_evaluations=fixture_evaluations(ijba))


def evaluate_run(run: Path, lfw_split: str, ijba: Path | None = None, aligner: str = "mtcnn", root: Path | None = None,
                 progress: bool = True, workers: int = 2) -> dict:
    """Evaluate `<run>/checkpoint.pt` on LFW `lfw_split` (and IJB-A); write the reports and results.json into `run`."""
    from protocols.ijba import evaluate_ijba
    from protocols.lfw import evaluate_lfw, write_lfw_report
    from protocols.report import write_report
    from recognition.embedders import get_embedder

    run = Path(run)
    if lfw_split not in LFW_SPLITS:
        raise UserError(f"LFW split must be one of {', '.join(LFW_SPLITS)}, not '{lfw_split}'")
    embedder = get_embedder("recognizer", weights=run / "checkpoint.pt")
    chip_source = ChipCache(get_aligner(aligner))
    options = {"aligner": chip_source, "progress": progress, "workers": workers}
    lfw = evaluate_lfw(embedder, root, lfw_split, **options)
    write_lfw_report(lfw, run / f"lfw-{lfw_split}")
    results = {"checkpoint": portable_path(run / "checkpoint.pt"), "iteration": embedder.config.get("iteration"),
               "embedder_key": embedder.cache_key, "lfw": {"split": lfw_split, **lfw.summary}}
    log.info("LFW %s accuracy %.2f%%", lfw_split, lfw.summary["accuracy_percent"])
    ijba = Path(ijba) if ijba is not None else default_ijba_folder(root)
    if ijba is not None:
        from protocols.ijba_fixture import FIXTURE_LABEL, fixture_identity_names

        # a fixture built from LFW is labelled as such wherever its numbers appear (bench.tables reads `source`)
        source = FIXTURE_LABEL if fixture_identity_names(ijba) is not None else "IJB-A"
        result = evaluate_ijba(embedder, ijba, **options)
        title = ("IJB-A 1:1 verification" if source == "IJB-A" else f"{source} (not IJB-A), IJB-A's 1:1 protocol")
        write_report(run / "ijba", f"{title} ({ijba.name}): recognizer {run.name}", result.summary,
                     result.config, {"splits": result.per_split}, result.curves)
        results["ijba"] = {"protocol_dir": portable_path(ijba), "source": source, **result.summary}
    write_json(run / "results.json", results)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m recognition.evaluation", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser)
    parser.add_argument("--run", type=Path, required=True, help="a run folder of python -m recognition.train")
    parser.add_argument("--lfw-split", choices=("auto",) + LFW_SPLITS, default="auto",
                        help="auto: the split the run was trained for (View 1 for LFW training people, else 10 folds)")
    parser.add_argument("--ijba", type=Path, default=None, help="IJB-A protocol folder (split1 ... split10)")
    parser.add_argument("--aligner", choices=ALIGNERS, default="mtcnn")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--allow-identity-overlap", action="store_true",
                        help="evaluate even when training identities appear in the chosen LFW split")
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    from recognition.data import resolve_lfw_split

    stored = args.run / "config.json"
    if not stored.is_file():
        raise UserError(f"{stored} not found: --run must be a run folder of python -m recognition.train")
    config = json.loads(stored.read_text())
    split = resolve_lfw_split(args.lfw_split if args.lfw_split != "auto" else config.get("lfw_split", "auto"),
                              config["real_set"])
    ijba = args.ijba or config.get("ijba") or default_ijba_folder(args.data_root)
    # the guard of training, for the split chosen now and the fixture's people
    check_run_identities(args.run, split, ijba, args.data_root,
                         allow=args.allow_identity_overlap or config.get("allow_identity_overlap", False))
    results = evaluate_run(args.run, split, ijba, args.aligner, args.data_root, workers=args.workers)
    from protocols.report import markdown_table, summary_frame

    print(f"{args.run}: results in {args.run / 'results.json'}\n")
    print(markdown_table(summary_frame(results["lfw"])))
    return 0


if __name__ == "__main__":
    run_main(main)
