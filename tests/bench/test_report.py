"""bench.report: one self-contained page of a results folder, that Chromium loads without a broken image or a
console message; bad input is one message naming the file."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from bench import report
from bench.common.cli import UserError
from bench.report_browser import check_in_browser, find_chromium

needs_chromium = pytest.mark.skipif(find_chromium() is None,
                                    reason="needs Chromium (apt-get install chromium; `make venv` installs it as root)")
COMMAND = "python -m protocols.lfw --embedder lbp --split view1"


def small_results(root: Path) -> Path:
    """A results folder as the protocols and bench.perf leave it: one evaluation (metrics.json with a command
    and an absolute path in its configuration, a folds table, a ROC made here), a perf record, a separation
    record whose Markdown shows its figure."""
    results = root / "results"
    evaluation = results / "lfw" / "lbp-view1"
    evaluation.mkdir(parents=True)
    (evaluation / "metrics.json").write_text(json.dumps({
        "title": "LFW view1: lbp", "command": COMMAND,
        "config": {"embedder": "lbp", "split": "view1", "root": str(root / "somewhere" / "lfw")},
        "metrics": {"accuracy_percent": 67.3, "auc": 0.7237, "tar@far=0.0001": None, "pairs": 1000}}))
    (evaluation / "folds.csv").write_text("fold,threshold,accuracy_percent\n1,0.6,67.3\n")
    Image.new("RGB", (220, 180), (40, 90, 200)).save(evaluation / "roc.png")
    perf = results / "perf"
    perf.mkdir()
    (perf / "render.json").write_text(json.dumps({"title": "Rendering", "command": "python -m bench.perf.render"}))
    (perf / "render.md").write_text("# Rendering\n\n| stage | images_per_s |\n|:--|--:|\n| render | 414.6 |\n")
    separation = results / "separation"
    separation.mkdir()
    Image.new("RGB", (300, 100), (200, 60, 40)).save(separation / "separation.png")
    (separation / "separation.md").write_text("| dataset | d_prime |\n|:--|--:|\n| lfw | 4.62 |\n\n"
                                              "![Fig. 6 here](separation.png)\n\n<script>alert(1)</script>\n")
    return results


def visible_text(page: str) -> str:
    return re.sub(r"data:image/[a-z]+;base64,[A-Za-z0-9+/=]+", "DATA", page)


def test_the_page_holds_every_record_inlined_and_portable(tmp_path):
    results = small_results(tmp_path)
    assert report.main(["--results", str(results)]) == 0
    page = (results / "report" / "index.html").read_text()
    text = visible_text(page)
    assert "LFW view1: lbp" in text and COMMAND in text and "python -m bench.perf.render" in text
    assert "Fig. 6 here" in text and "414.6" in text and "67.3000" in text
    assert "No leaderboard yet" in text and "python -m bench.leaderboard" in text
    assert len(re.findall(r'<img [^>]*src="data:image/png;base64,', page)) == 2  # roc.png and separation.png
    assert not re.search(r'<img [^>]*src="(?!data:)', page) and "<script" not in page and "http" not in text
    assert str(tmp_path) not in text and "…/somewhere/lfw" in text  # no folder of this machine
    anchors = set(re.findall(r'id="([^"]+)"', page))
    assert set(re.findall(r'href="#([^"]+)"', page)) <= anchors  # every contents entry leads somewhere


def test_a_leaderboard_is_shown_when_there_is_one(tmp_path):
    results = small_results(tmp_path)
    (results / "leaderboard").mkdir()
    (results / "leaderboard" / "leaderboard.csv").write_text("embedder,lfw_accuracy\nsface,99.45\nlbp,68.37\n")
    report.main(["--results", str(results), "--out", str(tmp_path / "page")])
    text = visible_text((tmp_path / "page" / "index.html").read_text())
    assert "sface" in text and "99.4500" in text and "No leaderboard yet" not in text


@pytest.mark.parametrize("damage, message", [
    (lambda results: (results / "lfw" / "lbp-view1" / "metrics.json").write_text('{"title": "LFW'),
     "lbp-view1/metrics.json: corrupt JSON (line 1 column 11"),
    (lambda results: (results / "separation" / "separation.png").write_bytes(b"\x89PNG\r\n\x1a\ntruncated"),
     "separation/separation.png: not a readable PNG, JPEG or GIF image"),
    (lambda results: (results / "lfw" / "lbp-view1" / "folds.csv").write_bytes(b'a,b\n"1,2\n'),
     "lbp-view1/folds.csv: corrupt CSV"),
])
def test_a_corrupt_record_is_named(tmp_path, damage, message):
    results = small_results(tmp_path)
    damage(results)
    with pytest.raises(UserError, match=re.escape(message)):
        report.main(["--results", str(results)])
    assert not (results / "report" / "index.html").exists()


def test_bad_input_on_the_command_line_is_one_message_and_exit_2(tmp_path):
    missing = tmp_path / "no-results"
    result = subprocess.run([sys.executable, "-m", "bench.report", "--results", str(missing)],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip() == (f"error: results folder not found: {missing} (--results; the folder "
                                     "bench.tables, the protocols and bench.perf write into)")
    results = small_results(tmp_path)
    (results / "lfw" / "lbp-view1" / "metrics.json").write_text("{not json")
    result = subprocess.run([sys.executable, "-m", "bench.report", "--results", str(results)],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.startswith(f"error: {results / 'lfw' / 'lbp-view1' / 'metrics.json'}: corrupt JSON")


@needs_chromium
def test_chromium_loads_every_image_without_a_console_message(tmp_path):
    """The page as a browser sees it; the screenshot lands beside it (results/report/screenshot.png)."""
    results = small_results(tmp_path)
    assert report.main(["--results", str(results), "--check"]) == 0
    check = check_in_browser(results / "report" / "index.html")
    assert check.ok and check.images == 2
    screenshot = results / "report" / "screenshot.png"
    with Image.open(screenshot) as image:
        assert image.size == (1280, 2400)


@needs_chromium
def test_the_browser_check_sees_a_broken_image_and_a_console_error(tmp_path):
    """The check itself is not vacuous: a page with an undecodable image and a failing script fails it."""
    page = tmp_path / "broken.html"
    page.write_text('<!DOCTYPE html><html><body><img alt="bad" src="data:image/png;base64,AAAA">'
                    "<script>console.error('boom'); undefinedFunction();</script></body></html>")
    check = check_in_browser(page)
    assert check.images == 1 and check.broken == ["bad"] and not check.ok
    assert any("boom" in line for line in check.console) and any("undefinedFunction" in line for line in check.console)
