"""LONDI-B: the hard budget is never exceeded, whatever the switcher asks for; the masked DQN respects it."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from londi.errors import ConfigError
from londi.switch.baselines import AlwaysDeepthink
from londi.switch.env import SwitchingEnv
from londi.switch.sb3 import MASKED_Q
from londi.switch.toy import CorridorTextEnv
from londi.switch.vec import SwitchingVecEnv
from tests.helpers import expert, hashed, random_policy, switcher


class AlwaysAsk(AlwaysDeepthink):
    """Ignores the mask: asks for DEEPTHINK at every state."""

    def decide(self, obs, ctx):
        return 1


@settings(max_examples=25, deadline=None)
@given(budget=st.integers(0, 6), seed=st.integers(0, 10_000), episodes=st.integers(1, 4),
       randomised=st.booleans())
def test_budget_never_exceeded(budget, seed, episodes, randomised):
    env = SwitchingEnv(CorridorTextEnv(length=12, max_steps=15), random_policy("q"), random_policy("d"),
                       encoder=hashed(16), budget=budget,
                       budget_range=(0, budget) if randomised else None, seed=seed)
    sw = AlwaysAsk()
    for _ in range(episodes):
        obs, info = env.reset()
        n = info["switch"]["budget"]
        calls = 0
        while True:
            _, _, term, trunc, info = env.step(sw.decide(obs, env.context()))
            calls += info["switch"]["deepthink_acted"]
            assert info["switch"]["episode_calls"] <= n
            if term or trunc:
                break
        assert calls == info["switch"]["episode"]["deepthink_calls"] <= n
        assert calls == min(n, info["switch"]["episode"]["env_steps"])  # every allowed request was granted


def test_masked_dqn_never_picks_deepthink_at_zero_budget():
    env = SwitchingVecEnv([SwitchingEnv(CorridorTextEnv(), random_policy("q"), expert("d"), encoder=hashed(16),
                                        budget=1, budget_obs=True)])
    sw = switcher("londi_b", "switcher.budget=1", "switcher.cost=0.0")
    sw.setup(env, seed=0, total_steps=100)
    obs = np.random.default_rng(0).normal(size=(64, 17)).astype(np.float32)
    obs[:, -1] = 0.0
    q = sw.model.q_net(torch.as_tensor(obs))
    assert torch.all(q[:, 1] == MASKED_Q)
    sw.model.exploration_rate = 1.0  # pure exploration still respects the mask
    actions, _ = sw.model.predict(obs, deterministic=False)
    assert actions.shape == (64,) and not actions.any()
    obs[:, -1] = 1.0
    sw.model.exploration_rate = 1.0
    actions, _ = sw.model.predict(obs, deterministic=False)
    assert actions.any()


def test_londi_b_trains_on_the_budget_it_is_evaluated_at():
    """The default training range reaches the budget; an explicit range that misses it stops with the fix."""
    assert switcher("londi_b", "switcher.budget=2").budget_range == (0, 8)  # budgets 1-8 of a sweep share one range
    assert switcher("londi_b", "switcher.budget=16").budget_range == (0, 16)
    assert switcher("londi_b", "switcher.budget=3", "switcher.budget_range=null").budget_range is None
    with pytest.raises(ConfigError, match=r"budget 11 is outside budget_range \[0, 8\].*switcher\.budget_range=\[0,11\]"):
        switcher("londi_b", "switcher.budget=11", "switcher.budget_range=[0,8]")
    with pytest.raises(ConfigError, match=r"budget 1 is outside budget_range \[2, 4\]"):
        switcher("londi_b", "switcher.budget=1", "switcher.budget_range=[2,4]")
