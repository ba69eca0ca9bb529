"""A browsable, self-contained HTML page of what the results folder holds (issue 18, part 6).

    python -m bench.report [--results results] [--out results/report]

Writes `<out>/index.html`, one file: CSS inline, every image inlined as a data: URI, no script, nothing
fetched, so it opens from disk, a CI artefact or a mail attachment. A table of contents leads to:
- Leaderboard: `leaderboard/` (`python -m bench.leaderboard`), or how to make it when it is absent;
- The paper's tables: `tables/tables.md` (`python -m bench.tables`) and the paper's own numbers, `paper/`;
- Evaluations: every folder with a metrics.json (`protocols.report.write_report`), grouped by the folder
  above it: an overview of the groups' headline metrics, then per evaluation its command (or recorded
  configuration), summary metrics, other tables and figures (roc.png, scores.png);
- Identity separation and realism (`separation/`), the translator's samples and curves (`translator/`),
  speed records (`perf/*.md`, each with its command), and every other folder's records and figures.
Every figure has a caption and the command that made it when its record holds one (a "command" field of
a JSON record, or a command line of the Markdown record beside it); otherwise what its record does hold.
Paths are written as another machine reads them (`portable_path`); an absolute path outside the checkout
and the data root keeps only its last two parts. A corrupt record stops the report with a message naming it.

It is one file because the page is one document: each section's builder is a few lines over the same
helpers (captions, portable paths, inlined images); the HTML template and the browser check are apart.
"""
from __future__ import annotations

import argparse
import fnmatch
import json
import os
import re
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from bench import report_html as page
from bench.common.atomic import write_text
from bench.common.cli import UserError, add_common_arguments, check_output_folder, run_main, setup_logging
from bench.common.datasets import portable_path
from bench.report_browser import check_in_browser

ABSOLUTE_PATH = re.compile(r"(?<![\w./:~$-])(?:/[\w.@+-]+){2,}")
COMMAND_LINE = re.compile(r"^`((?:python|torchrun|make) [^`]+)`\s*$", re.MULTILINE)
IMAGES = (".png", ".jpg", ".jpeg", ".gif")
RECORDS = (".md", ".csv", ".json", *IMAGES)
TABLE_ROWS = 60  # longer CSVs are summarised (rows and columns), not printed
OVERVIEW = ["accuracy_percent", "accuracy_std_percent", "100-eer_percent", "auc", "tar@far=0.01", "tar@far=0.001",
            "1:N rank-1", "1:N tpir@fpir=0.1"]
# file pattern (relative to the results folder) -> caption, and the command that writes such figures
CAPTIONS = [
    ("*training.png", "Recognizer training curves of every run", "python -m bench.tables"),
    ("*tables/roc.png", "LFW ROC curves of every finished run", "python -m bench.tables"),
    ("*fig7.png", "The paper's Fig. 7 at CPU scale: accuracy (and the IJB-A-format fixture's TAR@FAR=0.01) against "
     "the real share, with and without GANFaces and with 3DMM renders, mean ± std over seeds", "python -m bench.tables"),
    ("demo/roc.png", "LFW ROC curves of every finished run", "python -m bench.tables"),
    ("*/roc.png", "ROC: true accept rate against false accept rate (log axis)", None),
    ("*/scores.png", "Genuine and impostor score distributions (dashed: the threshold, when there is one)", None),
    ("*separation.png", "Identity separation (the paper's Fig. 6): distances of same- and different-identity pairs",
     "python -m protocols.separation"),
    ("*realism.png", "Realism: Fréchet distance to LFW, high-frequency energy, colourfulness and mean colour per set",
     "python -m protocols.separation"),
    ("translator/*samples*", "Translator samples; rows: 3DMM render x, G(x), G'(G(x))", "python -m generators.train"),
    ("translator/*curves*", "Translator training curves: losses, k balances, BEGAN's convergence measure",
     "python -m generators.train"),
    ("pose/*.png", "Pose of the real photos' 3DMM fits against the sampler's distributions",
     "python -m generators.pose"),
    ("alignment/*", "Alignment contact sheet; rows: input photos, then each aligner's canonical crop",
     "python -m generators.align"),
    ("pairs/*", "Real photos beside the 3DMM renders fitted to them (the pairs of L_DP, eq. 6)",
     "python -m generators.pairs"),
    ("renders/*", "3DMM renders, identity by identity", "python -m generators.render"),
    ("ganfaces/*", "GANFaces: a row of 3DMM renders, then the same images through G, identity by identity",
     "python -m generators.synthesize"),
]


