"""torch.save, atomically and byte-reproducibly: identical state gives identical bytes (issue 20), so the
digest of a checkpoint names its content and a resumed run with nothing left to do leaves it unchanged.

Apart from bench.common.atomic because that module serves torch-free layers (protocols.report)."""
from __future__ import annotations

import copy
import io
import os
from typing import Any

import torch

from bench.common.atomic import write_bytes


def _canonical(value: Any, strings: dict[str, str]) -> Any:
    """A copy in which equal strings are one object and no container is shared (tensors stay as they are).

    Pickle writes an object it has seen before as a reference, so the bytes of equal state would depend on
    which equal strings happen to be one object (a literal "lr" of a new optimiser, or a string read back
    from a checkpoint on resume) and which containers are shared."""
    if type(value) is str:
        return strings.setdefault(value, value)
    if isinstance(value, dict):
        duplicate = copy.copy(value)  # of its type (OrderedDict, Counter, defaultdict), with its attributes
        duplicate.clear()
        for key, item in value.items():
            duplicate[_canonical(key, strings)] = _canonical(item, strings)
        if getattr(value, "__dict__", None):  # e.g. a state dict's _metadata
            duplicate.__dict__.update(_canonical(dict(value.__dict__), strings))
        return duplicate
    if type(value) in (list, tuple):
        return type(value)(_canonical(item, strings) for item in value)
    return value


def save_torch(obj: Any, target: str | os.PathLike) -> None:
    """`torch.save`, atomically and byte-reproducibly: identical state gives identical bytes.

    Saved to a file name, torch records that name (here the random temporary's) inside the zip; saved to
    a buffer it records the fixed name "archive", so the bytes depend on the content alone (and on the
    torch version)."""
    buffer = io.BytesIO()
    torch.save(_canonical(obj, {}), buffer)
    write_bytes(target, buffer.getvalue())
