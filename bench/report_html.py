"""The HTML of `bench.report`: one page, CSS inline, images as data URIs, no script, nothing fetched.

Pieces (figures, tables, commands, Markdown records) come in as values and leave as HTML strings; which
files go where is `bench.report`'s business. Markdown is converted by the `markdown` package (already in
the environment through tensorboard) with its `tables` and `fenced_code` extensions; a line holding only
images becomes a row of captioned figures.
"""
from __future__ import annotations

import base64
import html
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import markdown as markdown_package
import pandas as pd
from PIL import Image, UnidentifiedImageError

from bench.common.cli import UserError

IMAGE_TYPES = {"PNG": "image/png", "JPEG": "image/jpeg", "GIF": "image/gif"}
WIDE = 2.0  # figures this many times wider than tall (or wider than a column can show) take a whole row
COMMAND_PARAGRAPH = re.compile(r"<p><code>((?:python|torchrun|make) [^<]*)</code></p>")
IMAGE_REFERENCE = re.compile(r"!\[([^\]]*)\]\(([^)\s]+)\)")
FIGURE_TOKEN = "REPORTFIGUREROW{}END"

CSS = """
:root { --ink: #1f2328; --muted: #59636e; --line: #d1d9e0; --soft: #f6f8fa; --accent: #0969da; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.55 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
       color: var(--ink); background: #fff; }
main { max-width: 1180px; margin: 0 auto; padding: 24px 32px 64px; }
header { border-bottom: 3px solid var(--accent); margin-bottom: 20px; }
h1 { font-size: 28px; margin: 8px 0 4px; }
h2 { font-size: 22px; margin: 44px 0 10px; padding-bottom: 4px; border-bottom: 1px solid var(--line); }
h3 { font-size: 18px; margin: 30px 0 8px; }
h4, h5, h6 { font-size: 15px; margin: 20px 0 6px; }
p { margin: 8px 0; }
a { color: var(--accent); text-decoration: none; }
a:hover { text-decoration: underline; }
.muted, .where { color: var(--muted); font-size: 13px; }
code { font: 13px/1.4 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; background: var(--soft);
       padding: 1px 4px; border-radius: 4px; }
pre { background: var(--soft); border: 1px solid var(--line); border-radius: 6px; padding: 8px 12px;
      overflow-x: auto; margin: 8px 0; }
pre code { background: none; padding: 0; white-space: pre-wrap; word-break: break-word; }
pre.command { border-left: 4px solid var(--accent); }
nav.toc { background: var(--soft); border: 1px solid var(--line); border-radius: 8px; padding: 10px 20px;
          columns: 2; column-gap: 32px; }
nav.toc ul { margin: 0; padding-left: 18px; }
nav.toc > ul { padding-left: 0; list-style: none; }
nav.toc li { break-inside: avoid; }
nav.toc > ul > li { margin: 6px 0; font-weight: 600; }
nav.toc > ul > li li { font-weight: normal; font-size: 13.5px; }
.scroll { overflow-x: auto; margin: 8px 0; }
table { border-collapse: collapse; font-size: 13.5px; font-variant-numeric: tabular-nums; }
th, td { border-bottom: 1px solid var(--line); padding: 4px 10px; text-align: left; vertical-align: top; }
th { background: var(--soft); font-weight: 600; border-bottom: 2px solid var(--line); }
tbody tr:hover { background: #f0f6ff; }
.figures { display: grid; grid-template-columns: repeat(auto-fill, minmax(440px, 1fr)); gap: 18px; margin: 12px 0; }
figure { margin: 0; border: 1px solid var(--line); border-radius: 8px; padding: 10px; background: #fff; }
figure img { display: block; max-width: 100%; height: auto; margin: 0 auto; }
figure.wide { grid-column: 1 / -1; justify-self: start; max-width: 100%; }
.figures:has(> figure:only-child) { grid-template-columns: minmax(0, max-content); }
figcaption { font-size: 13px; color: var(--muted); margin-top: 6px; }
figcaption pre { margin: 4px 0 0; }
.evaluation { display: grid; grid-template-columns: max-content minmax(0, 1fr); gap: 18px; align-items: start; }
.evaluation .figures { grid-template-columns: repeat(auto-fill, minmax(340px, 1fr)); margin-top: 0; }
details { margin: 8px 0; }
summary { cursor: pointer; color: var(--accent); font-size: 14px; }
.note { background: #fff8c5; border: 1px solid #eed888; border-radius: 6px; padding: 8px 12px; }
.missing { color: #b35900; }
"""


@dataclass
class Figure:
    """An image of the results with what the page says about it."""
    path: Path  # the file, inlined
    where: str  # where it lies, as the page names it (results/lfw/lbp-10fold/roc.png)
    caption: str
    command: str | None = None  # the command that made it, when its record holds one
    note: str | None = None  # otherwise, e.g. where its configuration is shown


def escape(text: object) -> str:
    return html.escape(str(text), quote=True)


def slug(text: str) -> str:
    """An HTML id from a name: lower case, runs of other characters as one hyphen."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "section"


def image_header(path: Path) -> tuple[str, int, int]:
    """MIME type, width and height from the image's header; a file that is no PNG, JPEG or GIF is a user error."""
    try:
        with Image.open(path) as image:
            if image.format in IMAGE_TYPES:
                return IMAGE_TYPES[image.format], *image.size
    except (UnidentifiedImageError, OSError, SyntaxError):
        pass
    raise UserError(f"{path}: not a readable PNG, JPEG or GIF image (corrupt or truncated); remake it or remove it")


