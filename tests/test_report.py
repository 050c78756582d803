"""londi-report: seeds aggregated with a clipped 95% interval, only finished runs tabulated (the rest
listed), how device seconds were measured, Pareto front, figures written; the Hydra app's command line."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from londi import report

REPO = Path(__file__).resolve().parents[1]

SWITCHERS = {  # name -> (budget, cost, success prob, deepthink calls/ep)
    "always_quick": (None, None, 0.2, 0),
    "always_deepthink": (None, None, 0.9, 20),
    "londi_b": (4, None, 0.6, 4),
    "londi_b@2": (2, None, 0.4, 2),
}
QUICK_FLOPS, DEEP_FLOPS = 1e3, 1e5


def _write_run(path, switcher, budget, seed, success_p, calls, rng, status="finished"):
    """A run folder as londi-train leaves it; `status` goes to run.json (None: no status written)."""
    path.mkdir(parents=True)
    meta = {"total_steps": 200, "seed": seed}
    if status is not None:
        meta["status"] = status
    (path / "run.json").write_text(json.dumps(meta))
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
        {"global_step": steps, "compute/total_flops": steps * per_step, "compute/gpu_seconds": steps * 1e-3,
         "compute/deepthink_flops": steps * calls * DEEP_FLOPS / 20, "compute/deepthink_seconds": steps * calls * 1e-4}
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


def test_interval_is_student_t_over_seeds_clipped_to_the_range():
    mean, lo, hi = report.interval([1.0, 2.0, 3.0])
    half = 4.302652729911275 * 1.0 / math.sqrt(3)
    assert (mean, lo, hi) == pytest.approx((2.0, 2.0 - half, 2.0 + half))
    assert report.interval([0.0, 0.7], 0.0, 1.0) == pytest.approx((0.35, 0.0, 1.0))  # t: 0.35 +- 4.45
    assert report.interval([3.0, 3.0], 0.0) == pytest.approx((3.0, 3.0, 3.0))
    mean, lo, hi = report.interval([5.0])
    assert mean == 5.0 and math.isnan(lo) and math.isnan(hi)


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
    # each seed's success kept beside the mean, in seed order, in summary.csv and the table
    b4 = runs[(runs["switcher"] == "londi_b") & (runs["budget"] == 4)].sort_values("seed")
    per_seed = " / ".join(f"{v:.2f}" for v in b4["success"])
    assert len(set(b4["success"])) > 1  # the fixture's seeds differ, so the order is tested
    assert agg[(agg["switcher"] == "londi_b") & (agg["budget"] == 4)].iloc[0]["success_per_seed"] == per_seed
    assert "| success per seed |" in table and f"| {per_seed} |" in table
    for key in ("pareto", "compute_curve", "budget", "learning_curve"):
        assert paths[key].exists() and paths[key].stat().st_size > 5_000, key


def test_compute_curves_give_deepthink_usage_apart_from_the_total(sweep_dir):
    runs = [report.load_run(p) for p in report.find_runs(sweep_dir)]
    curves = report.compute_curves(runs)
    last = curves[curves["env_steps"] == 200].groupby("label")[["deepthink_flops", "deepthink_seconds", "flops"]].mean()
    assert last.loc["always_quick", "deepthink_flops"] == 0 and last.loc["always_quick", "flops"] > 0
    assert last.loc["always_deepthink", "deepthink_flops"] == pytest.approx(200 * DEEP_FLOPS)
    assert last.loc["always_deepthink", "deepthink_seconds"] == pytest.approx(200 * 20 * 1e-4)
    assert (last["deepthink_flops"] <= last["flops"]).all()


def test_learning_curves_follow_the_periodic_evaluations(sweep_dir):
    runs = [report.load_run(p) for p in report.find_runs(sweep_dir)]
    curves = report.learning_curves(runs)
    one = runs[0]
    ep = one.episodes[one.episodes["phase"] == "eval"]
    mine = curves[(curves["label"] == one.label) & (curves["seed"] == one.seed)].set_index("env_steps")
    assert list(mine.index) == [100, 200]  # one point per evaluation
    assert mine.loc[100, "success"] == pytest.approx(ep[ep["env_steps"] == 100]["success"].mean())
    assert mine.loc[200, "deepthink_calls"] == pytest.approx(ep[ep["env_steps"] == 200]["deepthink_calls"].mean())


def test_report_figures_can_plot_return_instead_of_success(sweep_dir, tmp_path, capsys):
    by_success = report.make_report(sweep_dir, tmp_path / "s")
    by_return = report.make_report(sweep_dir, tmp_path / "r", metric="return")
    assert by_return["pareto"].read_bytes() != by_success["pareto"].read_bytes()
    assert by_return["summary"].read_text() == by_success["summary"].read_text()  # the table does not change
    with pytest.raises(ValueError, match="metric must be one of success, return"):
        report.make_report(sweep_dir, tmp_path / "x", metric="score")

    with pytest.raises(SystemExit):
        report.main([f"dir={sweep_dir}", "metric=score"])
    assert "expected one of [success, return]" in capsys.readouterr().err


def test_report_cli_rejects_unknown_keys_and_missing_dir(tmp_path, capsys):
    with pytest.raises(SystemExit):
        report.main([f"dir={tmp_path}", "bogus=1"])
    assert "Could not override 'bogus'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        report.main([f"dir={tmp_path}"])
    assert "no run folder" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        report.main([f"dir={tmp_path / 'nowhere'}"])
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "nowhere").exists()  # Hydra made no report folder for a wrong dir


def test_lagrangian_targets_and_multiplier_rules_are_separate_rows(tmp_path):
    """The Lagrangian config has a `rule` key (pid | sgd) like the oracle's: it must not hide the target."""
    rng = np.random.default_rng(2)
    for n, (d, rule) in enumerate([(2, "pid"), (2, "pid"), (5, "pid"), (2, "sgd")]):
        run = tmp_path / f"{n}_lagrangian-s{n}"
        _write_run(run, "lagrangian", None, n, 0.5, 3, rng)
        cfg = OmegaConf.load(run / "config.yaml")
        cfg.switcher.target_calls, cfg.switcher.rule = d, rule
        OmegaConf.save(cfg, run / "config.yaml")
    agg = pd.read_csv(report.make_report(tmp_path)["summary"]).set_index("setting")
    assert sorted(agg.index) == ["d=2", "d=2, rule=sgd", "d=5"]
    assert agg.loc["d=2", "seeds"] == 2


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


