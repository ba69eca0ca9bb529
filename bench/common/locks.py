"""One process per output folder: an exclusive lock held while a stage writes into it.

Two runs writing one folder corrupt each other (doubled metrics rows, a checkpoint that no longer
matches what synthesis recorded: issue 20). `exclusive_folder` takes an advisory `flock` on a lock
file *beside* the folder (`.NAME.lock`, so the folder's own files stay untouched and a finished run
stays byte-identical on resume) and refuses, with the holder named, when another process has it.
The kernel releases the lock when its holder exits or is killed, so a stale lock cannot outlive a
crash: the old text in the file is simply overwritten. (flock is local to one machine; on network
file systems that do not support it, runs on two machines are not kept apart.)
"""
from __future__ import annotations

import fcntl
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.common.cli import UserError


def lock_path(folder: Path) -> Path:
    folder = Path(folder).absolute()
    return folder.parent / f".{folder.name}.lock"


@contextmanager
def exclusive_folder(folder: Path, what: str = "this run") -> Iterator[None]:
    """Hold `folder`'s lock for the block; a UserError naming the holder if another process has it."""
    path = lock_path(folder)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a+", encoding="utf-8")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise UserError(f"{folder} is in use by {holder}: wait for it to finish, or choose another --out "
                        f"for {what}") from None
    try:
        handle.seek(0)
        handle.truncate()
        handle.write(f"process {os.getpid()} on {socket.gethostname()} since "
                     f"{time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        handle.flush()
        yield
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


def exclusive_folder_on_rank_zero(folder: Path, what: str = "this run"):
    """`exclusive_folder` in the first process of a torchrun job (or a lone process); the job's other
    ranks share rank 0's folder by design and take no lock."""
    from contextlib import nullcontext

    return exclusive_folder(folder, what) if int(os.environ.get("RANK", "0")) == 0 else nullcontext()
