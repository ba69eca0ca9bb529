"""The ablation sheet: a column is one render and what every set made of it, rows in the order given."""
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from bench.common.cli import UserError
from protocols.side_by_side import SheetLayout, side_by_side


def write_set(folder, colour_of, identities=4, per_identity=3, skip=()):
    for identity in range(identities):
        for image in range(per_identity):
            relative = f"id_{identity:05d}/{image:03d}.jpg"
            if relative in skip:
                continue
            (folder / f"id_{identity:05d}").mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (108, 108), colour_of(identity, image)).save(folder / relative, quality=100)


def test_columns_are_the_same_files_in_every_row_and_tiles_show_them(tmp_path):
    write_set(tmp_path / "renders", lambda i, j: (40 * i, 0, 0))
    # the second set lacks identity 1's first image: its column must come from identity 1's next image
    write_set(tmp_path / "gan", lambda i, j: (0, 40 * i + 10 * j, 0), skip={"id_00001/000.jpg"})
    sheet, files = side_by_side({"renders": tmp_path / "renders", "gan": tmp_path / "gan"}, images=3)
    assert files == ["id_00000/000.jpg", "id_00001/001.jpg", "id_00002/000.jpg"]
    layout = SheetLayout(rows=2, columns=3)
    assert sheet.size == layout.size
    pixels = np.asarray(sheet)
    for column, (identity, image) in enumerate([(0, 0), (1, 1), (2, 0)]):
        left, top, right, bottom = layout.box(0, column)
        assert np.abs(pixels[(top + bottom) // 2, (left + right) // 2].astype(int) - (40 * identity, 0, 0)).max() <= 3
        left, top, right, bottom = layout.box(1, column)
        assert np.abs(pixels[(top + bottom) // 2, (left + right) // 2].astype(int)
                      - (0, 40 * identity + 10 * image, 0)).max() <= 3


def test_bad_rows_are_one_message_naming_the_option(tmp_path):
    write_set(tmp_path / "a", lambda i, j: (0, 0, 0))
    for rows, expected in ((["nonsense"], "expected NAME=FOLDER"),
                           ([f"a={tmp_path / 'a'}", f"b={tmp_path / 'missing'}"], "no such folder")):
        command = [sys.executable, "-m", "protocols.side_by_side", "--out", str(tmp_path / "sheet.png")]
        for row in rows:
            command += ["--row", row]
        result = subprocess.run(command, capture_output=True, text=True)
        assert result.returncode == 2 and expected in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("images", [1, 4])
def test_the_cli_writes_the_sheet(tmp_path, images):
    write_set(tmp_path / "a", lambda i, j: (200, 0, 0))
    out = tmp_path / "figures" / "sheet.png"
    result = subprocess.run([sys.executable, "-m", "protocols.side_by_side", "--row", f"a={tmp_path / 'a'}",
                             "--row", f"b={tmp_path / 'a'}", "--images", str(images), "--out", str(out)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert Image.open(out).size == SheetLayout(rows=2, columns=images).size


def test_difference_from_a_row_is_measured_over_every_shared_file(tmp_path):
    """Row 'same' repeats the reference's pixels (difference ~0, JPEG aside); row 'shifted' adds 30 grey levels to
    one channel, i.e. 10 grey levels averaged over the three channels; every shared file counts, not only shown ones."""
    from protocols.side_by_side import differences_from

    write_set(tmp_path / "ref", lambda i, j: (100 + 10 * i, 80, 60))
    write_set(tmp_path / "same", lambda i, j: (100 + 10 * i, 80, 60))
    write_set(tmp_path / "shifted", lambda i, j: (130 + 10 * i, 80, 60), skip={"id_00003/002.jpg"})
    rows = {"ref": tmp_path / "ref", "same": tmp_path / "same", "shifted": tmp_path / "shifted"}
    table = differences_from(rows, "ref").set_index("row")
    column = "mean |row - ref| (grey levels)"
    assert table.loc["ref", column] == 0 and table.loc["same", column] < 0.5
    assert table.loc["shifted", column] == pytest.approx(10, abs=0.5)
    assert table.files.tolist() == [12, 12, 11]
    with pytest.raises(UserError, match="--difference-from nobody"):
        differences_from(rows, "nobody")
