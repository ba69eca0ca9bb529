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


def cpu_description() -> dict[str, Any]:
    """The CPU model and its widest vector extensions, from /proc/cpuinfo (Linux): the same VM can
    move between hosts (AVX-512 with BF16, or AVX2 only), which changes timings, bf16 most."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {}
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    fields = {key.strip(): value.strip() for key, value in fields.items()}
    flags = set(fields.get("flags", "").split())
    wanted = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")
    return {"cpu_model": fields.get("model name", ""), "cpu_vector_flags": " ".join(f for f in wanted if f in flags)}


def machine() -> dict[str, Any]:
    return {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "processor": platform.processor() or platform.machine(),
        **cpu_description(),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


def write_record(name: str, title: str, command: str, rows: list[dict[str, Any]], notes: str = "",
                 out_dir: Path = PERF_DIR) -> pd.DataFrame:
    frame, host = pd.DataFrame(rows), machine()
    write_json(out_dir / f"{name}.json", {"title": title, "command": command, "machine": host, "rows": rows,
                                          "notes": notes})
    cpu = f"CPU: {host.get('cpu_model') or host['processor']} ({host.get('cpu_vector_flags') or 'flags unknown'})."
    text = f"# {title}\n\n`{command}`\n\n{frame.to_markdown(index=False, floatfmt='.2f')}\n\n{notes}\n\n{cpu}\n"
    write_text(out_dir / f"{name}.md", text)
    return frame
