"""SwitchingEnv: rewards and costs, masks, who gets called, fallback, mid-episode restore, Gymnasium's checker."""

import logging

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import envs
import londi.lm.usage
from londi.lm import LMPolicy, PolicyError
from londi.switch.env import SwitchingEnv
from londi.switch.toy import CorridorTextEnv, NoisyExpertPolicy
from tests.helpers import expert, hashed, random_policy


def _env(**kw):
    kw.setdefault("encoder", hashed(32))
    return SwitchingEnv(CorridorTextEnv(length=10, max_steps=30), kw.pop("quick", random_policy("q")),
                        kw.pop("deepthink", expert("d")), **kw)


class Down(LMPolicy):
    def _act(self, states, usage, return_hidden):
        usage.calls += len(states)
        raise PolicyError("endpoint down")


def test_spaces_hold_what_the_env_returns():
    env = _env(cost=0.1, budget=3)
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs) and env.action_space.n == 2
    obs, r, *_ = env.step(env.action_space.sample())
    assert env.observation_space.contains(obs) and isinstance(r, float)


def test_reward_is_env_reward_minus_cost_of_deepthink_only():
    env = _env(cost=0.25)
    env.reset(seed=3)
    for t in range(40):
        a = t % 2
        _, r, term, trunc, info = env.step(a)
        sw = info["switch"]
        assert sw["deepthink_acted"] == a
        assert r == pytest.approx(sw["env_reward"] - (0.25 if a else 0.0))
        if term or trunc:
            env.reset()


def test_only_the_chosen_model_is_called_and_usage_is_reported():
    env = _env()
    env.reset(seed=0)
    _, _, _, _, info = env.step(0)
    u = info["switch"]["usage"]
    assert (u["quick"]["calls"], u["deepthink"]["calls"]) == (1, 0)
    _, _, _, _, info = env.step(1)
    u = info["switch"]["usage"]
    assert (u["quick"]["calls"], u["deepthink"]["calls"]) == (0, 1)
    assert env.quick.meter.total().calls == 1 and env.deepthink.meter.total().calls == 1


def test_quick_first_is_counted_once_and_reused():
    env = _env(needs_quick_output=True)
    env.reset(seed=0)
    ctx = env.context()
    assert ctx.quick is not None
    _, _, _, _, info = env.step(0)
    assert info["switch"]["usage"]["quick"]["calls"] == 1  # computed first, reused to act
    _, _, _, _, info = env.step(1)
    assert info["switch"]["usage"]["quick"]["calls"] == 1 and info["switch"]["usage"]["deepthink"]["calls"] == 1


def test_deepthink_failure_falls_back_to_quick_and_is_reported(caplog):
    env = _env(deepthink=Down("down"))
    env.reset(seed=0)
    with caplog.at_level(logging.WARNING, logger="londi.switch.env"):
        for episode in range(2):
            steps = []
            while True:
                *_, term, trunc, info = env.step(1)
                steps.append(info["switch"])
                if term or trunc:
                    break
            env.reset()
            assert len(caplog.records) == episode + 1  # one warning per episode, not per step
            n = len(steps)
            assert steps[-1]["episode"]["fallbacks"] == n and f"failed {n} of the {n} times" in caplog.records[-1].getMessage()
    sw = steps[0]
    assert sw["fallback"] and sw["actor"] == "quick" and sw["deepthink_acted"] == 0
    assert sw["usage"]["deepthink"]["calls"] == 0 and sw["usage"]["quick"]["calls"] == 1  # no action, no call
    assert env.deepthink.meter.total().calls == 0 and steps[-1]["episode"]["deepthink_model_calls"] == 0
    strict = _env(deepthink=Down("down"), fallback_to_quick=False)
    strict.reset(seed=0)
    with pytest.raises(PolicyError):
        strict.step(1)


def test_deepthink_that_fails_when_looked_at_first_is_a_fallback_when_quick_acts():
    env = _env(deepthink=Down("down"), needs_quick_output=True, needs_deepthink_output=True)
    env.reset(seed=0)
    assert env.context().deepthink is None  # the look failed: the switcher decides without it
    *_, info = env.step(0)
    sw = info["switch"]
    assert sw["fallback"] and sw["actor"] == "quick" and sw["usage"]["deepthink"]["calls"] == 0
    strict = _env(deepthink=Down("down"), needs_deepthink_output=True, fallback_to_quick=False)
    with pytest.raises(PolicyError):
        strict.reset(seed=0)


def test_budget_mask_and_observation_feature():
    class Wait(LMPolicy):  # never reaches the goal, so the episode outlasts the budget
        def _act(self, states, usage, return_hidden):
            from londi.lm import ActResult

            usage.calls += len(states)
            return [ActResult(index=2, action="wait") for _ in states]

    env = _env(budget=2, cost=0.0, deepthink=Wait("wait"))
    obs, _ = env.reset(seed=1)
    assert obs[-1] == 1.0 and env.action_masks().tolist() == [True, True]
    obs, *_ = env.step(1)
    assert obs[-1] == pytest.approx(0.5)
    obs, *_ = env.step(1)
    assert obs[-1] == 0.0 and env.action_masks().tolist() == [True, False]
    _, _, _, _, info = env.step(1)
    assert info["switch"]["blocked"] and info["switch"]["deepthink_acted"] == 0 and info["switch"]["episode_calls"] == 2


