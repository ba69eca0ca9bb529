"""IJB-B and IJB-C: 1:1 template verification and 1:N identification, in insightface's `IJB_release` layout.

    python -m protocols.ijbc --root IJB_release/IJBC --embedder dlib-resnet [--set ijbc|ijbb] [--flip]
                             [--score-weighting] [--pooling media|faces] [--out DIR]

Layout (`<set>` is ijbc or ijbb; found from the files when --set is not given):
- `meta/<set>_face_tid_mid.txt`: one face per line, 'image template_id media_id' (space-separated);
- `meta/<set>_name_5pts_score.txt`: 'image x1 y1 ... x5 y5 score', the five points (left eye, right eye, nose,
  left and right mouth corner) in the loose crop's pixels, then the detector's score;
- `meta/<set>_template_pair_label.txt`: 'template1 template2 label' (1 genuine, 0 impostor);
- `loose_crop/<image>`: the faces;
- 1:N, when present: `meta/<set>_1N_gallery_G1.csv` and `_G2.csv` (IJB-B's are named S1 and S2) and
  `meta/<set>_1N_probe_mixed.csv`, NIST's CSVs with TEMPLATE_ID and SUBJECT_ID columns (others ignored);
  their templates are pooled from the face list above.

Each loose crop is warped by its given five points into the embedder's crop (no re-detection; LFW's loose-crop
geometry for embedders without one); with --flip a face's feature is f(x) + f(mirror x). Faces are pooled
within media, then media within templates, and L2-normalised (`protocols.templates`, shared with IJB-A);
features of cosine embedders are L2-normalised first; --score-weighting multiplies each face's feature by its
detector score first; --pooling faces averages a template's faces directly. Scores are cosines of templates.
1:1: AUC, EER and TAR@FAR=1e-6 ... 1e-1 on the pair list (NaN for a FAR below 1/impostor pairs, never
extrapolated). 1:N: rank-1/5/10 and TPIR@FPIR=0.01/0.1 per gallery, probes of subjects absent from it being
non-mated searches (`protocols.metrics`), and their mean over the two galleries.

IJB-B/C cannot be had offline here; `python -m protocols.ijbc_fixture` builds this layout from LFW people.
Numbers on it are labelled FORMAT FIXTURE and say nothing about IJB-B/C.
"""
from __future__ import annotations

import argparse
import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.common.cli import UserError, add_common_arguments, run_main, setup_logging
from protocols.embedding import (
    FaceItem, add_embedder_arguments, add_embedding_arguments, embed_items, embedder_from_arguments, embedding_options,
)
from protocols.metrics import identification_metrics, verification_metrics
from protocols.report import markdown_table, summary_frame, write_report
from protocols.templates import pool_templates
from recognition.embedders import Embedder
from recognition.embedders.registry import file_safe_name

log = logging.getLogger(__name__)

SETS = ("ijbc", "ijbb")
IJBC_FARS = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1)
RANKS = (1, 5, 10)
FPIRS = (0.01, 0.1)
GALLERY_NAMES = {"ijbc": ("G1", "G2"), "ijbb": ("S1", "S2")}  # insightface's file names (either is accepted)
FIXTURE_MARK = "FORMAT FIXTURE"


def meta_path(root: Path, set_name: str, what: str) -> Path:
    return Path(root) / "meta" / f"{set_name}_{what}"


