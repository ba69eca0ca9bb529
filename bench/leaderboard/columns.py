"""The leaderboard's columns: what each measures, where its data is looked for, and the LFW-made fixtures."""
from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common.cli import UserError
from protocols.bin_fixture import build_lfw_bin
from protocols.ijba import find_splits
from protocols.ijba_fixture import build_ijba_fixture
from protocols.ijbc_fixture import build_ijbc_fixture
from protocols.lfw_files import PAIRS_FILES, LFWLayout
from protocols.verification_files import FIXTURE_MARKER_SUFFIX

log = logging.getLogger(__name__)

# Where each set is looked for under the data root (overridable: --bin-dir, --ijb-dir, --ijba-dir)
BIN_DIR = "verification"  # insightface's lfw.bin, cfp_fp.bin, agedb_30.bin, calfw.bin, cplfw.bin (as in faces_emore/)
IJB_DIR = "IJB_release"  # insightface's IJB_release/IJBB and IJB_release/IJBC
IJBA_DIR = "IJB-A_11_sets"  # split1..split10 (as bench.run looks for it)

# The format fixtures --fixtures builds from LFW (sized so that each column's figure is measurable on it:
# 70 people give the IJB-C layout over 10,000 impostor pairs, which TAR@FAR=1e-4 needs)
FIXTURE_BIN_PAIRS = 600
FIXTURE_IJBC_SUBJECTS = 70
FIXTURE_IJBA = {"splits": 3, "subjects": 30, "impostors": 1000}
FIXTURE_SEED = 0


def fixture_recipes() -> dict[str, str]:
    """How each fixture column's data was made (column key -> the command it equals)."""
    ijba = FIXTURE_IJBA
    return {
        "lfw-bin": f"`python -m protocols.bin_fixture --lfw-pairs 10fold --limit {FIXTURE_BIN_PAIRS}`: {FIXTURE_BIN_PAIRS} "
                   "pairs of pairs.txt spread over its ten folds, MTCNN to ArcFace's 112x112 template, JPEG",
        "ijbc": f"`python -m protocols.ijbc_fixture --subjects {FIXTURE_IJBC_SUBJECTS} --seed {FIXTURE_SEED}`: "
                "loose crops of LFW DevTest people, MTCNN's five points, every template pair",
        "ijba": f"`python -m protocols.ijba_fixture --splits {ijba['splits']} --subjects {ijba['subjects']} "
                f"--impostors {ijba['impostors']} --seed {FIXTURE_SEED}`: LFW photos pasted on canvases with their boxes",
    }



@dataclass(frozen=True)
class Column:
    """One leaderboard column: the set, the protocol that measures it, the figure shown and where its data lies."""

    key: str  # results folder / file name of the set: lfw, cfp_fp, ..., ijbb, ijbc, ijba
    title: str
    kind: str  # lfw | bin | ijb | ijba
    figure: str  # what the cell holds
    note: str  # protocol and convention
    fixture: bool = False


BIN_NOTE = ("`protocols.verification` on insightface's .bin (112x112 ArcFace-aligned faces warped into the embedder's "
            "crop), flip on; insightface's convention: L2-normalised features, squared distance, threshold grid "
            "0..4 step 0.01, KFold(10) unshuffled; mean ± std (ddof=0) over the ten folds")
IJB_NOTE = ("`protocols.ijbc` 1:1 template verification: faces warped by the given five points, pooled within media "
            "then templates, cosine; no flip, no score weighting; TAR at the largest ROC point with FAR <= 1e-4 "
            "(n/a with fewer than 10,000 impostor pairs)")
IJBA_NOTE = ("`protocols.ijba` 1:1 verification: faces cropped by their box (MTCNN alignment for aligned-crop "
             "embedders), media then template pooling, cosine; TAR@FAR=1e-3 per split, mean ± std (ddof=1) over splits")
LFW_NOTE = ("`protocols.lfw` View 2 (pairs.txt), 10 folds: threshold from the other nine folds (the project's "
            "convention, `protocols.metrics`), the embedder's own metric, MTCNN alignment for aligned-crop embedders, "
            "no flip; mean ± std (ddof=1) over the folds")

COLUMNS = (
    Column("lfw", "LFW", "lfw", "accuracy (%)", LFW_NOTE),
    Column("cfp_fp", "CFP-FP", "bin", "accuracy (%)", BIN_NOTE),
    Column("agedb_30", "AgeDB-30", "bin", "accuracy (%)", BIN_NOTE),
    Column("calfw", "CALFW", "bin", "accuracy (%)", BIN_NOTE),
    Column("cplfw", "CPLFW", "bin", "accuracy (%)", BIN_NOTE),
    Column("ijbb", "IJB-B", "ijb", "TAR@FAR=1e-4 (%)", IJB_NOTE),
    Column("ijbc", "IJB-C", "ijb", "TAR@FAR=1e-4 (%)", IJB_NOTE),
    Column("ijba", "IJB-A", "ijba", "TAR@FAR=1e-3 (%)", IJBA_NOTE),
)
FIXTURE_COLUMNS = (
    Column("lfw-bin", "LFW .bin FIXTURE", "bin", "accuracy (%)", BIN_NOTE, fixture=True),
    Column("ijbc", "IJB-C layout FIXTURE", "ijb", "TAR@FAR=1e-4 (%)", IJB_NOTE, fixture=True),
    Column("ijba", "IJB-A layout FIXTURE", "ijba", "TAR@FAR=1e-3 (%)", IJBA_NOTE, fixture=True),
)



