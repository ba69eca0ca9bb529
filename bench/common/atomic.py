"""Atomic writes: write to a temporary file beside the target, then rename over it.

A reader (or a resumed job) therefore sees either the old file or the complete new one, never half.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.common.cli import OUTPUT_ERRNOS, UserError


def _umask() -> int:
    """The process's umask, read without changing it where Linux tells it (os.umask alone must set one)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


class OutputError(UserError):
    """An output that cannot be written, naming the file and the cause; nothing half-written is left."""

    def __init__(self, target: Path, error: OSError):
        cause = error.strerror or type(error).__name__
        super().__init__(f"cannot write {target}: {cause} (nothing was replaced; free space or choose another --out)")
        self.errno = error.errno


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path with the target's suffix; on success it replaces `target`."""
    target = Path(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".tmp-{target.stem}-", suffix=target.suffix)
    except OSError as error:
        raise OutputError(target, error) from None
    try:
        try:
            os.fchmod(handle, 0o666 & ~_umask())  # mkstemp's 0600 would hide outputs from other users
        finally:
            os.close(handle)
        try:
            yield Path(temporary)
        except OSError as error:
            if error.errno in OUTPUT_ERRNOS and error.filename in (None, temporary, str(temporary)):
                raise OutputError(target, error) from None  # name the file the user asked for, not the temporary
            raise
        try:
            os.replace(temporary, target)
        except OSError as error:
            raise OutputError(target, error) from None
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def save_figure(figure, target: str | os.PathLike, dpi: int = 110) -> None:
    """Lay out a matplotlib figure, write it as PNG atomically and free it (every plot of the project)."""
    import matplotlib.pyplot as plt

    figure.tight_layout()
    with atomic_path(target) as temporary:
        figure.savefig(temporary, dpi=dpi, format="png")
    plt.close(figure)


def write_text(target: str | os.PathLike, text: str) -> None:
    with atomic_path(target) as temporary:
        temporary.write_text(text, encoding="utf-8")


def write_bytes(target: str | os.PathLike, data: bytes) -> None:
    with atomic_path(target) as temporary:
        temporary.write_bytes(data)


def _strict_json(value: Any) -> Any:
    """NaN and infinity become null: JSON has no such numbers, and other tools reject them."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _strict_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict_json(item) for item in value]
    return value


def write_json(target: str | os.PathLike, data: Any) -> None:
    write_text(target, json.dumps(_strict_json(data), indent=2, sort_keys=True, allow_nan=False) + "\n")


def save_image_atomically(pixels, path: str | os.PathLike, image_format: str) -> None:
    """An 8-bit image array as PNG (fast compression: renders and crops are rewritten often) or JPEG q95."""
    from PIL import Image

    with atomic_path(path) as temporary:
        if image_format == "png":
            Image.fromarray(pixels).save(temporary, format="PNG", compress_level=1)
        else:
            Image.fromarray(pixels).save(temporary, format="JPEG", quality=95)