def detect_set(root: Path) -> str:
    """ijbc or ijbb, from the face list found under `root`/meta."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"IJB folder not found: {root}")
    found = [name for name in SETS if meta_path(root, name, "face_tid_mid.txt").is_file()]
    if len(found) != 1:
        what = "both ijbc and ijbb face lists" if found else "no meta/ijbc_face_tid_mid.txt or meta/ijbb_face_tid_mid.txt"
        raise UserError(f"{root}: {what}; point --root at insightface's IJB_release/IJBC (or IJBB) folder, or pass --set")
    return found[0]


def _text_lines(path: Path, expected: str) -> list[tuple[int, list[str]]]:
    """(line number, whitespace-separated fields) of every non-blank line; errors name the file (and line)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"file not found: {path}")
    lines = []
    for number, raw in enumerate(path.read_bytes().splitlines(), 1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            raise UserError(f"{path}:{number}: not UTF-8 text (byte {raw[error.start]:#04x} at column "
                            f"{error.start + 1}); expected {expected}") from None
        if line.strip():
            lines.append((number, line.split()))
    if not lines:
        raise UserError(f"{path}: empty; expected lines {expected}")
    return lines


def _integer(path: Path, number: int, value: str, what: str) -> int:
    if not value.lstrip("-").isdigit():
        raise UserError(f"{path}:{number}: {what} must be an integer, found {value!r}")
    return int(value)


def read_face_list(path: Path) -> pd.DataFrame:
    """`<set>_face_tid_mid.txt`: one row per line, columns image, template, media."""
    expected = "'image template_id media_id'"
    rows = []
    for number, fields in _text_lines(path, expected):
        if len(fields) != 3:
            raise UserError(f"{path}:{number}: expected {expected}, found {len(fields)} field(s): {' '.join(fields)!r}")
        rows.append((fields[0], _integer(path, number, fields[1], "template_id"),
                     _integer(path, number, fields[2], "media_id")))
    return pd.DataFrame(rows, columns=["image", "template", "media"])


def read_landmarks(path: Path) -> dict[str, tuple[tuple[float, ...], float]]:
    """`<set>_name_5pts_score.txt`: image -> (x1, y1, ..., x5, y5), detector score; finite, score >= 0."""
    expected = "'image x1 y1 x2 y2 x3 y3 x4 y4 x5 y5 score'"
    marks: dict[str, tuple[tuple[float, ...], float]] = {}
    for number, fields in _text_lines(path, expected):
        if len(fields) != 12:
            raise UserError(f"{path}:{number}: expected {expected} (12 fields), found {len(fields)}")
        try:
            values = [float(v) for v in fields[1:]]
        except ValueError:
            raise UserError(f"{path}:{number}: landmarks and score must be numbers, found {' '.join(fields[1:])!r}") from None
        if not np.all(np.isfinite(values)) or values[-1] < 0:
            raise UserError(f"{path}:{number}: landmarks must be finite and the score a finite number >= 0, "
                            f"found {' '.join(fields[1:])!r}")
        entry = (tuple(values[:10]), values[10])
        if marks.setdefault(fields[0], entry) != entry:
            raise UserError(f"{path}:{number}: image {fields[0]} is listed again with other landmarks")
    return marks


def read_template_pairs(path: Path, templates: set[int]) -> tuple[np.ndarray, np.ndarray]:
    """`<set>_template_pair_label.txt`: (P, 2) template ids and (P,) labels 0/1; every template must be known."""
    expected = "'template1 template2 label' (label 1 genuine, 0 impostor)"
    pairs, labels = [], []
    for number, fields in _text_lines(path, expected):
        if len(fields) != 3:
            raise UserError(f"{path}:{number}: expected {expected}, found {len(fields)} field(s)")
        first, second, label = (_integer(path, number, v, what) for v, what in
                                zip(fields, ("template1", "template2", "label")))
        if label not in (0, 1):
            raise UserError(f"{path}:{number}: label must be 1 (genuine) or 0 (impostor), found {label}")
        for template in (first, second):
            if template not in templates:
                raise UserError(f"{path}:{number}: template {template} has no face in the face list")
        pairs.append((first, second))
        labels.append(label)
    labels = np.asarray(labels, dtype=np.int64)
    if labels.min() == labels.max():
        raise UserError(f"{path}: all {len(labels)} pairs are {'genuine' if labels[0] else 'impostor'}; need both")
    return np.asarray(pairs, dtype=np.int64), labels


def read_search_csv(path: Path, templates: set[int]) -> pd.DataFrame:
    """A 1:N gallery or probe CSV: one row per template (TEMPLATE_ID, SUBJECT_ID), in order of first appearance."""
    try:
        frame = pd.read_csv(path, skipinitialspace=True, dtype=str)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise UserError(f"{path}: cannot parse as CSV ({error})") from None
    frame.columns = [str(c).strip().upper() for c in frame.columns]
    for column in ("TEMPLATE_ID", "SUBJECT_ID"):
        if column not in frame.columns:
            raise UserError(f"{path}: missing column {column} (found: {', '.join(frame.columns)})")
    ids = frame[["TEMPLATE_ID", "SUBJECT_ID"]].apply(lambda c: pd.to_numeric(c.str.strip(), errors="coerce"))
    for column in ids.columns:
        bad = ids[column].isna() | (ids[column] % 1 != 0)
        if bad.any():
            line = int(np.flatnonzero(bad.to_numpy())[0]) + 2  # the header is line 1
            raise UserError(f"{path}:{line}: {column} must be an integer, found {frame[column].iloc[line - 2]!r}")
    ids = ids.astype(np.int64)
    unknown = ~ids.TEMPLATE_ID.isin(templates)
    if unknown.any():
        line = int(np.flatnonzero(unknown.to_numpy())[0]) + 2
        raise UserError(f"{path}:{line}: template {ids.TEMPLATE_ID.iloc[line - 2]} has no face in the face list")
    subjects = ids.groupby("TEMPLATE_ID", sort=False).SUBJECT_ID
    mixed = subjects.nunique() > 1
    if mixed.any():
        template = int(mixed.index[mixed.to_numpy()][0])
        line = int(np.flatnonzero((ids.TEMPLATE_ID == template).to_numpy())[-1]) + 2
        raise UserError(f"{path}:{line}: template {template} is given two subjects ({sorted(set(subjects.get_group(template)))})")
    if ids.empty:
        raise UserError(f"{path}: no templates")
    return subjects.first().reset_index()


@dataclass
class IJBProtocol:
    """One IJB-B/C folder, read and checked: faces (with landmarks and scores), 1:1 pairs, 1:N lists."""

    root: Path
    set_name: str
    faces: pd.DataFrame  # image, template, media, score (one row per face-list line)
    landmarks: dict[str, tuple[float, ...]]
    pairs: np.ndarray
    labels: np.ndarray
    galleries: dict[str, pd.DataFrame] = field(default_factory=dict)  # G1/G2 (S1/S2) -> TEMPLATE_ID, SUBJECT_ID
    probes: pd.DataFrame | None = None
    fixture_note: str | None = None


def load_protocol(root: Path, set_name: str | None = None) -> IJBProtocol:
    """Read every file of the layout (see the module docstring); a missing or malformed one is a UserError."""
    root = Path(root)
    set_name = set_name or detect_set(root)
    if set_name not in SETS:
        raise UserError(f"--set {set_name}: choose one of {', '.join(SETS)}")
    if not root.is_dir():
        raise UserError(f"IJB folder not found: {root}")
    if not (root / "loose_crop").is_dir():
        raise UserError(f"{root}: no loose_crop/ folder (the face images of insightface's IJB_release)")
    face_path = meta_path(root, set_name, "face_tid_mid.txt")
    faces = read_face_list(face_path)
    marks_path = meta_path(root, set_name, "name_5pts_score.txt")
    marks = read_landmarks(marks_path)
    missing = ~faces.image.isin(marks.keys())
    if missing.any():
        first = int(np.flatnonzero(missing.to_numpy())[0])
        raise UserError(f"{marks_path}: no landmarks for {int(missing.sum())} image(s) of {face_path.name}, "
                        f"the first {faces.image.iloc[first]} (line {first + 1})")
    faces["score"] = [marks[name][1] for name in faces.image]
    templates = set(faces.template.tolist())
    pairs, labels = read_template_pairs(meta_path(root, set_name, "template_pair_label.txt"), templates)
    galleries, probes = {}, None
    probe_path = meta_path(root, set_name, "1N_probe_mixed.csv")
    for index in (1, 2):
        names = [f"{prefix}{index}" for prefix in ("G", "S")]
        path = next((meta_path(root, set_name, f"1N_gallery_{n}.csv") for n in names
                     if meta_path(root, set_name, f"1N_gallery_{n}.csv").is_file()), None)
        if path is not None:
            galleries[path.stem.rsplit("_", 1)[1]] = read_search_csv(path, templates)
    if galleries and probe_path.is_file():
        probes = read_search_csv(probe_path, templates)
    elif galleries or probe_path.is_file():
        have = probe_path.name if probe_path.is_file() else "gallery " + ", ".join(galleries)
        raise UserError(f"{root / 'meta'}: 1:N needs the galleries ({set_name}_1N_gallery_G1.csv, _G2.csv) and "
                        f"{probe_path.name}; found only {have}")
    readme = root / "README.txt"
    note = None
    if readme.is_file():
        first_line = readme.read_text(encoding="utf-8", errors="replace").strip().splitlines()[:1]
        note = first_line[0] if first_line and first_line[0].startswith(FIXTURE_MARK) else None
    return IJBProtocol(root, set_name, faces, {name: value[0] for name, value in marks.items()}, pairs, labels,
                       galleries, probes, note)


def face_items(protocol: IJBProtocol) -> tuple[list[FaceItem], np.ndarray]:
    """One FaceItem per distinct image (its landmarks in the key), and each face-list row's item."""
    index_of: dict[str, int] = {}
    items: list[FaceItem] = []
    for name in protocol.faces.image:
        if name not in index_of:
            points = protocol.landmarks[name]
            digest = hashlib.sha1(np.asarray(points).tobytes()).hexdigest()[:12]
            index_of[name] = len(items)
            items.append(FaceItem(f"{protocol.set_name}/{name}#{digest}", protocol.root / "loose_crop" / name,
                                  landmarks=points))
    return items, np.array([index_of[name] for name in protocol.faces.image], dtype=np.int64)


@dataclass
class IJBResult:
    summary: dict[str, Any]
    identification: pd.DataFrame  # one row per gallery (empty without 1:N files)
    scores: np.ndarray
    labels: np.ndarray
    config: dict[str, Any] = field(default_factory=dict)


def identification_table(ids: np.ndarray, matrix: np.ndarray, protocol: IJBProtocol) -> pd.DataFrame:
    """Rank-k and TPIR@FPIR of the probe file against each gallery, one row per gallery."""
    row_of = {template: row for row, template in enumerate(ids.tolist())}
    probe_features = matrix[[row_of[t] for t in protocol.probes.TEMPLATE_ID]]
    rows = []
    for name, gallery in protocol.galleries.items():
        similarity = probe_features @ matrix[[row_of[t] for t in gallery.TEMPLATE_ID]].T
        try:
            figures = identification_metrics(similarity, protocol.probes.SUBJECT_ID.to_numpy(),
                                             gallery.SUBJECT_ID.to_numpy(), RANKS, FPIRS)
        except ValueError as error:
            raise UserError(f"{protocol.root / 'meta'}: gallery {name}: {error}") from None
        rows.append({"gallery": name, **figures})
    return pd.DataFrame(rows)


def evaluate_ijb(embedder: Embedder, root: Path | IJBProtocol, set_name: str | None = None, flip: bool = False,
                 score_weighting: bool = False, pooling: str = "media", **embed_options) -> IJBResult:
    """Embed the set's faces (by their given landmarks), pool templates, score 1:1 pairs and 1:N searches.
    `root` is the folder, or its protocol already read by `load_protocol`."""
    if pooling not in ("media", "faces"):
        raise UserError(f"--pooling {pooling}: choose media or faces")
    protocol = root if isinstance(root, IJBProtocol) else load_protocol(root, set_name)
    items, face_item = face_items(protocol)
    embed_options.pop("aligner", None)
    embeddings = embed_items(embedder, items, flip=flip, **embed_options)
    faces = protocol.faces
    ids, matrix = pool_templates(embeddings.features[face_item], faces.template.to_numpy(), faces.media.to_numpy(),
                                 weights=faces.score.to_numpy() if score_weighting else None,
                                 normalise_faces=embedder.metric == "cosine", media_pooling=pooling == "media")
    row_of = {template: row for row, template in enumerate(ids.tolist())}
    first = matrix[[row_of[t] for t in protocol.pairs[:, 0]]]
    second = matrix[[row_of[t] for t in protocol.pairs[:, 1]]]
    scores = np.sum(first * second, axis=1)
    summary: dict[str, Any] = {"faces": len(faces), "images": len(items), "templates": len(ids),
                               **verification_metrics(scores, protocol.labels, IJBC_FARS),
                               "impostor_pairs": int((protocol.labels == 0).sum())}
    identification = pd.DataFrame()
    if protocol.probes is not None:
        identification = identification_table(ids, matrix, protocol)
        for column in [c for c in identification.columns if c.startswith(("rank-", "tpir@"))]:
            summary[f"1:N {column}"] = float(identification[column].mean())  # the field's mean over G1 and G2
    config = {"set": protocol.set_name, "root": str(protocol.root), "fixture": protocol.fixture_note,
              "embedder": embedder.name, "embedder_key": embedder.cache_key, "metric": embedder.metric,
              "flip": flip, "score_weighting": score_weighting, "pooling": pooling,
              "normalise_faces": embedder.metric == "cosine", "galleries": list(protocol.galleries)}
    return IJBResult(summary, identification, scores, protocol.labels, config)


def title(result: IJBResult) -> str:
    options = [o for o, on in (("flip", result.config["flip"]), ("score weighting", result.config["score_weighting"]),
                               ("faces pooled without media", result.config["pooling"] == "faces")) if on]
    fixture = " (FORMAT FIXTURE from LFW, not the real set)" if result.config["fixture"] else ""
    return (f"{result.config['set'].upper()}{fixture}: {result.config['embedder']}"
            + (f" + {', '.join(options)}" if options else ""))


def write_ijb_report(result: IJBResult, out_dir: Path) -> Path:
    """metrics.json/.md/.csv, identification.csv (per gallery), ROC and score histogram of the 1:1 pairs."""
    tables = {"identification": result.identification} if not result.identification.empty else {}
    return write_report(out_dir, title(result), result.summary, result.config, tables,
                        {"1:1 " + result.config["embedder"]: (result.scores, result.labels)})


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m protocols.ijbc", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser)
    parser.add_argument("--root", type=Path, required=True, help="IJB_release/IJBC or IJB_release/IJBB")
    parser.add_argument("--set", choices=SETS, default=None, help="file prefix (default: found from the meta files)")
    add_embedder_arguments(parser)
    parser.add_argument("--flip", action="store_true", help="each face's feature is f(x) + f(mirror x)")
    parser.add_argument("--score-weighting", action="store_true",
                        help="multiply each face's feature by its detector score before pooling")
    parser.add_argument("--pooling", choices=("media", "faces"), default="media",
                        help="media: faces averaged within media, then media (default); faces: faces averaged")
    add_embedding_arguments(parser)
    parser.add_argument("--out", type=Path, default=None, help="results folder (default: results/<set>/<embedder>)")
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    options = embedding_options(args)
    protocol = load_protocol(args.root, args.set)  # every file checked before the embedder is loaded
    embedder = embedder_from_arguments(args)
    result = evaluate_ijb(embedder, protocol, flip=args.flip, score_weighting=args.score_weighting,
                          pooling=args.pooling, **options)
    out = args.out or Path("results") / result.config["set"] / file_safe_name(args.embedder)
    write_ijb_report(result, out)
    print(f"{title(result)}: results in {out}\n")
    print(markdown_table(summary_frame({k: v for k, v in result.summary.items()
                                        if k.startswith(("auc", "100-eer", "tar@", "1:N"))})))
    if not result.identification.empty:
        print()
        print(markdown_table(result.identification))
    return 0


if __name__ == "__main__":
    run_main(main)
