"""Writing a benchmark record: machine description, rows, JSON + Markdown, atomically."""
from __future__ import annotations

import os
import platform
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from bench.common.atomic import write_json, write_text

PERF_DIR = Path(os.environ.get("FACEBENCH_PERF_DIR", "results/perf"))  # --quick runs write elsewhere


def machine() -> dict[str, Any]:
    return {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "processor": platform.processor() or platform.machine(),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


def write_record(name: str, title: str, command: str, rows: list[dict[str, Any]], notes: str = "",
                 out_dir: Path = PERF_DIR) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    write_json(out_dir / f"{name}.json", {"title": title, "command": command, "machine": machine(), "rows": rows,
                                          "notes": notes})
    text = f"# {title}\n\n`{command}`\n\n{frame.to_markdown(index=False, floatfmt='.2f')}\n\n{notes}\n"
    write_text(out_dir / f"{name}.md", text)
    return frame
