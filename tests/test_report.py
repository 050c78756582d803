"""londi-report on synthetic run folders: seeds aggregated with a 95% CI, Pareto front, figures written."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from londi import report

SWITCHERS = {  # name -> (budget, cost, success prob, deepthink calls/ep)
    "always_quick": (None, None, 0.2, 0),
    "always_deepthink": (None, None, 0.9, 20),
    "londi_b": (4, None, 0.6, 4),
    "londi_b@2": (2, None, 0.4, 2),
}
QUICK_FLOPS, DEEP_FLOPS = 1e3, 1e5


def _write_run(path, switcher, budget, seed, success_p, calls, rng):
    path.mkdir(parents=True)
    sw = {"_target_": "x.Switcher"}
    if budget is not None:
        sw["budget"] = budget
    OmegaConf.save(
        OmegaConf.create({"env": {"id": "BabyAI-Text-GoToLocal-v0"}, "switcher": sw, "seed": seed}),
        path / "config.yaml",
    )
    (path / "run_info.json").write_text(
        json.dumps({"choices": {"env": "babyai_text/goto_local", "switcher": switcher}})
    )
    rows, steps = [], 0
    for phase, n, at in (("train", 10, None), ("eval", 8, 100), ("eval", 8, 200)):  # two evaluations
        for i in range(n):
            steps += 20 if phase == "train" else 0
            rows.append(
                {
                    "phase": phase,
                    "episode": i,
                    "env_steps": steps if at is None else at,
                    "return": float(rng.random()),
                    "success": bool(rng.random() < success_p),
                    "quick_calls": 20 - calls,
                    "deepthink_calls": calls,
                    "deepthink_flops": calls * DEEP_FLOPS,
                    "total_flops": calls * DEEP_FLOPS + (20 - calls) * QUICK_FLOPS,
                    "device_seconds": 0.01 * calls,
                }
            )
    pd.DataFrame(rows).to_csv(path / "episodes.csv", index=False)
    steps = np.arange(0, 201, 50)
    per_step = (calls * DEEP_FLOPS + (20 - calls) * QUICK_FLOPS) / 20
    pd.DataFrame(
        {"global_step": steps, "compute/total_flops": steps * per_step, "compute/gpu_seconds": steps * 1e-3}
    ).to_csv(path / "metrics.csv", index=False)


@pytest.fixture
def sweep_dir(tmp_path):
    rng = np.random.default_rng(0)
    n = 0
    for name, (budget, _, p, calls) in SWITCHERS.items():
        for seed in range(3):
            _write_run(tmp_path / f"{n}_{name}-s{seed}", name.split("@")[0], budget, seed, p, calls, rng)
            n += 1
    return tmp_path


def test_ci95_matches_student_t():
    mean, half = report.ci95([1.0, 2.0, 3.0])
    assert mean == pytest.approx(2.0)
    assert half == pytest.approx(4.302652729911275 * 1.0 / math.sqrt(3))
    assert math.isnan(report.ci95([5.0])[1])


def test_pareto_front_drops_dominated_points():
    x = [0.0, 1.0, 2.0, 1.5, 3.0]
    y = [0.2, 0.6, 0.9, 0.5, 0.9]  # (1.5, 0.5) is beaten by (1, 0.6); (3, 0.9) by (2, 0.9)
    assert report.pareto_front(x, y) == [0, 1, 2]


def test_report_aggregates_seeds_and_writes_figures(sweep_dir):
    paths = report.make_report(sweep_dir)
    agg = pd.read_csv(paths["summary"])
    assert len(agg) == 4 and set(agg["seeds"]) == {3}
    deep = agg[agg["switcher"] == "always_deepthink"].iloc[0]
    assert deep["deepthink_calls"] == 20 and deep["compute_saved"] == pytest.approx(0.0)
    quick = agg[agg["switcher"] == "always_quick"].iloc[0]
    assert quick["compute_saved"] == pytest.approx(1 - 20 * QUICK_FLOPS / (20 * DEEP_FLOPS))
    # only the final evaluation counts (8 episodes per run, 3 seeds)
    assert set(agg["episodes"]) == {24}
    runs = pd.read_csv(paths["runs"])
    one = runs[(runs["switcher"] == "londi_b") & (runs["budget"] == 4) & (runs["seed"] == 1)].iloc[0]
    ep = pd.read_csv(one["path"] + "/episodes.csv")
    last = ep[(ep["phase"] == "eval") & (ep["env_steps"] == 200)]
    assert one["success"] == pytest.approx(last["success"].mean())
    table = paths["table"].read_text()
    assert "| londi_b | 4 |" in table.replace("babyai_text/goto_local | ", "")
    for key in ("pareto", "compute_curve", "budget"):
        assert paths[key].exists() and paths[key].stat().st_size > 5_000, key


def test_report_figures_can_plot_return_instead_of_success(sweep_dir, tmp_path):
    by_success = report.make_report(sweep_dir, tmp_path / "s")
    by_return = report.make_report(sweep_dir, tmp_path / "r", metric="return")
    assert by_return["pareto"].read_bytes() != by_success["pareto"].read_bytes()
    assert by_return["summary"].read_text() == by_success["summary"].read_text()  # the table does not change
    with pytest.raises(ValueError, match="metric must be one of success, return"):
        report.make_report(sweep_dir, tmp_path / "x", metric="score")
    with pytest.raises(SystemExit, match="metric must be success or return"):
        report.main([f"dir={sweep_dir}", "metric=score"])


def test_report_cli_rejects_unknown_keys_and_missing_dir(tmp_path, capsys):
    with pytest.raises(SystemExit, match="unknown keys: bogus"):
        report.main([f"dir={tmp_path}", "bogus=1"])
    with pytest.raises(FileNotFoundError, match="no episodes.csv"):
        report.main([f"dir={tmp_path}"])


def test_runs_of_one_switcher_at_different_settings_are_separate_rows(tmp_path):
    rng = np.random.default_rng(1)
    for n, (p, calls) in enumerate([(0.1, 2), (0.1, 2), (0.5, 10)]):
        run = tmp_path / f"{n}_random-s{n}"
        _write_run(run, "random", None, n, 0.5, calls, rng)
        cfg = OmegaConf.load(run / "config.yaml")
        cfg.switcher.p = p
        OmegaConf.save(cfg, run / "config.yaml")
    agg = pd.read_csv(report.make_report(tmp_path)["summary"])
    assert sorted(agg["setting"]) == ["p=0.1", "p=0.5"]
    assert agg.set_index("setting").loc["p=0.1", "seeds"] == 2
    assert "| random | - | - | p=0.5 | 1 |" in report.make_report(tmp_path)["table"].read_text().replace(
        "babyai_text/goto_local | ", "")