def test_episode_seeds_are_reproducible_and_restore_mid_episode():
    a = _env(quick=NoisyExpertPolicy(), seed=5)
    a.reset()
    for _ in range(2):
        *_, term, trunc, _ = a.step(0)
        if term or trunc:
            a.reset()
    snap = a.state_dict()
    b = _env(quick=NoisyExpertPolicy(), seed=5)
    b.load_state_dict(snap)
    np.testing.assert_array_equal(a.current_obs(), b.current_obs())
    for t in range(60):
        oa, ra, ta, tra, ia = a.step(t % 3 == 0)
        ob, rb, tb, trb, ib = b.step(t % 3 == 0)
        np.testing.assert_array_equal(oa, ob)
        assert (ra, ta, tra) == (rb, tb, trb)
        if ta or tra:
            assert ia["switch"]["episode"]["deepthink_calls"] == ib["switch"]["episode"]["deepthink_calls"]
            a.reset()
            b.reset()


def test_episode_features_count_time_and_repeated_observations_before_the_budget():
    env = _env(encoder=hashed(32, episode_features=True), budget=4)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (32 + 2 + 1,) == env.observation_space.shape
    assert obs[-3] == 0.0 and obs[-2] == 0.0 and obs[-1] == 1.0  # no time used, first visit, full budget
    seen = {env.context().state.obs: 1}
    for t in range(1, 12):  # QUICK (random) walks a short corridor, so cells are revisited
        obs, _, term, trunc, _ = env.step(0)
        if term or trunc:
            break
        text = env.context().state.obs
        seen[text] = seen.get(text, 0) + 1
        assert obs[-3] == pytest.approx(t / 30)  # CorridorTextEnv(max_steps=30)
        assert obs[-2] == pytest.approx(min(1.0, (seen[text] - 1) / 3))
    assert max(seen.values()) > 1
    restored = _env(encoder=hashed(32, episode_features=True), budget=4)
    restored.load_state_dict(env.state_dict())
    assert np.allclose(restored.current_obs(), env.current_obs())  # the visit counts travel with a checkpoint


def test_reset_drops_usage_spent_on_an_abandoned_state():
    env = _env(needs_quick_output=True)  # QUICK runs on every new state before the decision
    env.reset(seed=0)
    env.step(1)  # QUICK has already run on the next state
    env.reset()  # ...which is abandoned here
    _, _, _, _, info = env.step(1)
    u = info["switch"]["usage"]
    assert (u["quick"]["calls"], u["deepthink"]["calls"]) == (1, 1)  # only this state's QUICK call


class _FrozenClock:
    """The meter's clock for one check: measured seconds become 0, so two seeded runs can be compared."""

    perf_counter = process_time = thread_time = staticmethod(lambda: 0.0)


@pytest.mark.parametrize("quick_first", [False, True])
def test_gymnasium_check_env(monkeypatch, quick_first):
    # check_env compares whole step infos across two seeded runs, and ours carry the measured seconds the runner
    # sums: those differ run to run because time does, not because the env does. Freezing the meter's clock
    # (not the meter) leaves everything else in the info (calls, tokens, FLOPs, budget, rewards) to compare.
    monkeypatch.setattr(londi.lm.usage, "time", _FrozenClock)
    env = SwitchingEnv(envs.make("BabyAI-Text-GoToLocal-v0"), random_policy("q"),
                       expert("d", 10**6), encoder=hashed(32),
                       needs_quick_output=quick_first, budget=3, cost=0.1)
    check_env(env, skip_render_check=True)


def test_backend_restarts_reach_the_episode_row():
    """A text env whose backend restarted (info["env_restarts"], e.g. ScienceWorld's JVM) says so in episodes.csv."""
    from londi.metrics import episode_row

    class Restarting(CorridorTextEnv):
        def step(self, action):
            obs, r, term, trunc, info = super().step(action)
            return obs, r, term, trunc, {**info, "env_restarts": 2}

    env = SwitchingEnv(Restarting(length=3, max_steps=10), random_policy("q"), expert("d"), encoder=hashed(32))
    env.reset(seed=0)
    done, info = False, {}
    while not done:
        _, _, term, trunc, info = env.step(1)
        done = term or trunc
    assert info["switch"]["episode"]["env_restarts"] == 2
    assert episode_row("train", 0, 5, info["switch"]["episode"])["env_restarts"] == 2
    plain = _env()
    plain.reset(seed=0)
    done = False
    while not done:
        _, _, term, trunc, info = plain.step(1)
        done = term or trunc
    assert info["switch"]["episode"]["env_restarts"] == 0


@pytest.mark.parametrize("overrides,limit", [([], 64), (["env.max_episode_steps=200"], 200),
                                             (["env.max_episode_steps=10"], 10)])
def test_horizon_is_the_configured_step_limit(overrides, limit):
    """The time feature t / horizon reads the level's real limit: `env.max_episode_steps` when set (larger or
    smaller than the level's 64), else the level's own."""
    from londi import build

    env = SwitchingEnv(build.env_fn(overrides)(), random_policy("q"), expert("d"),
                       encoder=hashed(32, episode_features=True))
    env.reset(seed=0)
    obs, _, term, trunc, _ = env.step(1)  # DEEPTHINK (the expert) needs more than one step on this seed
    assert not (term or trunc) and env.horizon() == limit
    assert obs[-2] == pytest.approx(1 / limit)
