"""What every training loop here shares: stopping cleanly on SIGINT/SIGTERM, logging to CSV and TensorBoard,
and writing the checkpoint atomically (so a kill never leaves half a checkpoint)."""
from __future__ import annotations

import csv
import logging
import signal
from pathlib import Path

from bench.common.atomic import atomic_path
from bench.common.serialization import save_torch

log = logging.getLogger(__name__)


class StopOnSignal:
    """Inside the block, SIGINT and SIGTERM set `requested` instead of killing: the loop saves and stops."""

    def __enter__(self) -> StopOnSignal:
        self.requested = False
        self.previous = {s: signal.signal(s, self._request) for s in (signal.SIGINT, signal.SIGTERM)}
        return self

    def _request(self, signum, frame) -> None:
        self.requested = True

    def __exit__(self, *exc) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


class MetricsLog:
    """Rows of logged values appended to `<out>/metrics.csv` and, when enabled, TensorBoard events."""

    def __init__(self, out: Path, enabled: bool = True, resume_from: int | None = None):
        """`resume_from`: the iteration of the checkpoint a resumed run continues from. Rows logged after it
        (between the last checkpoint and a kill) are dropped, since the run logs them again; TensorBoard
        purges its events after it likewise (`purge_step`)."""
        self.path, self.writer = Path(out) / "metrics.csv", None
        self.tensorboard = Path(out) / "tensorboard" if enabled else None  # opened at the first row, so that
        # a resumed run with nothing left to do adds no events file
        self.purge_step = None
        if enabled and resume_from is not None:
            self._drop_rows_after(resume_from)

    def _drop_rows_after(self, iteration: int) -> None:
        if not self.path.exists():
            return
        with open(self.path, newline="") as handle:
            reader = csv.DictReader(handle)
            header, rows = reader.fieldnames or [], list(reader)
        kept = [row for row in rows if int(float(row["iteration"])) <= iteration]
        if len(kept) == len(rows):
            return
        log.info("%s: %d row(s) after iteration %d (logged after the last checkpoint) dropped; the run logs them "
                 "again", self.path, len(rows) - len(kept), iteration)
        with atomic_path(self.path) as temporary, open(temporary, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=header, restval="")
            writer.writeheader()
            writer.writerows(kept)
        self.purge_step = iteration + 1

    def _open_tensorboard(self) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(self.tensorboard), purge_step=self.purge_step)
        except ImportError:  # tensorboard is a dependency; keep training if it is broken
            log.warning("tensorboard unavailable; logging to CSV only")
        self.tensorboard = None

    def write(self, iteration: int, values: dict) -> None:
        if self.tensorboard is not None:
            self._open_tensorboard()
        row = {"iteration": iteration, **values}
        header = self._header()
        if header and not set(row) <= set(header):  # a value logged for the first time: widen the file
            self._widen(header + [key for key in row if key not in header])
            header = self._header()
        with open(self.path, "a", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=header or list(row), restval="")
            if not header:
                writer.writeheader()
            writer.writerow(row)  # a value not logged on this row (e.g. sparse diagnostics) stays empty
        if self.writer is not None:
            for key, value in values.items():
                self.writer.add_scalar(key, value, iteration)

    def _header(self) -> list[str]:
        if not self.path.exists():
            return []
        with open(self.path, newline="") as handle:
            return next(csv.reader(handle), [])

    def _widen(self, header: list[str]) -> None:
        """Rewrite the file under a wider header (earlier rows get empty cells), atomically."""
        with open(self.path, newline="") as handle:
            rows = list(csv.DictReader(handle))
        with atomic_path(self.path) as temporary, open(temporary, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=header, restval="")
            writer.writeheader()
            writer.writerows(rows)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def save_checkpoint(payload: dict, path: Path) -> None:
    """Atomic and byte-reproducible (bench.common.serialization): a resumed run with nothing left to do
    rewrites the same bytes, so digests of finished runs hold."""
    save_torch(payload, path)
