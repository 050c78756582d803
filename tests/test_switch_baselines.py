"""Baseline switchers: oracle calls = disagreements, random call rate, heuristic rules, registry."""

import pytest

from londi.lm import ExpertPolicy
from londi.runner import run_episodes
from londi.switch import make_switcher, registered_switchers
from londi.switch.encoders import HashedNgramEncoder
from londi.switch.env import SwitchingEnv
from londi.switch.toy import CorridorTextEnv, NoisyExpertPolicy


def _env(sw, quick=None):
    return SwitchingEnv(CorridorTextEnv(length=10, max_steps=30), quick or NoisyExpertPolicy(hard_error=0.6),
                        ExpertPolicy(name="d"), encoder=HashedNgramEncoder(16), **sw.env_options(False))


def test_oracle_calls_deepthink_exactly_where_quick_disagrees_with_expert():
    sw = make_switcher("oracle")
    env = _env(sw)
    env.reset(seed=0)
    disagreements = calls = 0
    for _ in range(300):
        ctx = env.context()
        disagreements += ctx.quick.action != ctx.state.expert()
        _, _, term, trunc, info = env.step(sw.decide(env.current_obs(), ctx))
        calls += info["switch"]["decision"]
        assert info["switch"]["usage"]["quick"]["calls"] == 1  # QUICK is read on every state, once
        if term or trunc:
            assert info["switch"]["episode"]["success"]  # following the expert everywhere solves it
            env.reset()
    assert calls == disagreements > 0


def test_random_switcher_calls_at_rate_p_and_is_reproducible():
    sw = make_switcher("random", p=0.3)
    a = run_episodes(_env(sw), sw, 40, seed=1)
    b = run_episodes(_env(sw), sw, 40, seed=1)
    assert [e["deepthink_calls"] for e in a] == [e["deepthink_calls"] for e in b]
    frac = sum(e["deepthink_calls"] for e in a) / sum(e["env_steps"] for e in a)
    assert 0.2 < frac < 0.4
    with pytest.raises(ValueError):
        make_switcher("random", p=1.5)


def test_always_baselines_and_heuristic_bounds():
    quick_only = run_episodes(_env(make_switcher("always_quick")), make_switcher("always_quick"), 20, seed=2)
    dt_sw = make_switcher("always_deepthink")
    deep = run_episodes(_env(dt_sw), dt_sw, 20, seed=2)
    assert sum(e["deepthink_calls"] for e in quick_only) == 0
    assert all(e["quick_calls"] == 0 and e["success"] for e in deep)
    h = make_switcher("heuristic", max_consecutive=2)
    env = _env(h)
    env.reset(seed=3)
    streak = 0
    for _ in range(300):
        _, _, term, trunc, info = env.step(h.decide(env.current_obs(), env.context()))
        streak = streak + 1 if info["switch"]["decision"] else 0
        assert streak <= 2
        if term or trunc:
            env.reset()


def test_registry_lists_every_switcher_and_names_unknown_ones():
    assert {"londi", "londi_b", "lagrangian", "always_quick", "always_deepthink", "random", "heuristic", "oracle"} <= set(
        registered_switchers()
    )
    with pytest.raises(KeyError, match="registered"):
        make_switcher("nope")


@pytest.mark.parametrize("name", ["always_deepthink", "random"])
def test_switchers_that_ignore_the_state_do_not_pay_for_an_encoders_quick_features(name):
    from londi.runner import make_switching_env
    from londi.switch.toy import CorridorTextEnv

    sw = make_switcher(name, **({"p": 0.5} if name == "random" else {}))
    quick = NoisyExpertPolicy(hard_error=0.6)
    env = make_switching_env(lambda: CorridorTextEnv(length=10, max_steps=30), quick, ExpertPolicy(name="d"), sw,
                             HashedNgramEncoder(16, quick_features=True), seed=0, train=False)
    eps = run_episodes(env, sw, 5, seed=0)
    assert quick.meter.total().calls == sum(e["quick_calls"] for e in eps)  # only the states QUICK acted on
    londi = make_switcher("londi")
    env = make_switching_env(lambda: CorridorTextEnv(length=10, max_steps=30), quick, ExpertPolicy(name="d"), londi,
                             HashedNgramEncoder(16, quick_features=True), seed=0, train=False)
    assert env.quick_first  # a switcher that reads the encoding still gets QUICK's features
