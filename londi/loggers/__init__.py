"""Run loggers: CSV (always), W&B and progress display (see the experiment layer)."""

from londi.loggers.base import CSVLogger, MultiLogger, RunLogger

__all__ = ["CSVLogger", "MultiLogger", "RunLogger"]