class Report:
    """The page under construction: headings (and their contents entries), HTML pieces, files already shown."""

    def __init__(self, results: Path, out: Path, data_root: str | None = None):
        self.results, self.out, self.data_root = results, out, data_root
        self.label = self.portable(str(results.resolve()))
        self.toc: list[tuple[int, str, str]] = []
        self.anchors: set[str] = set()
        self.body: list[str] = []
        self.shown: set[Path] = set()  # files on the page (the last section shows every other one)
        self.markdown_images: set[Path] = set()  # the images of the last Markdown record
        self.figures = 0

    # -- reading: every text that reaches the page passes through `portable`
    def portable(self, text: str) -> str:
        def shorten(match: re.Match) -> str:
            recorded = portable_path(match[0], self.data_root)
            if not os.path.isabs(recorded):
                return recorded
            return "…/" + "/".join(Path(recorded).parts[2:][-2:])

        return ABSOLUTE_PATH.sub(shorten, text)

    def read_text(self, path: Path) -> str:
        try:
            return self.portable(path.read_text(encoding="utf-8"))
        except UnicodeDecodeError as error:
            raise UserError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start}); "
                            "remake it or remove it") from None

    def read_json(self, path: Path) -> Any:
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            where = f"line {error.lineno} column {error.colno}" if isinstance(error, json.JSONDecodeError) else "bytes"
            raise UserError(f"{path}: corrupt JSON ({where}: {getattr(error, 'msg', error)}); "
                            "remake it or remove it, then run bench.report again") from None
        return self._portable_values(record)

    def _portable_values(self, value: Any) -> Any:
        if isinstance(value, dict):
            return {key: self._portable_values(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self._portable_values(item) for item in value]
        return self.portable(value) if isinstance(value, str) else value

    def read_csv(self, path: Path) -> pd.DataFrame:
        try:
            frame = pd.read_csv(path)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
            raise UserError(f"{path}: corrupt CSV ({str(error).strip() or type(error).__name__}); "
                            "remake it or remove it") from None
        return frame.map(lambda cell: self.portable(cell) if isinstance(cell, str) else cell)

    # -- writing
    def where(self, path: Path) -> str:
        relative = path.relative_to(self.results).as_posix()
        return self.label if relative == "." else f"{self.label}/{relative}"

    def heading(self, level: int, title: str, key: str, contents: bool = True) -> None:
        anchor = page.slug(key)
        while anchor in self.anchors:
            anchor += "-2"
        self.anchors.add(anchor)
        if contents:
            self.toc.append((level, anchor, title))
        self.body.append(page.heading_html(level, anchor, title))

    def add(self, *pieces: str) -> None:
        self.body.extend(piece for piece in pieces if piece)

    def figure(self, path: Path, caption: str | None = None, command: str | None = None,
               note: str | None = None) -> page.Figure:
        relative = path.relative_to(self.results).as_posix()
        known = next(((text, writer) for pattern, text, writer in CAPTIONS if fnmatch.fnmatch(relative, pattern)),
                     (None, None))
        if command is None and note is None:
            note = f"written by {known[1]}; its record holds no command" if known[1] else "its record holds no command"
        self.shown.add(path)
        self.figures += 1
        return page.Figure(path, self.where(path), caption or known[0] or path.stem.replace("-", " "), command, note)

    def markdown(self, path: Path, heading_offset: int = 2, command: str | None = None,
                 drop_title: bool = False) -> str:
        """A Markdown record with its images as figures (captioned by their alt text) and links made relative
        to the page's folder."""
        self.shown.add(path)
        self.markdown_images = set()
        text = self.read_text(path)
        command = command or next(iter(COMMAND_LINE.findall(text)), None)

        def figure_for(source: str, alt: str) -> page.Figure | None:
            image = (path.parent / source).resolve()
            if not image.is_file() or not image.is_relative_to(self.results.resolve()):
                return None
            image = self.results / image.relative_to(self.results.resolve())
            self.markdown_images.add(image)
            return self.figure(image, alt if len(alt.split()) > 2 else None, command)

        def link_for(target: str) -> str:
            return os.path.relpath(path.parent / target, self.out).replace(os.sep, "/")

        return page.markdown_html(text, figure_for, link_for, heading_offset, drop_title)

    def folder(self, folder: Path, heading_offset: int = 3, drop_title: bool = False) -> str:
        """Any folder of records: its Markdown, JSON records, CSV tables when no Markdown there has tables
        (else they are named only) and the figures no Markdown showed, each figure with the command of its
        record (same name, or the folder's only command) or where its configuration is."""
        files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in RECORDS)
        records = {p.stem: self.read_json(p) for p in files if p.suffix == ".json"}
        commands = {stem: r["command"] for stem, r in records.items() if isinstance(r, dict) and r.get("command")}
        for markdown in (p for p in files if p.suffix == ".md"):
            for line in COMMAND_LINE.findall(self.read_text(markdown))[:1]:
                commands.setdefault(markdown.stem, line)
        only = next(iter(commands.values())) if len(set(commands.values())) == 1 else None
        configs = [p.name for p in files if p.suffix == ".json" and p.stem.startswith("config")]
        pieces, by_markdown, tabled = [], set(), False
        for path in (p for p in files if p.suffix == ".md"):
            text = self.read_text(path)
            command = commands.get(path.stem)
            extra = page.command_html(command) if command and command not in text else ""
            pieces.append(extra + self.markdown(path, heading_offset, command or only, drop_title))
            by_markdown |= self.markdown_images
            tabled = tabled or "|---" in text.replace(":", "").replace(" ", "")
        csvs = [p for p in files if p.suffix == ".csv"]
        if tabled and csvs:
            self.shown.update(csvs)
            pieces.append(f"<p class='muted'>as CSV: {page.escape(', '.join(p.name for p in csvs))}</p>")
        else:
            pieces += [self.csv_details(path, open_small=True) for path in csvs]
        for stem, record in records.items():
            self.shown.add(folder / f"{stem}.json")
            pieces.append(page.details_html(f"{stem}.json", page.json_html(json.dumps(record, indent=2))))
        figures = []
        for path in (p for p in files if p.suffix.lower() in IMAGES and p not in by_markdown):
            command = commands.get(path.stem) or only
            note = f"configuration: {', '.join(configs)} (above)" if configs and not command else None
            figures.append(self.figure(path, command=command, note=note))
        return "".join(pieces) + page.figures_html(figures)

    def csv_details(self, path: Path, open_small: bool = False) -> str:
        self.shown.add(path)
        frame = self.read_csv(path)
        summary = f"{path.name}: {len(frame)} rows"
        if len(frame) > TABLE_ROWS:
            return page.details_html(summary, f"<p class='muted'>columns: {page.escape(', '.join(frame.columns))}; "
                                              f"the file: {page.escape(self.where(path))}</p>")
        if open_small and len(frame) <= 12:
            return f"<p class='muted'>{page.escape(self.where(path))}</p>" + page.table_html(frame)
        return page.details_html(summary, page.table_html(frame))


