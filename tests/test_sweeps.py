"""Multirun end to end: a 2-job joblib sweep and a submitit_local job, each with its own folder and W&B run."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from londi.report import make_report


def job_dirs(sweep: Path) -> list[Path]:
    return sorted(p.parent for p in sweep.glob("*/episodes.csv"))


def check_job(job: Path) -> None:
    for name in ("config.yaml", "run_info.json", "episodes.csv", "metrics.csv", ".hydra/config.yaml"):
        assert (job / name).exists(), f"{job.name} lacks {name}"
    assert len(pd.read_csv(job / "episodes.csv")) > 0
    runs = list((job / "wandb").glob("offline-run-*"))
    assert len(runs) == 1, f"{job.name}: expected its own W&B offline run, found {runs}"


def test_joblib_two_jobs_each_with_own_folder_and_wandb_run(tmp_path, londi_train):
    sweep = tmp_path / "sweep"
    proc = londi_train(
        "-m",
        "+experiment=smoke",
        "seed=0,1",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        f"hydra.sweep.dir={sweep}",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = job_dirs(sweep)
    assert [j.name for j in jobs] == ["0_always_quick-s0", "1_always_quick-s1"]
    for job in jobs:
        check_job(job)
    wandb_runs = {next((j / "wandb").glob("offline-run-*")).name for j in jobs}
    assert len(wandb_runs) == 2
    paths = make_report(sweep)
    summary = pd.read_csv(paths["summary"])
    assert summary["seeds"].tolist() == [2]


def test_submitit_local_job(tmp_path, londi_train):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    sweep = tmp_path / "sweep"
    proc = londi_train(
        "-m",
        "+experiment=smoke",
        "seed=3",
        "hydra/launcher=submitit_local",
        "hydra.launcher.timeout_min=5",
        f"hydra.sweep.dir={sweep}",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = job_dirs(sweep)
    assert [j.name for j in jobs] == ["0_always_quick-s3"]
    check_job(jobs[0])
    assert list((sweep / ".submitit").rglob("*_log.out")), "submitit wrote no job log"
