"""londi-cascade composes and writes its run folder; the per-state cascade switcher routes and learns."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hydra import compose, initialize_config_dir

from londi.cascade.router import OnlineNgramPolicy
from londi.lm.policy import ActResult
from londi.lm.state import TextState
from londi.runner import make_switching_env
from londi.switch.base import DEEPTHINK, QUICK, DecisionContext, Transition
from londi.switch.toy import CorridorTextEnv
from tests.helpers import expert, hashed, switcher

CONFIGS = str((__import__("pathlib").Path(__file__).parents[1] / "configs").resolve())


def test_app_runs_a_small_stream_and_writes_csv_and_summary(tmp_path):
    from londi.cascade.app import run

    with initialize_config_dir(config_dir=CONFIGS, version_base="1.3"):
        cfg = compose(
            "cascade_app",
            overrides=["cascade.stream.n=120", "cascade/levels=ngram_unigram_given", f"run_dir={tmp_path}",
                       "log_every=50", "progress=false"],
        )
    summary = run(cfg)
    assert (tmp_path / "metrics.csv").read_text().count("\n") == 1 + 3  # 50, 100, final 120
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert saved["cascade/items"] == 120 and saved["levels"] == ["lr", "llm"]
    assert saved["costs_paper_units"][1] == 1.0 and saved["costs_paper_units"][0] < 1e-3
    assert summary["compute/llm_calls"] == round(summary["cascade/final_call_frac"] * 120)


def _state(text: str) -> TextState:
    return TextState(obs=text, mission="go to the red ball", admissible_actions=("turn left", "turn right", "go forward"))


def test_online_ngram_quick_learns_from_deepthink_actions():
    q = OnlineNgramPolicy(name="quick", n_features=2**12, ngram_range=(1, 2), lr=1.0)
    s_left, s_fwd = _state("ball 2 steps left"), _state("ball 3 steps forward")
    for _ in range(20):
        q.learn([s_left, s_fwd], [0, 2])
    assert q.act_one(s_left).action == "turn left" and q.act_one(s_fwd).action == "go forward"
    assert q.meter.totals["quick"].calls == 2 and q.meter.totals["quick/train"].flops > 0


@pytest.mark.parametrize("objective", ["error", "cascade"])
def test_cascade_switcher_defers_on_uncertain_quick_and_learns_to_stop(objective):
    q = OnlineNgramPolicy(name="quick", n_features=2**12, ngram_range=(1, 2), lr=1.0)
    sw = switcher("cascade", "switcher.mu=0.3", "switcher.forced_p0=0.0", "seed=0", f"switcher.head_objective={objective}")
    sw.setup(type("Env", (), {"quick": q})(), seed=0)
    s = _state("ball 2 steps left")
    rng = np.random.default_rng(0)

    def decide():
        quick = q.act_one(s)
        return sw.decide(np.zeros(1), DecisionContext(state=s, action_mask=np.array([1, 1]), rng=rng, quick=quick)), quick

    first, _ = decide()
    assert first == DEEPTHINK  # uniform QUICK, head initialised defer-leaning
    masked = sw.decide(np.zeros(1), DecisionContext(state=s, action_mask=np.array([1, 0]), rng=rng, quick=q.act_one(s)))
    assert masked == QUICK  # never DEEPTHINK where it is masked (exhausted budget)
    for _ in range(60):  # DEEPTHINK keeps answering "turn left": QUICK is distilled, the head learns to trust it
        _, quick = decide()
        sw.observe(Transition(obs=np.zeros(1), acted=DEEPTHINK, reward=0.0, next_obs=np.zeros(1), terminated=False,
                              truncated=False, state=s, quick=quick, deepthink=ActResult(0, "turn left"), info={}))
    last, quick = decide()
    assert quick.action == "turn left" and last == QUICK
    assert sw.metrics()["cascade/head_updates"] == 60


def test_cascade_switcher_error_objective_threshold_is_mu():
    sw = switcher("cascade", "switcher.mu=0.3", "switcher.forced_p0=0.0", "seed=0")
    assert sw.head_objective == "error"
    rng = np.random.default_rng(0)
    s = _state("ball 2 steps left")
    ctx = DecisionContext(state=s, action_mask=np.array([1, 1]), rng=rng, quick=ActResult(0, "turn left", scores=np.zeros(3)))
    sw.d = lambda quick: 0.29  # type: ignore[method-assign]
    assert sw.decide(np.zeros(1), ctx) == QUICK
    sw.d = lambda quick: 0.31  # type: ignore[method-assign]
    assert sw.decide(np.zeros(1), ctx) == DEEPTHINK
    from hydra.errors import ConfigCompositionException

    with pytest.raises(ConfigCompositionException, match="head_objective"):
        switcher("cascade", "switcher.head_objective=nope")  # not a choice: fails at composition


def test_quicks_online_distillation_is_charged_to_the_step_and_episode_it_learns_from():
    """`switcher=cascade` trains QUICK in `observe`, after the env's step: that compute (`quick/train`) must
    still reach the step's usage (compute/*) and its episode's row (episodes.csv), as the runner reads them."""
    quick = OnlineNgramPolicy(name="quick", n_features=2**12, ngram_range=(1, 2), lr=1.0)
    sw = switcher("cascade", "seed=0")  # forced deferral early on: DEEPTHINK answers, QUICK learns from it
    n = 2
    vec = make_switching_env(lambda: CorridorTextEnv(length=6, max_steps=8), quick, expert("deepthink", 10**6), sw,
                             hashed(16), seed=3, train=True, n_envs=n)
    sw.setup(vec, seed=0, total_steps=60)
    steps: list[dict] = []
    sw.learn(vec, 60, steps.append)  # on_step gets env 0's step, then env 1's, every vector step
    assert quick.meter.totals["quick/train"].flops > 0
    billed = sum(info["switch"]["usage"]["quick"]["flops"] for info in steps)
    pending = sum(e.state_dict()["pending"]["quick"]["flops"] for e in vec.envs)  # QUICK's reads of the next states
    assert billed + pending == pytest.approx(quick.meter.total().flops)  # every FLOP, the updates' too, is billed
    running, ended = [0.0] * n, 0
    for k, info in enumerate(steps):
        running[k % n] += info["switch"]["usage"]["quick"]["flops"]
        if "episode" in info["switch"]:
            row = info["switch"]["episode"]
            assert row["quick_flops"] == pytest.approx(running[k % n])  # its steps' bills, updates included
            assert row["total_flops"] == pytest.approx(row["quick_flops"] + row["deepthink_flops"])
            running[k % n], ended = 0.0, ended + 1
    assert ended >= 2
    with pytest.raises(RuntimeError, match="last finished step"):
        vec.envs[0].charge_after_step(steps[0], "quick", {"flops": 1.0})  # a stale step's bill is closed