def leaderboard(report: Report) -> None:
    report.heading(2, "Leaderboard", "leaderboard")
    folder = report.results / "leaderboard"
    if (folder / "leaderboard.csv").is_file() or (folder / "leaderboard.md").is_file():
        report.add(report.folder(folder, heading_offset=2))
    else:
        report.add(f"<p class='note'>No leaderboard yet: {page.escape(report.where(folder))}/leaderboard.csv "
                   "is absent. <code>python -m bench.leaderboard</code> writes it from the evaluations; then run "
                   "<code>python -m bench.report</code> again.</p>")


def paper_tables(report: Report) -> None:
    report.heading(2, "The paper's tables, regenerated", "tables")
    tables = report.results / "tables"
    if tables.is_dir() and any(p.suffix in (".md", ".csv") for p in tables.iterdir()):
        report.add(report.folder(tables, heading_offset=2, drop_title=True))
    else:
        report.add(f"<p class='note'>No tables yet: <code>python -m bench.tables</code> writes "
                   f"{page.escape(report.where(tables))}/tables.md from the finished runs of bench.run.</p>")
    if (report.results / "paper").is_dir():
        report.heading(3, "The paper's reported numbers", "paper")
        report.add(report.folder(report.results / "paper", heading_offset=3, drop_title=True))


def evaluation_folders(results: Path, out: Path) -> list[Path]:
    return sorted(p.parent for p in results.rglob("metrics.json") if not p.resolve().is_relative_to(out.resolve()))


