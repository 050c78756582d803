"""Baseline switchers: oracle calls = disagreements, random call rate, heuristic rules, registry."""

import json
import logging

import pytest

from londi.lm import PolicyError
from londi.lm.baselines import ExpertPolicy
from londi.runner import run_episodes
from londi.switch.env import SwitchingEnv
from londi.switch.toy import CorridorTextEnv, NoisyExpertPolicy
from londi.switch.vec import SwitchingVecEnv
from tests.helpers import expert, hashed, switcher


def _env(sw, quick=None):
    return SwitchingEnv(CorridorTextEnv(length=10, max_steps=30), quick or NoisyExpertPolicy(hard_error=0.6),
                        expert("d"), encoder=hashed(16), **sw.env_options(False))


def test_oracle_calls_deepthink_exactly_where_quick_disagrees_with_expert():
    sw = switcher("oracle")
    env = _env(sw)
    env.reset(seed=0)
    disagreements = calls = 0
    for _ in range(300):
        ctx = env.context()
        disagreements += ctx.quick.action != ctx.state.expert()
        _, _, term, trunc, info = env.step(sw.decide(env.current_obs(), ctx))
        calls += info["switch"]["deepthink_acted"]
        assert info["switch"]["usage"]["quick"]["calls"] == 1  # QUICK is read on every state, once
        if term or trunc:
            assert info["switch"]["episode"]["success"]  # following the expert everywhere solves it
            env.reset()
    assert calls == disagreements > 0


def test_random_switcher_calls_at_rate_p_and_is_reproducible():
    sw = switcher("random", "switcher.p=0.3")
    a = run_episodes(SwitchingVecEnv([_env(sw)]), sw, 40, seed=1)
    b = run_episodes(SwitchingVecEnv([_env(sw)]), sw, 40, seed=1)
    assert [e["deepthink_calls"] for e in a] == [e["deepthink_calls"] for e in b]
    frac = sum(e["deepthink_calls"] for e in a) / sum(e["env_steps"] for e in a)
    assert 0.2 < frac < 0.4
    with pytest.raises(ValueError, match="p must be in"):
        switcher("random", "switcher.p=1.5")


def test_a_reloaded_random_switcher_plays_its_configured_p(tmp_path):
    """p is config, not state: a checkpoint (one that stored a p too) does not undo londi-evaluate's
    +override.switcher.p."""
    switcher("random", "switcher.p=0.1").save(tmp_path)
    (tmp_path / "switcher.json").write_text(json.dumps({"name": "random", "state": {"p": 0.1}}))  # older ones did
    sw = switcher("random", "switcher.p=0.9")
    sw.load(tmp_path)
    eps = run_episodes(SwitchingVecEnv([_env(sw)]), sw, 20, seed=1)
    assert sw.p == 0.9 and sum(e["deepthink_calls"] for e in eps) / sum(e["env_steps"] for e in eps) > 0.8


def test_always_baselines_and_heuristic_bounds():
    quick_only = run_episodes(SwitchingVecEnv([_env(switcher("always_quick"))]), switcher("always_quick"), 20, seed=2)
    dt_sw = switcher("always_deepthink")
    deep = run_episodes(SwitchingVecEnv([_env(dt_sw)]), dt_sw, 20, seed=2)
    assert sum(e["deepthink_calls"] for e in quick_only) == 0
    assert all(e["quick_calls"] == 0 and e["success"] for e in deep)
    h = switcher("heuristic", "switcher.max_consecutive=2")
    env = _env(h)
    env.reset(seed=3)
    streak = 0
    for _ in range(300):
        _, _, term, trunc, info = env.step(h.decide(env.current_obs(), env.context()))
        streak = streak + 1 if info["switch"]["deepthink_acted"] else 0
        assert streak <= 2
        if term or trunc:
            env.reset()


def test_every_switcher_option_builds_and_unknown_ones_are_named():
    from hydra.errors import MissingConfigException

    names = ["londi", "londi_b", "lagrangian", "always_quick", "always_deepthink", "random", "heuristic", "oracle",
             "cascade"]
    assert [type(switcher(n)).__name__ for n in names] == [
        "LondiSwitcher", "LondiBSwitcher", "LagrangianSwitcher", "AlwaysQuick", "AlwaysDeepthink", "RandomSwitcher",
        "HeuristicSwitcher", "OracleSwitcher", "CascadeSwitcher"]
    with pytest.raises(MissingConfigException, match="switcher/nope"):
        switcher("nope")


@pytest.mark.parametrize("name", ["always_deepthink", "random"])
def test_switchers_that_ignore_the_state_do_not_pay_for_an_encoders_quick_features(name):
    from londi.runner import make_switching_env
    from londi.switch.toy import CorridorTextEnv

    sw = switcher(name)
    quick = NoisyExpertPolicy(hard_error=0.6)
    env = make_switching_env(lambda: CorridorTextEnv(length=10, max_steps=30), quick, expert("d"), sw,
                             hashed(16, quick_features=True), seed=0, train=False)
    eps = run_episodes(env, sw, 5, seed=0)
    assert quick.meter.total().calls == sum(e["quick_calls"] for e in eps)  # only the states QUICK acted on
    londi = switcher("londi")
    env = make_switching_env(lambda: CorridorTextEnv(length=10, max_steps=30), quick, expert("d"), londi,
                             hashed(16, quick_features=True), seed=0, train=False)
    assert env.envs[0].quick_first  # a switcher that reads the encoding still gets QUICK's features