def _rows(table: str, switcher: str) -> list[list[str]]:
    """The cells of the main report.md table's rows of `switcher` (not the learning-curve section's)."""
    return [
        [c.strip() for c in line.strip("|").split("|")]
        for line in table.split("## Has training gone flat?")[0].splitlines()
        if line.startswith("|") and f"| {switcher} |" in line
    ]


def test_intervals_never_leave_the_range_in_table_or_summary(tmp_path):
    """Two seeds at success 0 and 1 and 0 / 3 DEEPTHINK calls: t's 0.50 +- 6.35 must not show as -5.85."""
    rng = np.random.default_rng(0)
    for seed, (p, calls) in enumerate([(0.0, 0), (1.0, 3)]):
        _write_run(tmp_path / f"{seed}_random-s{seed}", "random", None, seed, p, calls, rng)
    paths = report.make_report(tmp_path)
    agg = pd.read_csv(paths["summary"]).iloc[0]
    assert agg["success"] == pytest.approx(0.5)
    assert (agg["success_lo"], agg["success_hi"]) == (0.0, 1.0)
    assert agg["deepthink_calls_lo"] == 0.0 and agg["deepthink_flops_lo"] == 0.0 and agg["device_seconds_lo"] == 0.0
    text = paths["table"].read_text()
    (row,) = _rows(text, "random")
    cells = [row[7], *row[9:13]]  # success, calls, FLOPs, seconds (return is not clipped)
    numbers = [float(x) for cell in cells for x in re.findall(r"-?\d+\.\d+(?:e[+-]\d+)?", cell)]
    assert numbers and min(numbers) >= 0.0
    assert row[7] == "0.50 [0.00, 1.00]"
    assert "Student t over the seeds' means" in text and "clipped" in text
    assert "Error bars: 95% Student-t interval over seeds, clipped to [0, 1]" in text  # the figure caption


