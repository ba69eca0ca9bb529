"""The leakage guard: training identities must not be evaluation identities.

A recognizer evaluated on people it was trained on measures memory, not recognition. `check_identity_leakage`
compares the names of every training set (the real set's people, the synthetic set's identities) with the
people of the LFW protocol the run is evaluated on (View 1's test people, or all of View 2) and with any other
evaluation that has names (the IJB-A-format fixture built from LFW, `fixture_evaluations`), and refuses the run
with one message naming the overlaps unless the user allows it. Names are compared with case, spaces and
hyphens ignored, so it cannot see an identity of an external set filed under another name or a number.
"""
from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from bench.common.cli import UserError
from bench.common.datasets import data_root

log = logging.getLogger(__name__)

LFW_EVALUATION_FILES = {"view1": ("pairsDevTest.txt", "peopleDevTest.txt"), "10fold": ("pairs.txt", "people.txt")}


def normalised_name(name: str) -> str:
    return re.sub(r"[\s\-]+", "_", name.strip()).casefold()


def lfw_evaluation_names(split: str, root: Path | None = None) -> set[str]:
    """Normalised names of the people in the LFW protocol `split`: View 1's test people, or all of View 2."""
    from protocols.lfw_files import LFWLayout

    layout = LFWLayout(data_root(root))
    names: set[str] = set()
    for filename in LFW_EVALUATION_FILES[split]:
        if filename.startswith("pairs"):
            names.update(n for pair in layout.pairs(filename, check_images=False) for n in (pair.name1, pair.name2))
        else:
            names.update(person.name for person in layout.people(filename))
    return {normalised_name(n) for n in names}


def fixture_evaluations(ijba: str | Path | None) -> dict[str, list[str]]:
    """The identity names of an IJB-A-format fixture built from LFW (`protocols.ijba_fixture`), by what to call
    it in the guard's message; {} without a folder or for real IJB-A (numbered subjects, no names to compare)."""
    if ijba is None or not Path(ijba).is_dir():
        return {}
    from protocols.ijba_fixture import FIXTURE_LABEL, fixture_identity_names

    names = fixture_identity_names(Path(ijba))
    return {} if names is None else {f"the {FIXTURE_LABEL} ({Path(ijba).name})": names}


def check_identity_leakage(training_sets: Mapping[str, Iterable[str]], split: str, root: Path | None = None,
                           allow: bool = False, other_evaluations: Mapping[str, Iterable[str]] | None = None
                           ) -> dict[str, list[str]]:
    """Training identities (per set) that appear in the LFW evaluation `split` or in any of `other_evaluations`
    (what -> identity names, e.g. `fixture_evaluations`' IJB-A-format fixture); a UserError unless `allow`."""
    files = " and ".join(LFW_EVALUATION_FILES[split])
    evaluations = {f"LFW's {split} evaluation ({files})": lfw_evaluation_names(split, root)}
    evaluations.update({what: {normalised_name(n) for n in names} for what, names in (other_evaluations or {}).items()})
    training_sets = {what: list(names) for what, names in training_sets.items()}
    found = {}  # (evaluation, set) -> names
    for evaluation, evaluated in evaluations.items():
        for what, names in training_sets.items():
            hits = sorted({n for n in names if normalised_name(n) in evaluated})
            if hits:
                found[evaluation, what] = hits
    if not found:
        return {}
    overlaps: dict[str, list[str]] = {}
    for (_, what), names in found.items():
        overlaps[what] = sorted(set(overlaps.get(what, [])) | set(names))
    listed = " ".join(f"In {evaluation}: " + "; ".join(
        f"{what}: {len(names)} ({', '.join(names[:8])}{', ...' if len(names) > 8 else ''})"
        for (seen, what), names in found.items() if seen == evaluation) + "."
        for evaluation in evaluations if any(seen == evaluation for seen, _ in found))
    if not allow:
        hint = ("a set drawn from LFW's View 1 training people (lfw:peopleDevTrain) is evaluated on View 1: "
                "--lfw-split view1" if split == "10fold" and any(e.startswith("LFW") for e, _ in found)
                else "leave those people out of the training set (or build the fixture from other people)")
        raise UserError(f"identity leakage: training identities appear in the evaluation - {listed} "
                        f"Train on identities outside the evaluation ({hint}), or pass --allow-identity-overlap to "
                        "train anyway (its numbers are then not a fair evaluation)")
    log.warning("identity overlap with the evaluation allowed by --allow-identity-overlap: %s", listed)
    return overlaps
