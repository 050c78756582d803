"""Weights & Biases as a `RunLogger`: the same metric keys as the CSV, against env steps.

A resumed training run passes the id of its first W&B run (`run_id`, kept in run_info.json), so W&B
continues that run instead of starting a second one. Why one W&B run per job: multirun jobs (joblib workers, submitit tasks) may share a process, so every
logger starts its own run (`reinit="create_new"`) and `close()` always calls `finish()`; a failed job is
finished with `exit_code=1` so W&B marks it failed. Offline mode writes `<dir>/wandb/offline-run-*`,
which `wandb sync <that folder>` uploads later.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from londi.loggers.base import read_rows

STEP_KEY = "global_step"  # the x-axis of every metric: env steps, as in metrics.csv


class WandbLogger:
    """Logs metrics and finished episodes to one W&B run (config = resolved config, secrets removed)."""

    def __init__(
        self,
        run_dir: str | Path,
        config: Mapping[str, Any] | None = None,
        mode: str = "offline",
        project: str = "londi",
        entity: str | None = None,
        group: str | None = None,
        name: str | None = None,
        tags: Sequence[str] = (),
        job_type: str = "train",
        notes: str | None = None,
        run_id: str | None = None,
    ):
        import wandb

        if mode not in ("online", "offline", "disabled"):
            raise ValueError(f"logger.wandb.mode must be online, offline or disabled, not {mode!r}")
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.run = wandb.init(
            dir=str(self.run_dir),
            config=dict(config) if config else None,
            mode=mode,
            project=project,
            entity=entity,
            group=group,
            name=name,
            tags=[str(t)[:64] for t in tags],  # W&B limits tag length to 64 characters
            job_type=job_type,
            notes=notes,
            id=run_id,
            resume="allow" if run_id else None,
            reinit="create_new",
            settings=wandb.Settings(console="off", silent=True, x_disable_stats=True),
        )
        self.run.define_metric(STEP_KEY)
        self.run.define_metric("*", step_metric=STEP_KEY)
        self._episodes: list[dict[str, Any]] = []
        self._closed = False

    def log_metrics(self, step: int, metrics: Mapping[str, float]) -> None:
        self.run.log({STEP_KEY: int(step), **{k: v for k, v in metrics.items() if v is not None}})

    def log_episode(self, row: Mapping[str, Any]) -> None:
        """Episodes are kept and uploaded as one table at the end (rows also go to episodes.csv). An empty
        cell ("") is kept as None, as it reads back from episodes.csv after a resume, so a column never
        mixes "" with numbers (W&B refuses a table whose column types disagree)."""
        self._episodes.append({k: None if v == "" else v for k, v in row.items()})

    def on_resume(self, episodes_csv: Path) -> None:
        """Start the episodes table from the rows logged before the resume (episodes.csv, already cut to the
        checkpoint): the table uploaded at close is the whole run's, as on a run never stopped."""
        self._episodes = read_rows(episodes_csv)

    @property
    def episodes(self) -> list[dict[str, Any]]:
        """The rows of the episodes table uploaded at close (a copy)."""
        return [dict(r) for r in self._episodes]

    def close(self, failed: bool = False) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            if self._episodes:
                import wandb

                cols = list(self._episodes[0].keys())
                table = wandb.Table(columns=cols, data=[[r.get(c) for c in cols] for r in self._episodes])
                self.run.log({"episodes": table})
        finally:
            self.run.finish(exit_code=1 if failed else 0)
