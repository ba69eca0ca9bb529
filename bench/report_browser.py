"""Open the report in headless Chromium: did every image load, did the console stay silent; and a screenshot.

`python -m bench.report --check` and the tests use it. Chromium is Debian's `chromium` (the Makefile installs
it when run as root); nothing here needs a Python package. Two runs of the browser: `--dump-dom` on a copy of
the page with a probe script that, on `load`, writes into the DOM how many <img> have naturalWidth 0 (the
page itself has no script), with `--enable-logging=stderr` so that every console message (errors included)
appears on stderr as a CONSOLE line; then `--screenshot` of the page itself.
"""
from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench.common.atomic import atomic_path
from bench.common.cli import UserError

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
WINDOW = (1280, 2400)
TIMEOUT_SECONDS = 180
PROBE = ("<script>addEventListener('load', function () { var images = document.images, broken = [];"
         " for (var i = 0; i < images.length; i++) { if (!images[i].complete || images[i].naturalWidth === 0)"
         " broken.push(images[i].alt || String(i)); }"
         " document.body.setAttribute('data-images', String(images.length));"
         " document.body.setAttribute('data-broken', JSON.stringify(broken)); });</script>")
CONSOLE_LINE = re.compile(r":CONSOLE[:(].*")
PROBE_RESULT = re.compile(r"<body[^>]*\bdata-images=\"(\d+)\"[^>]*\bdata-broken=\"([^\"]*)\"")


@dataclass
class BrowserCheck:
    images: int
    broken: list[str]  # alt texts of the images that did not load
    console: list[str]  # console messages (the page writes none)

    @property
    def ok(self) -> bool:
        return not self.broken and not self.console


def find_chromium() -> str | None:
    return next((found for name in BROWSERS if (found := shutil.which(name))), None)


def _run(browser: str, *arguments: str) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="report-chromium-") as profile:
        command = [browser, "--headless", "--disable-gpu", "--no-sandbox", "--hide-scrollbars", "--mute-audio",
                   "--no-first-run", f"--user-data-dir={profile}", *arguments]
        try:
            return subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_SECONDS,
                                  check=False)
        except subprocess.TimeoutExpired:
            raise UserError(f"{browser} did not finish within {TIMEOUT_SECONDS} s: {arguments[-1]}") from None


def check_in_browser(page: Path, screenshot: Path | None = None) -> BrowserCheck:
    """Load `page` (an HTML file) in headless Chromium; with `screenshot`, save a PNG of its top."""
    browser = find_chromium()
    if browser is None:
        raise UserError("--check needs Chromium: apt-get install chromium (Debian; `make venv` does it as root)")
    page = page.resolve()
    probe = page.with_name(f".probe-{page.name}")  # beside the page, so that relative links stay as they are
    try:
        probe.write_text(page.read_text(encoding="utf-8").replace("</body>", PROBE + "</body>", 1), encoding="utf-8")
        result = _run(browser, "--enable-logging=stderr", "--v=0", f"--window-size={WINDOW[0]},{WINDOW[1]}",
                      "--dump-dom", probe.as_uri())
    finally:
        probe.unlink(missing_ok=True)
    found = PROBE_RESULT.search(result.stdout)
    if found is None:
        raise UserError(f"{browser} did not report on {page} (exit code {result.returncode}): "
                        f"{result.stderr.strip()[-400:]}")
    console = [match[0].lstrip(":") for match in CONSOLE_LINE.finditer(result.stderr)]
    check = BrowserCheck(int(found[1]), json.loads(html.unescape(found[2])), console)
    if screenshot is not None:
        with atomic_path(screenshot) as temporary:
            shot = _run(browser, f"--window-size={WINDOW[0]},{WINDOW[1]}", f"--screenshot={temporary}", page.as_uri())
            if not temporary.is_file() or temporary.stat().st_size == 0:
                raise UserError(f"{browser} wrote no screenshot of {page}: {shot.stderr.strip()[-400:]}")
    return check
