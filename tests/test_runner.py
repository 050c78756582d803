"""The run API: run-dir files and metric names, evaluate(), and kill/resume giving identical results."""

import csv

import pytest

from londi.cascade.router import OnlineNgramPolicy
from londi.runner import evaluate, run
from londi.switch.toy import CorridorTextEnv, NoisyExpertPolicy
from tests.helpers import expert, hashed, switcher

DETERMINISTIC_DROP = ("charts/SPS", "compute/quick_seconds", "compute/deepthink_seconds", "compute/gpu_seconds")


SB3_FAST = ("switcher.dqn.learning_starts=50", "switcher.dqn.target_update_interval=50")


def _args(tmp, name="londi", *overrides):
    extra = ("switcher.cost=0.05", *SB3_FAST) if name == "londi" else ()
    return dict(env_fn=lambda: CorridorTextEnv(length=8, max_steps=20), quick=NoisyExpertPolicy(),
                deepthink=expert("deepthink", 10**6), switcher=switcher(name, *extra, *overrides), run_dir=tmp,
                seed=3, total_steps=400, eval_episodes=5, eval_every=100, log_every=20, encoder=hashed(32))


_run_args = _args


def _rows(path, drop=()):
    with open(path, newline="") as f:
        return [{k: v for k, v in r.items() if k not in drop and not k.endswith("device_seconds")} for r in csv.DictReader(f)]


def test_run_writes_episodes_and_metrics_with_design_names(tmp_path):
    res = run(**_args(tmp_path / "r"))
    assert res.total_steps == 400 and len(res.evals) == 4  # after 100, 200, 300 and the final one
    m = _rows(tmp_path / "r" / "metrics.csv")
    for key in ("charts/episodic_return", "charts/success_rate", "charts/SPS", "switch/deepthink_frac", "switch/cost",
                "budget/remaining", "budget/violations", "compute/quick_calls", "compute/deepthink_flops",
                "compute/gpu_seconds", "compute/total_flops", "losses/loss", "eval/success_rate"):
        assert key in m[0], key
    e = _rows(tmp_path / "r" / "episodes.csv")
    assert {"train", "eval"} == {r["phase"] for r in e}
    for key in ("episode", "env_steps", "return", "success", "quick_calls", "deepthink_calls", "deepthink_flops",
                "total_flops"):
        assert key in e[0]
    train_steps = sum(int(r["env_steps"]) for r in e if r["phase"] == "train")
    assert train_steps <= 400
    scores = evaluate(tmp_path / "r", _args(None)["env_fn"], NoisyExpertPolicy(), expert("deepthink", 10**6),
                      switcher("londi", "switcher.cost=0.05", *SB3_FAST), episodes=5, encoder=hashed(32))
    assert {r["global_step"] for r in scores["episodes"]} == {400}
    assert scores["eval/success_rate"] == pytest.approx(res.final_eval["eval/success_rate"])
    assert scores["eval/deepthink_calls"] == pytest.approx(res.final_eval["eval/deepthink_calls"])
    again = run(**_args(tmp_path / "r"))  # a finished run returns its stored result
    assert again.final_eval == res.final_eval


class _Crash(Exception):
    pass


@pytest.mark.parametrize("name", ["londi", "lagrangian", "cascade"])
def test_kill_and_resume_gives_identical_metrics(tmp_path, name):
    extra = ("switcher.target_calls=1.0", "switcher.rule=pid") if name == "lagrangian" else ()

    def _args(tmp, *a, **kw):  # the cascade distils DEEPTHINK into a QUICK that learns: its state resumes too
        args = _run_args(tmp, *a, **kw)
        if name == "cascade":
            args["quick"] = OnlineNgramPolicy(name="quick", n_features=2**10, ngram_range=(1, 2), lr=1.0)
        return args

    full = run(**_args(tmp_path / "full", name, *extra))
    # stop cleanly mid-run, then crash after the next checkpoint (rows past it get written, then truncated)
    run(**_args(tmp_path / "cut", name, *extra), stop_after_steps=130)

    def crash(step, metrics):
        if step == 260:
            raise _Crash

    with pytest.raises(_Crash):
        run(**_args(tmp_path / "cut", name, *extra), callbacks=[crash])
    resumed = run(**_args(tmp_path / "cut", name, *extra))
    assert resumed.resumed_from == 200
    assert resumed.final_eval == full.final_eval
    for f in ("metrics.csv", "episodes.csv"):
        assert _rows(tmp_path / "cut" / f, DETERMINISTIC_DROP) == _rows(tmp_path / "full" / f, DETERMINISTIC_DROP), f


def test_rule_based_switcher_runs_through_the_same_loop(tmp_path):
    res = run(**_args(tmp_path / "o", "oracle"))
    assert res.final_eval["eval/success_rate"] == 1.0
    assert (tmp_path / "o" / "switcher" / "switcher.json").exists()


def test_runs_with_different_seeds_share_no_episode(tmp_path):
    seeds = {}
    for s in (0, 1, 2):
        args = _args(tmp_path / f"s{s}", "always_quick")
        args.update(seed=s, total_steps=100, eval_every=100)
        run(**args)
        rows = _rows(tmp_path / f"s{s}" / "episodes.csv")
        seeds[s] = {ph: {int(r["episode_seed"]) for r in rows if r["phase"] == ph} for ph in ("train", "eval")}
        assert len(seeds[s]["eval"]) == 5 and seeds[s]["train"]
        assert not seeds[s]["train"] & seeds[s]["eval"]
    for a, b in ((0, 1), (1, 2), (0, 2)):
        for ph in ("train", "eval"):
            assert not seeds[a][ph] & seeds[b][ph], (a, b, ph)  # with seed+k streams 0 and 1 shared all but one


def test_a_metric_that_appears_after_the_first_row_is_an_error_not_a_dropped_column(tmp_path):
    args = _args(tmp_path / "r", "always_quick")
    sw, calls = args["switcher"], []

    def metrics():  # a key only after a few rows: metrics.csv's columns are already fixed
        calls.append(1)
        return {"switch/late": 1.0} if len(calls) > 4 else {}

    sw.metrics = metrics
    with pytest.raises(RuntimeError, match=r"metrics \['switch/late'\] appeared after metrics.csv's columns"):
        run(**args)


def test_a_finished_run_started_again_still_ends_its_loggers(tmp_path):
    closed: list[bool] = []

    class Recorder:  # stands in for W&B, whose run must be finished by every start
        def log_metrics(self, step, metrics): ...

        def log_episode(self, row): ...

        def on_resume(self, episodes_csv): ...

        def close(self, failed: bool = False) -> None:
            closed.append(failed)

    run(**_args(tmp_path / "r", "always_quick"), loggers=[Recorder()])
    again = run(**_args(tmp_path / "r", "always_quick"), loggers=[Recorder()])
    assert again.final_eval is not None
    assert closed == [False, False]  # was [False]: the second start returned before closing
