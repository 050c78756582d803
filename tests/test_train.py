"""`londi-train` end to end: the default config runs into Hydra's output dir; a failing job says why."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from omegaconf import OmegaConf

from londi.rundir import hardware

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
    # the CPU it ran on: a learned switcher repeats exactly only there
    assert info["hardware"] == hardware() == info["starts"][-1]["hardware"] and hardware().endswith(" cores")
    metrics = pd.read_csv(run / "metrics.csv")
    assert {"global_step", "switch/deepthink_frac", "compute/total_flops"} <= set(metrics.columns)
    assert metrics["global_step"].max() == 40
    assert (pd.read_csv(run / "episodes.csv")["phase"] == "eval").sum() == 1
    assert len(list((run / "wandb").glob("offline-run-*"))) == 1
    assert not (REPO / "metrics.csv").exists()  # nothing written to the current directory


@pytest.mark.parametrize(("override", "message"), [
    ("env.id=BabyAI-Text-GoToLocl-v0", "Did you mean BabyAI-Text-GoToLocal-v0"),
    ("total_steps=-5", "total_steps=-5 is out of range"),
    ("+switcher.cots=0.1", "switcher has no key cots"),
    ("model@quick=hf", "no value for quick.path"),
    ("model@quick=distilled quick.path=/no/such/model", "/no/such/model"),
])
def test_bad_input_fails_in_one_line_and_leaves_no_run_folder(tmp_path, londi_train, override, message):
    run = tmp_path / "run"
    proc = londi_train("+experiment=smoke", *override.split(), f"hydra.run.dir={run}")
    assert proc.returncode != 0
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr  # one line that names the problem, not a stack
    assert not run.exists()  # nothing that looks like a run was left behind


def test_a_run_folder_in_use_stops_a_second_run_and_is_free_again_after(tmp_path, londi_train):
    from londi.errors import ConfigError
    from londi.rundir import run_folder_lock

    run = tmp_path / "run"
    args = ("+experiment=smoke", "total_steps=20", "eval_episodes=1", "eval_every=20", "checkpoint_every=20",
            f"hydra.run.dir={run}")
    with run_folder_lock(run):  # as a live run of the same folder holds it
        with pytest.raises(ConfigError, match="in use by another londi process"):
            with run_folder_lock(run):
                pass
        proc = londi_train(*args)
        assert proc.returncode != 0
        assert "is in use by another londi process" in proc.stderr and "Traceback" not in proc.stderr
        assert not (run / "metrics.csv").exists()  # it wrote nothing into the folder it did not hold
    proc = londi_train(*args)  # the holder has gone: the folder is free
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert pd.read_csv(run / "metrics.csv")["global_step"].max() == 20


def test_a_bad_value_fails_at_composition(tmp_path, londi_train):
    for override in ("switcher=londi switcher.cost=abc", "switcher=londi switcher.algo=dqnn"):
        proc = londi_train("+experiment=smoke", *override.split(), f"hydra.run.dir={tmp_path / 'run'}")
        assert proc.returncode != 0 and "Error merging override" in proc.stderr, proc.stderr[-500:]
        assert not (tmp_path / "run").exists()


def test_demo_command_is_the_documented_sweep(tmp_path):
    from londi.config import compose
    from londi.demo import demo_command

    cfg = compose("demo", ["overrides=['total_steps=100']"])
    cmd = demo_command(tmp_path, cfg.switchers, cfg.seeds, cfg.overrides, n_jobs=2)
    assert cmd[1:4] == ["-m", "londi.train", "-m"] and "+experiment=demo" in cmd
    assert "switcher=londi_b,always_quick,always_deepthink" in cmd and "seed=1,2" in cmd
    assert "hydra/launcher=joblib" in cmd and cmd[-1] == "total_steps=100"
    assert "seed=5" in demo_command(tmp_path, ["londi"], [5], n_jobs=1)