def _train(run_dir: Path, seed: int, total_steps: int = 120, stop_after: int | None = None) -> None:
    """A smoke run as londi-train makes it (config, run info, runner), stopped at `stop_after` like a kill."""
    from londi import build, runner
    from londi.config import compose
    from londi.rundir import write_run_files

    cfg = compose("config", ["+experiment=smoke", "logger=disabled", f"seed={seed}", f"total_steps={total_steps}",
                             "eval_every=40", "checkpoint_every=40", "eval_episodes=2", f"run_dir={run_dir}"])
    write_run_files(cfg, run_dir, extra={"choices": {"env": "babyai_text/goto_local", "switcher": "always_quick"}})
    if stop_after == 0:
        return  # failed before training: config and run info only
    parts = build.components(cfg)
    runner.run(parts.env_fn, parts.quick, parts.deepthink, parts.switcher, run_dir, encoder=parts.encoder, seed=seed,
               total_steps=total_steps, eval_episodes=2, eval_every=40, checkpoint_every=40,
               stop_after_steps=stop_after)


def test_report_tabulates_finished_runs_only_and_lists_the_others(tmp_path):
    sweep = tmp_path / "sweep"
    _train(sweep / "0_always_quick-s0", 0)  # finished: 120 of 120
    _train(sweep / "1_always_quick-s1", 1, stop_after=40)  # killed after its evaluation at step 40
    _train(sweep / "2_always_quick-s2", 2, stop_after=0)  # failed: a config, no metrics
    paths = report.make_report(sweep)
    agg = pd.read_csv(paths["summary"])
    assert len(agg) == 1 and agg["seeds"].iloc[0] == 1 and agg["steps_min"].iloc[0] == agg["steps_max"].iloc[0] == 120
    text = paths["table"].read_text()
    assert "1 of 3 runs in the table" in text
    assert _rows(text, "always_quick")[0][6] == "120"  # the steps column
    killed = next(line for line in text.splitlines() if "1_always_quick-s1" in line)
    assert "unfinished" in killed and "last step 40 of 120" in killed and "not in the table" in killed
    failed = next(line for line in text.splitlines() if "2_always_quick-s2" in line)
    assert "failed" in failed and "no checkpoint, metrics or episodes" in failed
    runs = pd.read_csv(paths["runs"]).set_index("seed")
    assert runs["status"].to_dict() == {0: "finished", 1: "unfinished", 2: "failed"}
    assert runs["in_table"].to_dict() == {0: True, 1: False, 2: False}

    both = report.make_report(sweep, tmp_path / "all", include_unfinished=True)
    agg = pd.read_csv(both["summary"])
    assert agg["seeds"].iloc[0] == 2 and agg["unfinished"].iloc[0] == 1
    text = both["table"].read_text()
    assert _rows(text, "always_quick")[0][6] == "40-120"
    assert "2 of 3 runs in the table" in text and "in the table (include_unfinished=true)" in text


def test_run_json_status_is_read_before_the_checkpoint(tmp_path):
    rng = np.random.default_rng(0)
    for seed, status in enumerate(["finished", "failed", "running", None]):
        _write_run(tmp_path / f"{seed}_londi-s{seed}", "londi", None, seed, 0.5, 2, rng, status=status)
    st = {p.name: report.load_run(p).status for p in sorted(tmp_path.iterdir())}
    assert [s.status for s in st.values()] == ["finished", "failed", "unfinished", "unfinished"]
    assert st["1_londi-s1"].told_by == "run.json status 'failed'"
    assert st["3_londi-s3"].told_by == "no checkpoint yet"  # neither run.json status nor a checkpoint
    assert pd.read_csv(report.make_report(tmp_path)["summary"])["seeds"].tolist() == [1]


@pytest.mark.parametrize("record", ["run.json", "run_info.json"])
def test_an_unreadable_run_record_stops_the_report_and_names_the_file(sweep_dir, record):
    bad = sweep_dir / "7_londi_b-s1" / record
    bad.write_text('{"status": "fini')
    with pytest.raises(ValueError, match=rf"{re.escape(str(bad))} is not readable JSON"):
        report.make_report(sweep_dir)


def _fake_checkpoint(run: Path, kinds: dict[str, str], threads: int) -> None:
    """A final checkpoint as londi.runner leaves it (meters per role) and the run's `threads`."""
    from londi.checkpoints import CheckpointStore
    from londi.runner import STATE_FILE, STATE_VERSION

    (run / "run.json").write_text(json.dumps({"total_steps": 200}))  # no status: the checkpoint tells
    meters = {role: {role: {"calls": 5, "device_kind": kind}} for role, kind in kinds.items()}
    state = {"version": STATE_VERSION, "finished": True, "tracker": {"steps": 200}, "meters": meters}
    CheckpointStore(run / "checkpoints").save(200, lambda d: (d / STATE_FILE).write_text(json.dumps(state)))
    cfg = OmegaConf.load(run / "config.yaml")
    cfg.threads = threads
    cfg.deepthink = {"simulated_params": 7.8e8}
    OmegaConf.save(cfg, run / "config.yaml")


