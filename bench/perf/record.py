"""Writing a benchmark record: machine description, rows, JSON + Markdown, atomically."""
from __future__ import annotations

import os
import shlex
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from bench.common.atomic import write_json, write_text
from bench.common.datasets import portable_command
from bench.common.machine import machine

PERF_DIR = Path(os.environ.get("FACEBENCH_PERF_DIR", "results/perf"))  # --quick runs write elsewhere


def dated_machine() -> dict[str, Any]:
    """The machine (bench.common.machine) and when: a speed record is a measurement at one time."""
    return {**machine(), "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}


def write_record(name: str, title: str, command: str, rows: list[dict[str, Any]], notes: str = "",
                 out_dir: Path = PERF_DIR) -> pd.DataFrame:
    frame, host, command = pd.DataFrame(rows), dated_machine(), portable_command(shlex.split(command))
    write_json(out_dir / f"{name}.json", {"title": title, "command": command, "machine": host, "rows": rows,
                                          "notes": notes})
    cpu = f"CPU: {host.get('cpu_model') or host['processor']} ({host.get('cpu_vector_flags') or 'flags unknown'})."
    text = f"# {title}\n\n`{command}`\n\n{frame.to_markdown(index=False, floatfmt='.2f')}\n\n{notes}\n\n{cpu}\n"
    write_text(out_dir / f"{name}.md", text)
    return frame
