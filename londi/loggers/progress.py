"""Progress display as a `RunLogger`: a tqdm bar on a terminal, plain periodic lines elsewhere.

Why both: a bar is what a person watching wants; in files (CI, Slurm, joblib workers) a bar's carriage
returns become noise, so there it prints one line every `every_seconds`. Shows env steps, steps/s, the
DEEPTHINK fraction, the latest success rate and the ETA.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TextIO

DEEPTHINK_FRAC = "switch/deepthink_frac"
SUCCESS = "charts/success_rate"


def _fmt_eta(seconds: float) -> str:
    if seconds != seconds or seconds == float("inf"):  # nan / inf
        return "?"
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h:d}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


class ProgressLogger:
    """Shows training progress; `mode` is auto (bar on a TTY, else lines), bar, lines or off."""

    def __init__(
        self,
        total_steps: int,
        mode: str = "auto",
        every_seconds: float = 15.0,
        desc: str = "train",
        stream: TextIO | None = None,
    ):
        self.total = max(int(total_steps), 1)
        self.stream = stream if stream is not None else sys.stderr
        if mode == "auto":
            mode = "bar" if getattr(self.stream, "isatty", lambda: False)() else "lines"
        if mode not in ("bar", "lines", "off"):
            raise ValueError(f"logger.progress.mode must be auto, bar, lines or off, not {mode!r}")
        self.mode = mode
        self.every_seconds = every_seconds
        self.desc = desc
        self._t0 = time.perf_counter()
        self._last_line = -float("inf")
        self._step = 0
        self._stats: dict[str, float] = {}
        self._bar = None
        self._closed = False
        if mode == "bar":
            from tqdm.auto import tqdm

            self._bar = tqdm(total=self.total, desc=desc, unit="step", file=self.stream, dynamic_ncols=True)

    def _rate(self) -> float:
        dt = time.perf_counter() - self._t0
        return self._step / dt if dt > 0 else 0.0

    def log_metrics(self, step: int, metrics: Mapping[str, float]) -> None:
        for key, short in ((DEEPTHINK_FRAC, "deepthink"), (SUCCESS, "success")):
            if metrics.get(key) is not None:
                self._stats[short] = float(metrics[key])
        step = min(int(step), self.total)
        if self._bar is not None:
            self._bar.update(max(step - self._step, 0))
            self._step = max(step, self._step)
            self._bar.set_postfix({k: f"{v:.2f}" for k, v in self._stats.items()}, refresh=False)
            return
        self._step = max(step, self._step)
        now = time.perf_counter()
        if self.mode == "lines" and now - self._last_line >= self.every_seconds:
            self._last_line = now
            print(self.line(), file=self.stream, flush=True)

    def line(self) -> str:
        """One plain progress line: `train 1200/5000 (24%) 310 steps/s deepthink=0.21 success=0.40 eta 00:12`."""
        rate = self._rate()
        eta = (self.total - self._step) / rate if rate > 0 else float("inf")
        stats = " ".join(f"{k}={v:.2f}" for k, v in self._stats.items())
        pct = 100.0 * self._step / self.total
        return f"{self.desc} {self._step}/{self.total} ({pct:.0f}%) {rate:.0f} steps/s {stats} eta {_fmt_eta(eta)}".replace(
            "  ", " "
        )

    def log_episode(self, row: Mapping[str, Any]) -> None:
        """Episodes are not shown individually; the bar's postfix carries the running rates."""

    def on_resume(self, episodes_csv: Path) -> None:
        """Nothing kept per episode; steps/s and the ETA count from this start."""

    def close(self, failed: bool = False) -> None:
        if self._closed:
            return
        self._closed = True
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif self.mode == "lines":
            print(self.line() + (" FAILED" if failed else " done"), file=self.stream, flush=True)
