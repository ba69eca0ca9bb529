"""Readers of LFW's layout (as torchvision's `LFWPairs`/`LFWPeople` expect it) that name file and line on bad input.

torchvision refuses an extracted copy without the original archive, and its parsers give no line
numbers, so the protocol files are read here. Layout under the data root:

    lfw-py/lfw-deepfunneled/<Name>/<Name>_NNNN.jpg
    lfw-py/pairs.txt  pairsDevTrain.txt  pairsDevTest.txt  people.txt  peopleDevTrain.txt  peopleDevTest.txt
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bench.common.cli import UserError
from bench.common.datasets import DataFile, Dataset, register_dataset, require
from bench.common.download import download, extract_tar

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


LFW_STAGES = ("evaluation", "recognizer training", "pairs")
LFW = register_dataset(Dataset(
    name="lfw",
    description="Labeled Faces in the Wild, deep-funneled, with the official protocol files",
    files=(DataFile(f"{LFW_DIR}/lfw-deepfunneled", LFW_STAGES, min_files=13233),)
    + tuple(DataFile(f"{LFW_DIR}/{name}", LFW_STAGES, md5) for name, md5 in LFW_PROTOCOL_FILES.items()),
    how_to_get=LFW_HOW_TO_GET,
    fetch=_fetch_lfw,
))


PAIRS_FILES = {"10fold": ("pairs.txt",), "view1": ("pairsDevTrain.txt", "pairsDevTest.txt")}


@dataclass(frozen=True)
class Pair:
    """Two LFW images (1-based image numbers as in the files) and the fold they belong to."""

    name1: str
    image1: int
    name2: str
    image2: int
    fold: int

    @property
    def same(self) -> bool:
        return self.name1 == self.name2


@dataclass(frozen=True)
class Person:
    name: str
    images: int
    fold: int


class LFWLayout:
    """Paths of one LFW copy under a data root."""

    def __init__(self, data_root: Path, images_folder: str = "lfw-deepfunneled"):
        self.data_root = Path(data_root)
        self.root = self.data_root / LFW_DIR
        self.images_dir = self.root / images_folder

    def image_path(self, name: str, image: int) -> Path:
        return self.images_dir / name / f"{name}_{image:04d}.jpg"

    def require(self, *files: str) -> None:
        """UserError naming every missing file (and the images folder) with how to obtain them."""
        rel = [str(Path(LFW_DIR) / self.images_dir.name)] + [str(Path(LFW_DIR) / f) for f in files]
        require(self.data_root, rel, "lfw")

    def pairs(self, filename: str, check_images: bool = True) -> list[Pair]:
        self.require(filename)
        return read_pairs(self.root / filename, self if check_images else None)

    def people(self, filename: str) -> list[Person]:
        self.require(filename)
        return read_people(self.root / filename)


def _lines(path: Path) -> list[tuple[int, list[str]]]:
    """(1-based line number, tab/space separated fields) for every non-blank line."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise UserError(f"{path}: not a UTF-8 text file ({error})") from None
    return [(number, line.split()) for number, line in enumerate(text.splitlines(), 1) if line.strip()]


def _positive_int(path: Path, number: int, value: str, what: str) -> int:
    try:
        parsed = int(value)
    except ValueError:
        parsed = 0
    if parsed <= 0:
        raise UserError(f"{path}:{number}: {what} must be a positive integer, found '{value}'")
    return parsed


def read_pairs(path: Path, layout: LFWLayout | None = None) -> list[Pair]:
    """Parse a pairs file: a header 'folds<TAB>n' (View 2) or 'n' (View 1), then per fold n matched
    lines 'name i j' followed by n mismatched lines 'name1 i name2 j'. With `layout`, every image
    must exist."""
    path = Path(path)
    lines = _lines(path)
    if not lines:
        raise UserError(f"{path}: empty file; expected a header line 'folds<TAB>pairs per fold' or 'pairs'")
    number, header = lines[0]
    if len(header) not in (1, 2):
        raise UserError(f"{path}:{number}: header must be 'folds<TAB>pairs per fold' or 'pairs', found {' '.join(header)!r}")
    values = [_positive_int(path, number, v, "header field") for v in header]
    folds, per_fold = (1, values[0]) if len(values) == 1 else values
    expected = folds * 2 * per_fold
    body = lines[1:]
    if len(body) != expected:
        raise UserError(
            f"{path}: header (line {number}) announces {folds} fold(s) x (2 x {per_fold}) = {expected} pairs, "
            f"but the file has {len(body)} pair lines"
        )
    pairs = []
    for position, (number, fields) in enumerate(body):
        fold, within = divmod(position, 2 * per_fold)
        matched = within < per_fold
        if matched:
            if len(fields) != 3:
                raise UserError(f"{path}:{number}: a matched pair needs 3 fields 'name image image', found {len(fields)}")
            name1 = name2 = fields[0]
            image1 = _positive_int(path, number, fields[1], "image number")
            image2 = _positive_int(path, number, fields[2], "image number")
        else:
            if len(fields) != 4:
                raise UserError(
                    f"{path}:{number}: a mismatched pair needs 4 fields 'name image name image', found {len(fields)}"
                )
            name1, name2 = fields[0], fields[2]
            image1 = _positive_int(path, number, fields[1], "image number")
            image2 = _positive_int(path, number, fields[3], "image number")
            if name1 == name2:
                raise UserError(f"{path}:{number}: mismatched pair names the same person twice ({name1})")
        if layout is not None:
            for name, image in ((name1, image1), (name2, image2)):
                if not layout.image_path(name, image).is_file():
                    raise UserError(f"{path}:{number}: unknown image {layout.image_path(name, image)}")
        pairs.append(Pair(name1, image1, name2, image2, fold))
    return pairs


def read_people(path: Path) -> list[Person]:
    """Parse a people file: either 'n' then n lines 'name count' (View 1), or 'folds' then per fold
    a count line followed by that many 'name count' lines (View 2)."""
    path = Path(path)
    lines = _lines(path)
    if not lines or len(lines[0][1]) != 1:
        where = f"{path}:{lines[0][0]}" if lines else str(path)
        raise UserError(f"{where}: header must be one integer (number of people, or of folds)")
    header = _positive_int(path, lines[0][0], lines[0][1][0], "header")
    folded = len(lines) > 1 and len(lines[1][1]) == 1
    groups: list[tuple[int, list[tuple[int, list[str]]]]] = []
    if folded:
        cursor = 1
        for fold in range(header):
            if cursor >= len(lines) or len(lines[cursor][1]) != 1:
                raise UserError(f"{path}: fold {fold + 1} of {header} has no count line")
            count = _positive_int(path, lines[cursor][0], lines[cursor][1][0], "fold size")
            groups.append((fold, lines[cursor + 1 : cursor + 1 + count]))
            cursor += 1 + count
        if cursor != len(lines):
            raise UserError(f"{path}:{lines[cursor][0] if cursor < len(lines) else lines[-1][0]}: "
                            f"fold sizes do not add up to the number of lines")
    else:
        if len(lines) - 1 != header:
            raise UserError(f"{path}: header announces {header} people, the file lists {len(lines) - 1}")
        groups.append((0, lines[1:]))
    people = []
    for fold, group in groups:
        for number, fields in group:
            if len(fields) != 2:
                raise UserError(f"{path}:{number}: expected 2 fields 'name count', found {len(fields)}")
            people.append(Person(fields[0], _positive_int(path, number, fields[1], "image count"), fold))
    return people