def _oracle_episodes(rule: str, deepthink, n_envs: int = 1, episodes: int = 12):
    sw = switcher("oracle", f"switcher.rule={rule}")
    quick = NoisyExpertPolicy(hard_error=0.6)
    envs_ = [SwitchingEnv(CorridorTextEnv(length=10, max_steps=30), quick, deepthink,
                          encoder=hashed(16), **sw.env_options(False)) for _ in range(n_envs)]
    return run_episodes(SwitchingVecEnv(envs_), sw, episodes, seed=3)


def test_oracle_rules_agree_when_deepthink_is_the_expert():
    a = _oracle_episodes("quick_wrong", expert("d", simulated_params=1000))
    b = _oracle_episodes("deepthink_right", expert("d", simulated_params=1000))
    assert [(e["env_steps"], e["deepthink_calls"], e["deepthink_flops"]) for e in a] == \
        [(e["env_steps"], e["deepthink_calls"], e["deepthink_flops"]) for e in b]
    assert sum(e["deepthink_calls"] for e in a) > 0


def test_deepthink_right_oracle_pays_only_where_an_imperfect_deepthink_acts_and_is_right():
    sw = switcher("oracle", "switcher.rule=deepthink_right")
    deep = NoisyExpertPolicy(name="d", hard_error=0.5, easy_error=0.3, seed=9, simulated_params=1000)
    env = SwitchingEnv(CorridorTextEnv(length=10, max_steps=30), NoisyExpertPolicy(hard_error=0.6), deep,
                       encoder=hashed(16), **sw.env_options(False))
    env.reset(seed=0)
    helped = skipped = 0
    for _ in range(300):
        ctx = env.context()
        expert_action = ctx.state.expert()
        assert ctx.deepthink is not None  # looked at before the decision
        decision = sw.decide(env.current_obs(), ctx)
        _, _, term, trunc, info = env.step(decision)
        usage = info["switch"]["usage"]["deepthink"]
        if info["switch"]["deepthink_acted"]:
            assert ctx.deepthink.action == expert_action != ctx.quick.action
            assert usage["calls"] == 1 and usage["flops"] > 0  # the look is charged once DEEPTHINK acts
            helped += 1
        else:
            assert usage["calls"] == 0 and usage["flops"] == 0  # a look that is not acted on is free
            skipped += ctx.quick.action != expert_action  # QUICK wrong, DEEPTHINK wrong too: no call
        if term or trunc:
            env.reset()
    assert helped > 0 and skipped > 0


def test_deepthink_right_oracle_is_the_same_with_batched_envs():
    deep = lambda: NoisyExpertPolicy(name="d", hard_error=0.5, easy_error=0.3, seed=9, simulated_params=1000)  # noqa: E731
    one = _oracle_episodes("deepthink_right", deep(), n_envs=1, episodes=9)
    four = _oracle_episodes("deepthink_right", deep(), n_envs=4, episodes=9)
    key = lambda e: (e["episode_seed"], e["env_steps"], e["deepthink_calls"], e["deepthink_flops"], e["success"])  # noqa: E731
    assert sorted(map(key, four)) == sorted(map(key, one))


class _DownOnCell3(ExpertPolicy):
    """The expert, except on cell 3, where it fails (a DEEPTHINK that cannot answer one prompt)."""

    def _act(self, states, usage, return_hidden):
        if any("cell 3." in s.obs for s in states):
            raise PolicyError("down on cell 3")
        return super()._act(states, usage, return_hidden)


def test_deepthink_right_oracle_counts_failed_looks_the_same_with_batched_envs(caplog):
    deep = lambda: _DownOnCell3(name="d", simulated_params=1000, simulated_flops_per_second=1e13)  # noqa: E731
    with caplog.at_level(logging.WARNING, logger="londi.switch.env"):
        one = _oracle_episodes("deepthink_right", deep(), n_envs=1, episodes=12)
        n_one = len(caplog.records)
        four = _oracle_episodes("deepthink_right", deep(), n_envs=4, episodes=12)
    key = lambda e: (e["episode_seed"], e["env_steps"], e["return"], e["success"], e["deepthink_calls"],  # noqa: E731
                     e["deepthink_flops"], e["fallbacks"])
    assert sorted(map(key, four)) == sorted(map(key, one))  # one failing state does not blind the batch
    failed = sum(e["fallbacks"] > 0 for e in one)
    assert failed > 0  # each failed look is counted, and warned about once per episode
    assert n_one == failed and len(caplog.records) == 2 * failed
    assert all("down on cell 3" in r.getMessage() for r in caplog.records)


def test_oracle_rule_typo_fails_with_the_choices():
    with pytest.raises(ValueError, match="quick_wrong, deepthink_right"):
        switcher("oracle", "switcher.rule=deepthink_rihgt")
