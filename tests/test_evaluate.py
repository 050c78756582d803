"""Evaluate round trip: a trained run folder is reloaded by londi-evaluate, which writes eval.json/eval.csv."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

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
    # the trained switcher's step (not 0) on every row and in the summary; seeds per episode, never averaged
    trained_at = int(final["global_step"].max())
    assert trained_at > 0 and (rows["global_step"] == trained_at).all() and summary["global_step"] == trained_at
    assert "episode_seed" not in summary
    assert (summary["episode_seed_min"], summary["episode_seed_max"]) == (rows["episode_seed"].min(),
                                                                          rows["episode_seed"].max())
    assert rows["episode_seed"].nunique() == 3
    assert 0.0 <= summary["success_ci95_low"] <= summary["success"] <= summary["success_ci95_high"] <= 1.0
    assert summary["threads"] == 1 and summary["device_kinds"]["deepthink"] in ([], ["simulated"])
    assert summary["overrides"] == {}


def test_evaluate_test_split_uses_held_out_seeds(trained_run):
    main([f"run_dir={trained_run}", "episodes=2", "split=test", "+override.eval_episodes=9"])
    summary = json.loads((trained_run / "eval.json").read_text())
    rows = pd.read_csv(trained_run / "eval.csv")
    assert summary["split"] == "test" and len(rows) == 2
    assert rows["episode_seed"].min() >= TEST_SEED_OFFSET
    assert summary["env_id"] == "BabyAI-Text-GoToLocal-v0"


def test_an_override_is_played_recorded_and_labels_the_report_row(trained_run, tmp_path):
    """londi_b trained at budget 4, evaluated at +override.switcher.budget=0: no DEEPTHINK call, eval.json says
    so, and londi-report source=evaluate lists it at budget 0 (it listed budget 4 with 0 calls)."""
    from londi.report import make_report

    trained = OmegaConf.load(trained_run / "config.yaml").switcher.budget
    main([f"run_dir={trained_run}", "episodes=2", "split=train", "+override.switcher.budget=0"])
    summary = json.loads((trained_run / "eval.json").read_text())
    assert summary["overrides"] == {"switcher.budget": 0} and trained > 0
    assert (pd.read_csv(trained_run / "eval.csv")["deepthink_calls"] == 0).all()
    paths = make_report(trained_run, out=tmp_path / "report", source="evaluate")
    row = pd.read_csv(paths["summary"]).iloc[0]
    assert row["budget"] == 0 and row["setting"] == f"+override.switcher.budget=0 (trained {trained})"
    assert row["eval_overrides"] == "switcher.budget=0"
    assert "- `switcher.budget=0`: 1 run" in paths["table"].read_text()


def test_recorded_overrides_are_the_values_used_with_secrets_redacted():
    from londi.evaluate import recorded_overrides
    from londi.rundir import REDACTED

    cfg = OmegaConf.create({"seed": 3, "switcher": {"budget": 4},
                            "deepthink": {"api_key": "sk-old", "api_key_env": "KEY", "max_new_tokens": 8}})
    override = {"switcher": {"budget": "${seed}"}, "deepthink": {"api_key": "sk-new", "api_key_env": "OTHER"}}
    merged = OmegaConf.merge(cfg, override)
    assert recorded_overrides(merged, override) == {
        "switcher.budget": 3, "deepthink.api_key": REDACTED, "deepthink.api_key_env": "OTHER"}


def test_evaluate_needs_a_run_dir(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["episodes=2"])
    assert "run_dir" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([f"run_dir={tmp_path}"])
    assert "config.yaml" in capsys.readouterr().err


def test_evaluate_rejects_an_override_the_run_config_lacks(trained_run, capsys):
    with pytest.raises(SystemExit):
        main([f"run_dir={trained_run}", "episodes=1", "+override.eval_episodez=9"])
    assert "no key eval_episodez" in capsys.readouterr().err


def test_wilson_interval_stays_in_range():
    from londi.evaluate import summarize

    s = summarize([{"success": 0}] * 9 + [{"success": 1}])
    assert s["success_ci95_low"] == pytest.approx(0.01787, abs=1e-4) and s["success_ci95_high"] == pytest.approx(
        0.40415, abs=1e-4)
    assert summarize([{"success": 0}] * 5)["success_ci95_low"] == pytest.approx(0.0, abs=1e-12)
    # the normal approximation put 1 of 10 at 0.10 +- 0.19: below 0


def test_evaluate_is_a_hydra_app():
    repo = Path(__file__).resolve().parents[1]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(repo)}

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "londi.evaluate", *args], cwd=repo, env=env,
                              capture_output=True, text=True, timeout=120)

    helped = cli("--help")
    assert helped.returncode == 0, helped.stderr
    for key in ("run_dir:", "episodes:", "split:", "override:"):
        assert key in helped.stdout
    typo = cli("run_dri=x")
    assert typo.returncode != 0 and "Could not override 'run_dri'" in typo.stderr