def data_uri(path: Path) -> str:
    """The image's bytes as a data: URI."""
    kind, _, _ = image_header(path)
    return f"data:{kind};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"


def command_html(command: str) -> str:
    return f'<pre class="command"><code>{escape(command)}</code></pre>'


def figure_html(figure: Figure) -> str:
    parts = [escape(figure.caption), f'<span class="where">{escape(figure.where)}</span>']
    if figure.command:
        parts.append(command_html(figure.command))
    elif figure.note:
        parts.append(f'<span class="where">{escape(figure.note)}</span>')
    _, width, height = image_header(figure.path)
    wide = ' class="wide"' if width >= WIDE * height or width > 1100 else ""
    return (f'<figure{wide}><img src="{data_uri(figure.path)}" alt="{escape(figure.caption)}" width="{width}" '
            f'height="{height}">'
            f'<figcaption>{"<br>".join(parts)}</figcaption></figure>')


def figures_html(figures: Sequence[Figure]) -> str:
    return f'<div class="figures">{"".join(figure_html(f) for f in figures)}</div>' if figures else ""


def number(value: object) -> str:
    """Table cells: floats to four decimals (protocols.report's convention), missing as n/a."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def table_html(frame: pd.DataFrame) -> str:
    shown = frame.astype(object).map(number)
    return f'<div class="scroll">{shown.to_html(index=False, border=0, escape=True)}</div>'


def details_html(summary: str, body: str) -> str:
    return f"<details><summary>{escape(summary)}</summary>{body}</details>"


def json_html(text: str) -> str:
    return f"<pre><code>{escape(text)}</code></pre>"


def markdown_html(text: str, figure_for: Callable[[str, str], Figure | None], link_for: Callable[[str], str],
                  heading_offset: int = 2, drop_title: bool = False) -> str:
    """A Markdown record as HTML: headings moved down `heading_offset` levels (the page owns h1-h2) and the
    first one dropped with `drop_title` (the page's heading says it), a line of images as a row of figures
    (`figure_for(src, alt)`, None for a missing file), a paragraph holding only a command as a command block,
    relative links through `link_for`."""
    rows: list[str] = []
    if drop_title:
        text = re.sub(r"\A\s*# [^\n]*\n", "", text)

    def figure_row(line: str) -> str:
        found = [(alt, src) for alt, src in IMAGE_REFERENCE.findall(line)]
        figures = [(figure_for(src, alt), src) for alt, src in found]
        missing = "".join(f'<p class="missing">missing figure: {escape(src)}</p>' for f, src in figures if f is None)
        rows.append(figures_html([f for f, _ in figures if f is not None]) + missing)
        return FIGURE_TOKEN.format(len(rows) - 1)

    lines = [figure_row(line) if IMAGE_REFERENCE.search(line) and not IMAGE_REFERENCE.sub("", line).strip() else line
             for line in text.splitlines()]
    converted = markdown_package.markdown("\n".join(lines), extensions=["tables", "fenced_code"], output_format="html")
    converted = re.sub(r"<(/?)h([1-6])\b", lambda m: f"<{m[1]}h{min(6, int(m[2]) + heading_offset)}", converted)
    for index, row in enumerate(rows):
        token = FIGURE_TOKEN.format(index)
        converted = converted.replace(f"<p>{token}</p>", row).replace(token, row)

    def inline_image(match: re.Match) -> str:  # an image inside a sentence: inlined without a caption box
        figure = figure_for(html.unescape(match[2]), html.unescape(match[1]))
        if figure is None:
            return f'<span class="missing">missing figure: {match[2]}</span>'
        return f'<img alt="{match[1]}" src="{data_uri(figure.path)}">'

    converted = re.sub(r'<img alt="([^"]*)" src="(?!data:)([^"]*)"\s*/?>', inline_image, converted)
    converted = re.sub(r'href="(?![a-z]+:|#)([^"]*)"', lambda m: f'href="{escape(link_for(html.unescape(m[1])))}"',
                       converted)
    converted = COMMAND_PARAGRAPH.sub(r'<pre class="command"><code>\1</code></pre>', converted)
    converted = converted.replace("<table>", '<div class="scroll"><table>').replace("</table>", "</table></div>")
    return re.sub(r"<(/?script)", r"&lt;\1", converted, flags=re.IGNORECASE)  # raw HTML passes Markdown: no script


def toc_html(entries: Sequence[tuple[int, str, str]]) -> str:
    """Nested list of (level 2 or 3, anchor, title)."""
    items, open_sub = [], False
    for level, anchor, title in entries:
        link = f'<a href="#{anchor}">{escape(title)}</a>'
        if level == 2:
            if open_sub:
                items.append("</ul>")
                open_sub = False
            if items:
                items.append("</li>")
            items.append(f"<li>{link}")
        else:
            if not open_sub:
                items.append("<ul>")
                open_sub = True
            items.append(f"<li>{link}</li>")
    items += ["</ul>"] if open_sub else []
    items += ["</li>"] if items else []
    return f'<nav class="toc"><ul>{"".join(items)}</ul></nav>'


def heading_html(level: int, anchor: str, title: str) -> str:
    return f'<h{level} id="{escape(anchor)}">{escape(title)}</h{level}>'


def page_html(title: str, intro: str, toc: str, body: str) -> str:
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n<title>{escape(title)}</title>\n'
            f"<style>{CSS}</style>\n</head>\n<body>\n<main>\n<header><h1>{escape(title)}</h1>{intro}</header>\n"
            f'<h2 id="contents">Contents</h2>\n{toc}\n{body}\n</main>\n</body>\n</html>\n')