def test_report_says_how_device_seconds_were_measured(tmp_path):
    rng = np.random.default_rng(0)
    for seed in range(2):
        _write_run(tmp_path / f"{seed}_londi-s{seed}", "londi", None, seed, 0.5, 2, rng, status=None)
        _fake_checkpoint(tmp_path / f"{seed}_londi-s{seed}", {"quick": "cpu_thread", "deepthink": "simulated"}, 1)
    text = report.make_report(tmp_path)["table"].read_text()
    assert "2 of 2 runs in the table" in text  # finished, told by the checkpoint
    assert ("Device seconds: QUICK: calling-thread CPU time at 1 torch thread; "
            "DEEPTHINK: simulated (7.8e+08-parameter model).") in text
    assert "Not comparable" not in text
    _fake_checkpoint(tmp_path / "1_londi-s1", {"quick": "cpu_thread", "deepthink": "simulated"}, 2)
    text = report.make_report(tmp_path)["table"].read_text()
    assert "at 2 torch threads" in text and "**Not comparable**" in text
    for seed in range(2):  # a served DEEPTHINK: its seconds are request latencies, and the report says so
        _fake_checkpoint(tmp_path / f"{seed}_londi-s{seed}", {"quick": "cpu_thread", "deepthink": "remote"}, 1)
    text = report.make_report(tmp_path)["table"].read_text()
    assert "DEEPTHINK: served remotely: each request's latency at the client, summed over requests" in text