def headline(record: dict) -> dict:
    metrics = record.get("metrics")
    return metrics if isinstance(metrics, dict) else {}


def evaluation(report: Report, folder: Path, record: dict) -> None:
    title = str(record.get("title") or folder.name)
    config = record.get("config") if isinstance(record.get("config"), dict) else {}
    command = record.get("command") or config.get("command")
    report.heading(4, title, f"evaluation-{report.where(folder)}", contents=False)
    report.shown.add(folder / "metrics.json")
    pieces = [f"<p class='where'>{page.escape(report.where(folder))}</p>"]
    if command:
        pieces.append(page.command_html(command))
    if config:
        chips = " · ".join(f"{page.escape(k)} <code>{page.escape(v if isinstance(v, str) else json.dumps(v))}</code>"
                           for k, v in config.items() if k != "command")
        pieces.append(f"<p class='muted'>{'configuration' if command else 'configuration (no command recorded)'}: "
                      f"{chips}</p>")
    metrics = {k: v for k, v in headline(record).items() if v is None or isinstance(v, (int, float))}
    table = page.table_html(pd.DataFrame({"metric": list(metrics), "value": list(metrics.values())}, dtype=object))
    note = None if command else "configuration above"
    figures = [report.figure(p, command=command, note=note) for p in sorted(folder.iterdir())
               if p.suffix.lower() in IMAGES]
    report.add("".join(pieces), f"<div class='evaluation'><div>{table}</div>{page.figures_html(figures)}</div>")
    extras = [report.csv_details(p) for p in sorted(folder.glob("*.csv")) if p.name != "metrics.csv"]
    extras += [page.details_html(p.name, page.json_html(json.dumps(report.read_json(p), indent=2)))
               for p in sorted(folder.glob("*.json")) if p.name != "metrics.json"]
    report.shown.update([*folder.glob("*.json"), *folder.glob("metrics.*")])
    report.add(*extras)


def evaluations(report: Report) -> None:
    folders = evaluation_folders(report.results, report.out)
    report.heading(2, "Evaluations", "evaluations")
    if not folders:
        report.add("<p class='note'>No evaluation yet: every protocol (<code>python -m protocols.lfw</code>, "
                   "<code>protocols.ijbc</code>, ...) writes a folder with metrics.json here.</p>")
        return
    groups: dict[Path, list[Path]] = {}
    for folder in folders:
        top = report.results / folder.relative_to(report.results).parts[0]
        groups.setdefault(top, []).append(folder)
    for top, members in groups.items():
        report.heading(3, f"{report.where(top)} ({len(members)})", f"group-{report.where(top)}")
        records = {}
        for folder in members:
            record = report.read_json(folder / "metrics.json")
            if not isinstance(record, dict):
                raise UserError(f"{folder / 'metrics.json'}: expected a JSON object with title, config and metrics")
            records[folder] = record
        rows = []
        for folder, record in records.items():
            anchor = page.slug(f"evaluation-{report.where(folder)}")
            name = page.escape(record.get("title") or folder.name)
            metrics = headline(record)
            rows.append({"evaluation": f'<a href="#{anchor}">{name}</a>',
                         **{k: page.number(metrics[k]) for k in OVERVIEW if k in metrics}})
        overview = pd.DataFrame(rows).fillna("")
        report.add(f'<div class="scroll">{overview.to_html(index=False, border=0, escape=False)}</div>')
        for folder, record in records.items():
            evaluation(report, folder, record)
        for folder in sorted({p.parent for p in top.rglob("*") if p.is_file() and p.suffix.lower() in RECORDS}):
            if folder not in records and any(p not in report.shown for p in folder.iterdir() if p.is_file()):
                report.heading(4, report.where(folder), f"folder-{report.where(folder)}", contents=False)
                report.add(report.folder(folder, heading_offset=4))


def record_folders(report: Report, name: str, title: str, missing: str) -> None:
    """A section with one contents entry per folder of records under results/<name>."""
    top = report.results / name
    report.heading(2, title, name)
    if not top.is_dir():
        report.add(f"<p class='note'>{missing}</p>")
        return
    for folder in sorted({top, *(p.parent for p in top.rglob("*") if p.is_file())}):
        if any(p.is_file() and p.suffix.lower() in RECORDS for p in folder.iterdir()):
            report.heading(3, report.where(folder), f"folder-{report.where(folder)}")
            report.add(report.folder(folder))


