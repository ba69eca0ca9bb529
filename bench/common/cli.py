"""Command-line plumbing shared by every `python -m` entry point.

User mistakes (a missing file, a malformed line, an unknown name) raise `UserError`; the entry point
prints its message and exits with code 2, never a traceback. Bugs still raise.
"""
from __future__ import annotations

import argparse
import errno
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

EXIT_USER_ERROR = 2

# a full disk, a quota, a read-only file system or a folder without write permission: the user's to fix
OUTPUT_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM)


class UserError(Exception):
    """A mistake the user can fix: the message says what is wrong, where, and what to do."""


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )


def run_main(main: Callable[[Sequence[str] | None], int | None], argv: Sequence[str] | None = None) -> None:
    """Run `main(argv)` as a program: UserError becomes a message on stderr and exit code 2."""
    try:
        code = main(argv)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except OSError as error:  # a full or read-only disk, or no permission, met outside the atomic writers
        if error.errno not in OUTPUT_ERRNOS:
            raise
        print(f"error: {error.filename or 'a file'}: {error.strerror}", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)
    sys.exit(code or 0)


def require_at_least(args: argparse.Namespace, **minimums: int) -> None:
    """Refuse numeric options below their minimum, naming the option: require_at_least(args, seed=0, iterations=1).
    Options left unset (None) pass."""
    for name, minimum in minimums.items():
        value = getattr(args, name)
        if value is not None and value < minimum:
            raise UserError(f"--{name.replace('_', '-')} must be at least {minimum}, not {value}")


def check_output_folder(folder: Path, option: str = "--out") -> None:
    """Before any work: `folder` must be a folder or creatable as one (no file in its place or above it)."""
    for candidate in (folder, *folder.parents):
        if candidate.exists():
            if not candidate.is_dir():
                raise UserError(f"{option} {folder}: {candidate} is a file, not a folder; choose another {option}")
            return


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """Options every command shares: the data root and verbosity."""
    parser.add_argument(
        "--data-root",
        default=None,
        help="directory of datasets and models (default: $FACEBENCH_DATA, else ~/.cache/facebench)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