@dataclass
class Source:
    """Where a column's data is and what identifies it: `path` as looked for, `digest` of its content."""

    path: Path
    present: bool
    digest: str | None = None
    loaded: Any = None  # the set read once for all embedders (VerificationSet, IJBProtocol), when needed
    note: str | None = None  # fixture marker text
    problem: str | None = None  # why a folder that is there cannot be read (the column is then missing)



def _sha1(path: Path, digest=None):
    digest = digest or hashlib.sha1()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest


def files_digest(paths: Sequence[Path]) -> str:
    """SHA-1 over the names and contents of protocol files: a stored result is reused only for the same files."""
    digest = hashlib.sha1()
    for path in paths:
        digest.update(Path(path).name.encode() + b"\0")
        _sha1(path, digest)
    return digest.hexdigest()


def lfw_source(root: Path) -> Source:
    layout = LFWLayout(root)
    pairs = layout.root / PAIRS_FILES["10fold"][0]
    present = pairs.is_file() and layout.images_dir.is_dir()
    return Source(pairs if not present else layout.root, present, loaded=layout if present else None)


def bin_source(path: Path) -> Source:
    if not path.is_file():
        return Source(path, False)
    marker = path.with_name(path.name + FIXTURE_MARKER_SUFFIX)
    note = marker.read_text().strip().splitlines()[0] if marker.is_file() else None
    return Source(path, True, _sha1(path).hexdigest(), note=note)  # what protocols.verification records as bin_sha1


def ijb_source(folder: Path, set_name: str) -> Source:
    """IJB_release/IJBB or IJBC: present when its face list is there; digest over every meta file."""
    face_list = folder / "meta" / f"{set_name}_face_tid_mid.txt"
    if not face_list.is_file():
        return Source(face_list, False)
    metas = sorted(p for p in (folder / "meta").iterdir() if p.is_file() and p.name.startswith(f"{set_name}_"))
    readme = folder / "README.txt"
    first = readme.read_text(errors="replace").strip().splitlines()[:1] if readme.is_file() else []
    note = first[0] if first and "FIXTURE" in first[0] else None
    return Source(folder, True, files_digest(metas), note=note)


def ijba_source(folder: Path) -> Source:
    if not folder.is_dir():
        return Source(folder, False)
    try:
        numbers = find_splits(folder)
    except UserError as error:  # the other columns still count: this one is missing, the report says why
        log.warning("IJB-A column missing: %s", error)
        return Source(folder, False, problem=str(error))
    files = [folder / f"split{n}" / f"verify_{what}_{n}.csv" for n in numbers for what in ("metadata", "comparisons")]
    readme = folder / "README.txt"
    first = readme.read_text(errors="replace").strip().splitlines()[:1] if readme.is_file() else []
    note = first[0] if first and "FIXTURE" in first[0] else None
    return Source(folder, True, files_digest(files), note=note)



def build_fixtures(root: Path, folder: Path) -> dict[str, Path]:
    """The three LFW-made format fixtures under `folder` (the cache), each built once: column key -> path."""
    folder = Path(folder)
    lfw_bin = folder / f"lfw-bin-{FIXTURE_BIN_PAIRS}pairs" / "lfw.bin"
    if not (lfw_bin.is_file() and lfw_bin.with_name(lfw_bin.name + FIXTURE_MARKER_SUFFIX).is_file()):
        log.info("building the .bin format fixture (%d LFW pairs, MTCNN) in %s", FIXTURE_BIN_PAIRS, lfw_bin)
        build_lfw_bin(root, lfw_bin, "10fold", FIXTURE_BIN_PAIRS)  # the marker is written last
    ijbc = folder / f"ijbc-{FIXTURE_IJBC_SUBJECTS}people-seed{FIXTURE_SEED}"
    if not (ijbc / "README.txt").is_file():  # README.txt is written last
        log.info("building the IJB-C-layout format fixture (%d LFW people) in %s", FIXTURE_IJBC_SUBJECTS, ijbc)
        build_ijbc_fixture(root, ijbc, FIXTURE_IJBC_SUBJECTS, FIXTURE_SEED)
    ijba = folder / "ijba-{splits}splits-{subjects}people-{impostors}impostors-seed{seed}".format(
        **FIXTURE_IJBA, seed=FIXTURE_SEED)
    if not (ijba / "README.txt").is_file():
        log.info("building the IJB-A-layout format fixture in %s", ijba)
        build_ijba_fixture(root, ijba, seed=FIXTURE_SEED, **FIXTURE_IJBA)
    return {"lfw-bin": lfw_bin, "ijbc": ijbc, "ijba": ijba}