def perf(report: Report) -> None:
    folder = report.results / "perf"
    report.heading(2, "Speed", "perf")
    if not folder.is_dir():
        report.add("<p class='note'>No speed records yet: <code>python -m bench.perf</code> writes them.</p>")
        return
    for path in sorted(folder.glob("*.md"), key=lambda p: (p.stem == "latest", p.stem)):
        text = report.read_text(path)
        title = next((line[2:] for line in text.splitlines() if line.startswith("# ")), path.stem)
        report.heading(3, f"{title} ({path.name})", f"perf-{path.stem}")
        twin = path.with_suffix(".json")
        record = report.read_json(twin) if twin.is_file() else {}
        command = record.get("command") if isinstance(record, dict) else None
        report.shown.add(twin)
        extra = page.command_html(command) if command and command not in text else ""
        report.add(extra, report.markdown(path, heading_offset=2, command=command, drop_title=True))
    leftovers = [p for p in sorted(folder.iterdir()) if p.suffix.lower() in IMAGES]
    report.add(page.figures_html([report.figure(p) for p in leftovers]))


def others(report: Report) -> None:
    done = {"leaderboard", "tables", "paper", "separation", "translator", "perf"}
    out = report.out.resolve()
    tops = [p for p in sorted(report.results.iterdir()) if p.is_dir() and p.name not in done]
    folders = sorted({f.parent for top in tops for f in top.rglob("*")
                      if f.is_file() and f.suffix.lower() in RECORDS and f not in report.shown
                      and not f.resolve().is_relative_to(out)})
    report.heading(2, "Other records", "others")
    if not folders:
        report.add("<p class='muted'>Nothing else.</p>")
    for folder in folders:
        report.heading(3, report.where(folder), f"folder-{report.where(folder)}")
        report.add(report.folder(folder))


def build_page(results: Path, out: Path, data_root: str | None = None) -> tuple[str, Report]:
    report = Report(results, out, data_root)
    leaderboard(report)
    paper_tables(report)
    evaluations(report)
    record_folders(report, "separation", "Identity separation and realism",
                   "No separation records yet: <code>python -m protocols.separation</code> writes them.")
    record_folders(report, "translator", "The translator: samples and training curves",
                   "No translator records yet: <code>python -m generators.train</code> writes samples and curves.")
    perf(report)
    others(report)
    made = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    command = f"python -m bench.report --results {report.label} --out {report.portable(str(out.resolve()))}"
    intro = (f"<p class='muted'>Everything under <code>{page.escape(report.label)}</code>, {made}: "
             f"{len(evaluation_folders(results, out))} evaluations, {report.figures} figures. One self-contained file "
             f"(images inlined, no script, nothing fetched); made by</p>{page.command_html(command)}")
    return page.page_html("GANFaces bench: results", intro, page.toc_html(report.toc), "\n".join(report.body)), report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.report", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser)
    parser.add_argument("--results", type=Path, default=Path("results"), help="the results folder (default: results)")
    parser.add_argument("--out", type=Path, default=None, help="where index.html goes (default: <results>/report)")
    parser.add_argument("--check", action="store_true",
                        help="then open the page in headless Chromium: every image must load and the console stay "
                             "silent; saves <out>/screenshot.png (the top of the page)")
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    if not args.results.is_dir():
        problem = "is a file, not a folder" if args.results.exists() else "not found"
        raise UserError(f"results folder {problem}: {args.results} (--results; the folder bench.tables, the "
                        "protocols and bench.perf write into)")
    out = args.out if args.out is not None else args.results / "report"
    check_output_folder(out)
    html, report = build_page(args.results, out, args.data_root)
    write_text(out / "index.html", html)
    print(f"{out / 'index.html'}: {len(html) / 1e6:.1f} MB, {report.figures} figures")
    if not args.check:
        return 0
    check = check_in_browser(out / "index.html", out / "screenshot.png")
    print(f"Chromium: {check.images - len(check.broken)} of {check.images} images loaded, "
          f"{len(check.console)} console messages; screenshot {out / 'screenshot.png'}")
    for problem in [*(f"image not loaded: {alt}" for alt in check.broken), *(f"console: {m}" for m in check.console)]:
        print(problem, file=sys.stderr)
    return 0 if check.ok else 1


if __name__ == "__main__":
    run_main(main)
