"""Downloads and archive extraction that are checksummed, atomic and fail fast when offline.

A download streams into `<dest>.part` while hashing, checks the digest, then renames into place, so
a killed download never leaves a file that looks complete.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from tqdm import tqdm

from bench.common.cli import UserError

CHUNK = 1 << 20


def file_digest(path: Path, algorithm: str = "md5") -> str:
    """Hex digest of a file, read in chunks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def download(url: str, dest: Path, checksum: str | None, algorithm: str = "md5", timeout: float = 20.0,
             manual_hint: str = "") -> Path:
    """Download `url` to `dest` unless a file with the right checksum is already there.

    Raises UserError (never hangs longer than `timeout` per network operation) when the host cannot
    be reached or the checksum does not match; `manual_hint` tells the user how to get the file by hand.
    """
    dest = Path(dest)
    if dest.exists() and (checksum is None or file_digest(dest, algorithm) == checksum):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(dest.name + ".part")
    digest = hashlib.new(algorithm)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(partial, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=dest.name) as bar:
                for block in iter(lambda: response.read(CHUNK), b""):
                    out.write(block)
                    digest.update(block)
                    bar.update(len(block))
    except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as error:
        partial.unlink(missing_ok=True)
        reason = getattr(error, "reason", error)
        raise UserError(
            f"could not download {url}: {reason}. Are you offline? {manual_hint}".strip()
        ) from None
    if checksum is not None and digest.hexdigest() != checksum:
        partial.unlink(missing_ok=True)
        raise UserError(
            f"{url}: {algorithm} is {digest.hexdigest()}, expected {checksum}; the file was not kept. {manual_hint}".strip()
        )
    os.replace(partial, dest)
    return dest


def extract_tar(archive: Path, dest_dir: Path, member_root: str) -> Path:
    """Extract `archive` and move its top folder `member_root` into `dest_dir` atomically."""
    dest_dir = Path(dest_dir)
    target = dest_dir / member_root
    if target.exists():
        return target
    with tempfile.TemporaryDirectory(prefix=".tmp-extract-", dir=dest_dir) as scratch:
        with tarfile.open(archive) as tar:
            tar.extractall(scratch, filter="data")
        extracted = Path(scratch) / member_root
        if not extracted.is_dir():
            raise UserError(f"{archive}: expected a top folder '{member_root}' inside the archive")
        shutil.move(str(extracted), str(target))
    return target