def test_train_pins_and_records_torch_threads(tmp_path, londi_train):
    run = tmp_path / "run"
    proc = londi_train("+experiment=smoke", "logger=disabled", "threads=2", f"hydra.run.dir={run}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert OmegaConf.load(run / "config.yaml").threads == 2
    assert json.loads((run / "run_info.json").read_text())["torch_threads"] == 2
    text = report.make_report(run)["table"].read_text()
    assert "Device seconds: QUICK: calling-thread CPU time at 2 torch threads; DEEPTHINK: not called." in text


def _cli(module: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", module, *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=120)


def test_report_is_a_hydra_app(tmp_path):
    helped = _cli("londi.report", "--help")
    assert helped.returncode == 0, helped.stderr
    for key in ("dir:", "out:", "source:", "metric:", "include_unfinished:"):
        assert key in helped.stdout
    typo = _cli("londi.report", "dri=x")
    assert typo.returncode != 0 and "Could not override 'dri'" in typo.stderr
    job = _cli("londi.report", f"dir={tmp_path}", "metric=return", "--cfg", "job")
    assert job.returncode == 0 and OmegaConf.create(job.stdout).metric == "return"


def test_plateau_reads_the_change_between_the_last_two_evaluations(sweep_dir):
    runs = [report.load_run(p) for p in report.find_runs(sweep_dir)]
    curves = report.learning_curves(runs)
    flat = report.plateau(curves).set_index("label")
    mine = curves[curves["label"] == "londi_b-b4"].sort_values(["seed", "env_steps"])
    change = [s["success"].iloc[-1] - s["success"].iloc[-2] for _, s in mine.groupby("seed")]
    row = flat.loc["londi_b-b4"]
    assert row["seeds"] == 3 and row["steps"] == "100 -> 200"
    assert row["change"] == pytest.approx(np.mean(change))
    assert (row["change_lo"], row["change_hi"]) == pytest.approx(report.interval(change)[1:])
    assert row["success_last"] == pytest.approx(mine[mine["env_steps"] == 200]["success"].mean())

    # a curve that rises on every seed by about the same amount is "rising"; one that falls, "falling"
    up = curves.assign(success=np.where(curves["env_steps"] == 200, 0.9, 0.5) + 0.01 * curves["seed"])
    assert set(report.plateau(up)["verdict"]) == {"rising"}
    down = up.assign(success=1.4 - up["success"])
    assert set(report.plateau(down)["verdict"]) == {"falling"}
    assert set(report.plateau(up[up["seed"] == 0])["verdict"]) == {"one seed"}
    assert report.plateau(curves, metric="return")["return_last"].notna().all()


def test_report_says_whether_training_went_flat(sweep_dir):
    paths = report.make_report(sweep_dir)
    text = paths["table"].read_text()
    assert "## Has training gone flat?" in text and "| londi_b-b4 | 3 | 100 -> 200 |" in text
    saved = pd.read_csv(paths["learning_curve_csv"])
    assert {"env_steps", "success", "deepthink_calls", "label", "seed"} <= set(saved.columns)


def _set(run: Path, keys: dict) -> None:
    """Set dotted keys (`deepthink._target_`) in a run's config.yaml."""
    cfg = OmegaConf.load(run / "config.yaml")
    for key, value in keys.items():
        OmegaConf.update(cfg, key, value, force_add=True)
    OmegaConf.save(cfg, run / "config.yaml")


def _londi_runs(root: Path, configs: list[dict], seeds=(0, 1)) -> list[Path]:
    """LONDI c=0.05 runs, one per (config, seed), each config's dotted keys set; every run's seed copies and
    bookkeeping keys differ."""
    rng = np.random.default_rng(3)
    made = []
    for n, keys in enumerate(configs):
        for seed in seeds:
            run = root / f"{n}_londi-c0.05-s{seed}"
            _write_run(run, "londi", None, seed, 0.3 + 0.3 * n, 2 + 4 * n, rng)
            _set(run, {"switcher.cost": 0.05, "quick.seed": seed, "run_dir": str(run), "logger.wandb.name": run.name,
                       "threads": 1 + seed, "eval_every": 100 * (1 + seed), "experiment_name": f"e{seed}", **keys})
            made.append(run)
    return made


def test_runs_of_one_setting_whose_configs_differ_are_separate_rows_named_by_the_keys(tmp_path):
    """Two DEEPTHINK models and two training lengths under one folder: two rows, never one averaged mix."""
    _londi_runs(tmp_path / "same", [{"deepthink._target_": "expert", "total_steps": 200}])
    same = report.make_report(tmp_path / "same")
    agg = pd.read_csv(same["summary"])
    # seeds differ in the seed, its copies and bookkeeping keys only: one row, its label unchanged
    assert len(agg) == 1 and agg["seeds"].iloc[0] == 2 and agg["setting"].isna().all()
    assert "split by config" not in same["table"].read_text()

    _londi_runs(tmp_path / "mix", [{"deepthink._target_": "expert", "total_steps": 200},
                                   {"deepthink._target_": "distilled", "total_steps": 50000}])
    paths = report.make_report(tmp_path / "mix")
    agg = pd.read_csv(paths["summary"]).set_index("setting")
    assert sorted(agg.index) == ["deepthink._target_=distilled, total_steps=50000",
                                 "deepthink._target_=expert, total_steps=200"]
    assert agg["seeds"].tolist() == [2, 2] and agg["runs"].tolist() == [2, 2]
    runs = pd.read_csv(paths["runs"])
    expert = runs[runs["setting"] == "deepthink._target_=expert, total_steps=200"]
    assert agg.loc["deepthink._target_=expert, total_steps=200", "success"] == pytest.approx(expert["success"].mean())
    text = paths["table"].read_text()
    assert "**Rows split by config**" in text and "BOOKKEEPING_KEYS" in text
    assert "londi-c0.05: split by `deepthink._target_`, `total_steps` into 2 rows" in text
    assert len(_rows(text, "londi")) == 2
    assert "| londi-c0.05 (deepthink._target_=distilled, total_steps=50000) |" in text  # the figures' labels too


def test_a_key_only_some_runs_have_splits_too_and_shows_as_unset(tmp_path):
    runs = _londi_runs(tmp_path, [{}])
    _set(runs[1], {"env.simplification": "easy"})
    agg = pd.read_csv(report.make_report(tmp_path)["summary"])
    assert sorted(agg["setting"]) == ["env.simplification=easy", "env.simplification=unset"]


def test_two_runs_of_one_row_with_the_same_seed_are_an_error_naming_both(tmp_path):
    a, b = _londi_runs(tmp_path, [{}, {}], seeds=(0,))
    with pytest.raises(ValueError, match=rf"{re.escape(str(a))} and {re.escape(str(b))} are both seed 0 of "
                                         r"babyai_text/goto_local londi-c0.05.*remove one"):
        report.make_report(tmp_path)


def test_runs_of_one_seed_that_differ_in_a_bookkeeping_setting_are_rows_not_an_error(tmp_path):
    a, b = _londi_runs(tmp_path, [{"threads": 1}, {"threads": 2}], seeds=(0,))  # e.g. threads=1,2 at seed 0
    agg = pd.read_csv(report.make_report(tmp_path)["summary"])
    assert sorted(agg["setting"]) == ["threads=1", "threads=2"] and (agg["seeds"] == 1).all()


def _evaluated(run: Path, split: str, env_id: str, success: float, overrides: dict | None = None,
               calls: int | None = None) -> None:
    """eval.csv and eval.json as londi-evaluate leaves them, every episode at `success` (and `calls`);
    `overrides=None` writes an eval.json from before londi-evaluate recorded them."""
    ep = pd.read_csv(run / "episodes.csv").query("phase == 'eval'").assign(success=success, split=split,
                                                                            global_step=200)
    if calls is not None:
        ep = ep.assign(deepthink_calls=calls, deepthink_flops=calls * DEEP_FLOPS)
    ep.to_csv(run / "eval.csv", index=False)
    info = {"split": split, "env_id": env_id, "seed_offset": 2_000_000, "device_kinds": {}}
    (run / "eval.json").write_text(json.dumps(info if overrides is None else {**info, "overrides": overrides}))


def test_evaluate_source_says_the_split_and_keeps_splits_apart(tmp_path):
    runs = _londi_runs(tmp_path, [{}])
    for run in runs:
        _evaluated(run, "test", "BabyAI-Text-MixedTestLocal-v0", 0.4, overrides={})
    paths = report.make_report(tmp_path, source="evaluate")
    text = paths["table"].read_text()
    assert ("Evaluation episodes (londi-evaluate) on split `test`, env_id `BabyAI-Text-MixedTestLocal-v0` "
            "for every run.") in text
    agg = pd.read_csv(paths["summary"])
    assert len(agg) == 1 and agg["setting"].isna().all() and agg["eval_split"].tolist() == ["test"]
    assert agg["eval_overrides"].tolist() == ["none"] and "londi-evaluate overrides (`+override.<key>=<value>`): none." in text

    _evaluated(runs[1], "train", "BabyAI-Text-MixedTrainLocal-v0", 0.9, overrides={})
    paths = report.make_report(tmp_path, source="evaluate")
    agg = pd.read_csv(paths["summary"]).set_index("eval_split")
    assert agg.loc["test", "success"] == 0.4 and agg.loc["train", "success"] == 0.9
    assert agg.loc["train", "setting"] == "eval.env_id=BabyAI-Text-MixedTrainLocal-v0, eval.split=train"
    text = paths["table"].read_text()
    assert "**Evaluated on different splits or envs**" in text
    assert "- split `train`, env_id `BabyAI-Text-MixedTrainLocal-v0`: 1 run" in text


def _with_faults(run: Path, fallbacks: int, env_restarts: int, phase_step: int = 200) -> None:
    """Give the run's evaluation at `phase_step` these faults in its first episode."""
    ep = pd.read_csv(run / "episodes.csv")
    ep["fallbacks"], ep["env_restarts"] = 0, 0
    first = ep.index[(ep["phase"] == "eval") & (ep["env_steps"] == phase_step)][0]
    ep.loc[first, ["fallbacks", "env_restarts"]] = fallbacks, env_restarts
    ep.to_csv(run / "episodes.csv", index=False)


def test_runs_with_fallbacks_or_env_restarts_are_tabulated_and_said_loudly(sweep_dir):
    deep0 = next(p for p in sweep_dir.iterdir() if p.name.endswith("always_deepthink-s0"))
    quick1 = next(p for p in sweep_dir.iterdir() if p.name.endswith("always_quick-s1"))
    _with_faults(deep0, fallbacks=12, env_restarts=0)
    _with_faults(quick1, fallbacks=0, env_restarts=3, phase_step=100)  # an earlier evaluation: not the final one
    paths = report.make_report(sweep_dir)
    text = paths["table"].read_text()
    agg = pd.read_csv(paths["summary"]).set_index("switcher")
    assert agg.loc["always_deepthink", "seeds"] == 3 and agg.loc["always_quick", "seeds"] == 3
    assert agg.loc["always_deepthink", "fallbacks"] == 12
    assert agg.loc["always_quick", "env_restarts"] == 0  # its restarts were in an earlier evaluation
    assert "**1 run in the table had DEEPTHINK fallbacks or env restarts in the final evaluation**" in text
    assert "left out of the table" not in text
    line = next(x for x in text.splitlines() if deep0.name in x)
    assert "12 DEEPTHINK fallbacks (DEEPTHINK failed and QUICK acted) in 1 of 8 episodes" in line
    assert "in the table" in line and "not in the table" not in line
    runs = pd.read_csv(paths["runs"]).set_index("path")
    assert runs.loc[str(deep0), "fallbacks"] == 12 and runs.loc[str(deep0), "in_table"]
    assert math.isnan(runs.loc[str(next(sweep_dir.glob("*londi_b-s0"))), "fallbacks"])  # not logged: unknown, not 0
    assert "## Unfinished and failed runs" not in text  # it finished: listed with its faults, not as unfinished


def test_an_env_with_two_always_deepthink_configs_has_no_compute_saved(tmp_path):
    """Split references: measuring each row against whichever came first would be a silent choice."""
    rng = np.random.default_rng(4)
    for n, path in enumerate(["a", "b"]):
        for seed in (0, 1):
            run = tmp_path / f"{n}_always_deepthink-s{seed}"
            _write_run(run, "always_deepthink", None, seed, 0.9, 20, rng)
            _set(run, {"deepthink.path": path})
    _write_run(tmp_path / "2_always_quick-s0", "always_quick", None, 0, 0.2, 0, rng)
    paths = report.make_report(tmp_path)
    agg = pd.read_csv(paths["summary"])
    assert len(agg) == 3 and agg["compute_saved"].isna().all()
    assert "**Compute saved left blank on babyai_text/goto_local**: it has 2 always_deepthink rows" in (
        paths["table"].read_text())


def test_evaluate_source_labels_and_splits_rows_by_londi_evaluates_overrides(tmp_path):
    """londi_b trained at budget 4 and evaluated with +override.switcher.budget=0 is budget 0 with 0 calls, in a
    row of its own: not beside the b4 runs evaluated as trained, nor beside runs trained at budget 0."""
    rng = np.random.default_rng(5)
    cases = {"b4": (4, {}, 4), "b4_at_0": (4, {"switcher.budget": 0}, 0), "b0": (0, {}, 0)}
    for name, (budget, overrides, calls) in cases.items():
        for seed in (0, 1):
            run = tmp_path / f"{name}-s{seed}"
            _write_run(run, "londi_b", budget, seed, 0.5, calls, rng)
            _evaluated(run, "test", "BabyAI-Text-GoToLocal-v0", 0.5, overrides, calls)
    paths = report.make_report(tmp_path, source="evaluate")
    agg = pd.read_csv(paths["summary"]).fillna({"setting": "-"}).set_index("setting")
    assert sorted(agg.index) == ["+override.switcher.budget=0 (trained 4)", "-", "-"]
    overridden = agg.loc["+override.switcher.budget=0 (trained 4)"]
    assert overridden["budget"] == 0 and overridden["deepthink_calls"] == 0 and overridden["seeds"] == 2
    assert overridden["eval_overrides"] == "switcher.budget=0"
    assert sorted(agg.loc["-", "budget"]) == [0, 4] and (agg.loc["-", "eval_overrides"] == "none").all()
    text = paths["table"].read_text()
    assert "**Evaluated with overrides**" in text and "- `switcher.budget=0`: 2 runs" in text
    assert "| londi_b | 0 | - | +override.switcher.budget=0 (trained 4) | 2 |" in text
    runs = pd.read_csv(paths["runs"]).set_index("path")
    assert runs.loc[str(tmp_path / "b4_at_0-s0"), "budget"] == 0


def test_evaluate_source_says_when_an_eval_json_cannot_tell_its_overrides(tmp_path):
    old, bad = _londi_runs(tmp_path, [{}], seeds=(0, 1))
    _evaluated(old, "test", "BabyAI-Text-GoToLocal-v0", 0.5, overrides=None)  # before the record existed
    _evaluated(bad, "test", "BabyAI-Text-GoToLocal-v0", 0.5, overrides={})
    text = report.make_report(tmp_path, source="evaluate")["table"].read_text()
    assert "**The eval.json of 1 run predates the record of overrides**" in text
    _evaluated(bad, "test", "BabyAI-Text-GoToLocal-v0", 0.5, overrides={"switcher.nope": 1})
    with pytest.raises(ValueError, match=r"records \+override.switcher.nope, which the run's config.yaml lacks"):
        report.make_report(tmp_path, source="evaluate")
