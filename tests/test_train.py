"""`londi-train` end to end: the default config runs into Hydra's output dir; a failing job says why."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from omegaconf import OmegaConf

REPO = Path(__file__).resolve().parents[1]




def test_default_config_runs_and_writes_its_folder(tmp_path, londi_train):
    run = tmp_path / "run"
    proc = londi_train(
        "total_steps=40", "eval_episodes=1", "eval_every=40", "checkpoint_every=40", f"hydra.run.dir={run}"
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"run folder {run}" in proc.stdout
    cfg = OmegaConf.load(run / "config.yaml")
    assert cfg.run_dir == str(run) and cfg.total_steps == 40  # resolved, Hydra's output dir
    info = json.loads((run / "run_info.json").read_text())
    assert info["choices"]["switcher"] and info["choices"]["env"] == "babyai_text/goto_local"
    assert "commit" in info
    metrics = pd.read_csv(run / "metrics.csv")
    assert {"global_step", "switch/deepthink_frac", "compute/total_flops"} <= set(metrics.columns)
    assert metrics["global_step"].max() == 40
    assert (pd.read_csv(run / "episodes.csv")["phase"] == "eval").sum() == 1
    assert len(list((run / "wandb").glob("offline-run-*"))) == 1
    assert not (REPO / "metrics.csv").exists()  # nothing written to the current directory


def test_failing_job_exits_nonzero_and_names_the_problem(tmp_path, londi_train):
    run = tmp_path / "run"
    proc = londi_train("+experiment=smoke", "env.id=BabyAI-Text-GoToLocl-v0", f"hydra.run.dir={run}")
    assert proc.returncode != 0
    assert "Did you mean BabyAI-Text-GoToLocal-v0" in proc.stderr
    assert (run / "config.yaml").exists()
    assert (
        len(list((run / "wandb").glob("offline-run-*"))) == 1
    )  # the W&B run was opened and finished (failed)


def test_demo_command_is_the_documented_sweep(tmp_path):
    from londi.demo import SWITCHERS, demo_command

    cmd = demo_command(tmp_path, ["total_steps=100"], n_jobs=2)
    assert cmd[1:4] == ["-m", "londi.train", "-m"] and "+experiment=demo" in cmd
    assert f"switcher={','.join(SWITCHERS)}" in cmd and "seed=0,1" in cmd and "hydra/launcher=joblib" in cmd
    assert cmd[-1] == "total_steps=100"
    assert "seed=0,1" not in demo_command(tmp_path, ["seed=5"], n_jobs=1)
