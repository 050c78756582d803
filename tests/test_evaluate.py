"""Evaluate round trip: a trained run folder is reloaded by londi-evaluate, which writes eval.json/eval.csv."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from omegaconf import OmegaConf

from londi.evaluate import TEST_SEED_OFFSET, main, split_env_config


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, londi_train):
    run = tmp_path_factory.mktemp("evaluate") / "run"
    proc = londi_train(
        "+experiment=smoke", "switcher=londi_b", "model@quick=expert", "logger=disabled", "eval_episodes=3",
        f"hydra.run.dir={run}",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return run


def test_split_env_config():
    cfg, off = split_env_config(
        OmegaConf.create({"_target_": "envs.make", "id": "BabyAI-Text-MixedTrainLocal-v0"}), "test"
    )
    assert cfg.id == "BabyAI-Text-MixedTestLocal-v0" and off == TEST_SEED_OFFSET
    cfg, off = split_env_config(
        OmegaConf.create({"id": "ScienceWorld-v0", "task": "boil", "split": "train"}), "test"
    )
    assert cfg.split == "test"
    cfg, off = split_env_config(OmegaConf.create({"id": "BabyAI-Text-GoToLocal-v0"}), "train")
    assert cfg.id == "BabyAI-Text-GoToLocal-v0" and off is None
    with pytest.raises(ValueError, match="split"):
        split_env_config(OmegaConf.create({"id": "x"}), "dev")


def test_evaluate_train_split_replays_the_final_evaluation(trained_run, capsys):
    main([f"run_dir={trained_run}", "episodes=3", "split=train"])
    assert "eval.json" in capsys.readouterr().out
    summary = json.loads((trained_run / "eval.json").read_text())
    rows = pd.read_csv(trained_run / "eval.csv")
    assert summary["episodes"] == 3 == len(rows) and summary["split"] == "train"
    final = pd.read_csv(trained_run / "episodes.csv").query("phase == 'eval'")
    final = final[final["global_step"] == final["global_step"].max()]
    # same switcher weights, same seeds, deterministic QUICK: the same episodes as the run's last evaluation
    cols = ["episode_seed", "env_steps", "success", "deepthink_calls", "quick_calls"]
    pd.testing.assert_frame_equal(
        rows[cols].reset_index(drop=True), final[cols].reset_index(drop=True), check_dtype=False
    )
    assert summary["success"] == pytest.approx(rows["success"].mean())
    assert {"deepthink_calls", "deepthink_flops", "total_flops", "device_seconds"} <= set(summary)


def test_evaluate_test_split_uses_held_out_seeds(trained_run):
    main([f"run_dir={trained_run}", "episodes=2", "split=test", "eval_episodes=9"])
    summary = json.loads((trained_run / "eval.json").read_text())
    rows = pd.read_csv(trained_run / "eval.csv")
    assert summary["split"] == "test" and len(rows) == 2
    assert rows["episode_seed"].min() >= TEST_SEED_OFFSET
    assert summary["env_id"] == "BabyAI-Text-GoToLocal-v0"


def test_evaluate_needs_a_run_dir(tmp_path):
    with pytest.raises(SystemExit, match="usage"):
        main(["episodes=2"])
    with pytest.raises(FileNotFoundError, match="config.yaml"):
        main([f"run_dir={tmp_path}"])
