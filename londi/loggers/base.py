"""Where run metrics go. The training loop talks only to a `RunLogger`; CSV is always on, others fan out."""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class RunLogger(Protocol):
    """Sink for step-wise metrics (x-axis = env steps) and one row per finished episode."""

    def log_metrics(self, step: int, metrics: Mapping[str, float]) -> None: ...

    def log_episode(self, row: Mapping[str, Any]) -> None: ...

    def on_resume(self, episodes_csv: Path) -> None:
        """The run resumed from a checkpoint; `episodes_csv` holds every episode row logged before it (cut to
        the checkpoint). Why: a logger that keeps rows in memory (the W&B episodes table) must start from
        them, or its table silently holds only the episodes since the resume."""
        ...

    def close(self, failed: bool = False) -> None: ...


def parse_cell(value: str) -> Any:
    """A CSV cell back as the value it was logged as: int, float, None for an empty cell, else the text."""
    if value == "":
        return None
    if "_" in value:  # int("1_0") parses; a logged text never turns into a number
        return value
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value


def read_rows(path: Path) -> list[dict[str, Any]]:
    """The rows of a CSV written by `CSVLogger`, values parsed by `parse_cell` ([] when there is no file)."""
    if not path.exists():
        return []
    with path.open(newline="") as f:
        return [{k: parse_cell(v) for k, v in row.items()} for row in csv.DictReader(f)]


class CSVLogger:
    """Writes `metrics.csv` (one row per log call) and `episodes.csv`.

    Columns are fixed by the first row written; later unseen keys are an error, so a file never silently
    loses a metric. Files are appended to, so a resumed run continues the same files.
    """

    def __init__(self, run_dir: str | Path, metrics_file: str = "metrics.csv", episodes_file: str = "episodes.csv"):
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.metrics_path = self.run_dir / metrics_file
        self.episodes_path = self.run_dir / episodes_file
        self._writers: dict[Path, tuple[Any, csv.DictWriter]] = {}

    def _write(self, path: Path, row: Mapping[str, Any]) -> None:
        if path not in self._writers:
            fieldnames: Sequence[str] | None = None
            if path.exists() and path.stat().st_size > 0:
                with path.open(newline="") as f:
                    fieldnames = next(csv.reader(f), None)
            new_file = fieldnames is None
            if fieldnames is None:
                fieldnames = list(row.keys())
            fh = path.open("a", newline="")
            writer = csv.DictWriter(fh, fieldnames=list(fieldnames), extrasaction="raise", restval="")
            if new_file:
                writer.writeheader()
            self._writers[path] = (fh, writer)
        fh, writer = self._writers[path]
        unknown = set(row) - set(writer.fieldnames)
        if unknown:
            raise ValueError(f"{path.name}: keys {sorted(unknown)} are not among its columns {writer.fieldnames}")
        writer.writerow(dict(row))
        fh.flush()

    def log_metrics(self, step: int, metrics: Mapping[str, float]) -> None:
        self._write(self.metrics_path, {"global_step": step, **metrics})

    def log_episode(self, row: Mapping[str, Any]) -> None:
        self._write(self.episodes_path, row)

    def on_resume(self, episodes_csv: Path) -> None:
        """Nothing to do: the runner has cut the files back to the checkpoint, and appends to them."""

    def close(self, failed: bool = False) -> None:
        for fh, _ in self._writers.values():
            fh.close()
        self._writers.clear()


class MultiLogger:
    """Fans every call out to several loggers (CSV + W&B + progress bar)."""

    def __init__(self, loggers: Sequence[RunLogger]):
        self.loggers = list(loggers)

    def log_metrics(self, step: int, metrics: Mapping[str, float]) -> None:
        for lg in self.loggers:
            lg.log_metrics(step, metrics)

    def log_episode(self, row: Mapping[str, Any]) -> None:
        for lg in self.loggers:
            lg.log_episode(row)

    def on_resume(self, episodes_csv: Path) -> None:
        for lg in self.loggers:
            lg.on_resume(episodes_csv)

    def close(self, failed: bool = False) -> None:
        for lg in self.loggers:
            lg.close(failed=failed)
