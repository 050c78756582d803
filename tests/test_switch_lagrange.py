"""Lagrange multiplier: rises while calls exceed the target, falls to 0 while below (sgd and pid)."""

import pytest

from londi.errors import ConfigError
from londi.switch.env import SwitchingEnv
from londi.switch.multiplier import make_lambda_rule
from londi.switch.toy import CorridorTextEnv
from londi.switch.vec import SwitchingVecEnv
from tests.helpers import expert, hashed, random_policy, switcher


@pytest.mark.parametrize("rule,kw", [("sgd", {"lr": 0.05}), ("pid", {"kp": 0.02, "ki": 0.02, "kd": 0.01})])
def test_lambda_rises_above_target_and_falls_to_zero_below(rule, kw):
    lam = make_lambda_rule(rule, **kw)
    values = [lam.update(measured=8.0, target=4.0) for _ in range(20)]
    assert values[-1] > 0 and all(b >= a for a, b in zip(values, values[1:], strict=False))
    peak = values[-1]
    below = [lam.update(measured=1.0, target=4.0) for _ in range(200)]
    assert below[0] < peak and below[-1] == 0.0 and min(below) >= 0.0
    state = lam.state_dict()
    twin = make_lambda_rule(rule, **kw)
    twin.load_state_dict(state)
    assert twin.update(6.0, 4.0) == lam.update(6.0, 4.0)


@pytest.mark.parametrize("rule,kw", [("sgd", {"lr": 0.05}), ("pid", {"kp": 0.02, "ki": 0.02})])
def test_max_lambda_caps_lambda_and_stops_windup(rule, kw):
    capped, free = make_lambda_rule(rule, max_lambda=0.5, **kw), make_lambda_rule(rule, **kw)
    for _ in range(100):  # a long stretch far above the target (exploration)
        capped.update(measured=20.0, target=2.0), free.update(measured=20.0, target=2.0)
    assert capped.value == 0.5 < free.value
    steps_down = {}
    for name, lam in (("capped", capped), ("free", free)):
        n = 0
        while lam.update(measured=1.0, target=2.0) > 0.1:
            n += 1
        steps_down[name] = n
    assert steps_down["capped"] < steps_down["free"] / 10  # no stored-up integral to unwind


def test_unknown_rule_is_named():
    with pytest.raises(KeyError, match="sgd"):
        make_lambda_rule("adam")


def test_switcher_updates_lambda_and_env_cost_at_episode_end():
    sw = switcher("lagrangian", "switcher.target_calls=1.0", "switcher.rule=sgd", "switcher.lr=0.1")
    env = SwitchingVecEnv([SwitchingEnv(CorridorTextEnv(), random_policy("q"), expert("d"), encoder=hashed(16),
                                        **sw.env_options(train=True))])
    sw.setup(env, seed=0, total_steps=100)
    assert env.cost == 0.0
    sw.on_episode_end(5, {})
    assert sw.lam == pytest.approx(0.4) and env.cost == pytest.approx(0.4)
    assert sw.model.replay_buffer.current_cost == pytest.approx(0.4)
    assert sw.metrics()["switch/lambda"] == pytest.approx(0.4)
    sw.on_episode_end(0, {})
    assert sw.lam == pytest.approx(0.3)


def test_a_multiplier_state_resumes_only_under_its_own_rule():
    def trained(rule):
        sw = switcher("lagrangian", "switcher.target_calls=1.0", f"switcher.rule={rule}")
        env = SwitchingVecEnv([SwitchingEnv(CorridorTextEnv(), random_policy("q"), expert("d"), encoder=hashed(16),
                                            **sw.env_options(train=True))])
        sw.setup(env, seed=0, total_steps=100)
        sw.on_episode_end(5, {})
        return sw

    pid, sgd = trained("pid"), trained("sgd")
    again = trained("pid")
    again.load_state_dict(pid.state_dict())
    assert again.lam == pid.lam
    with pytest.raises(ConfigError, match="trained with switcher.rule=pid.*cannot continue as switcher.rule=sgd"):
        sgd.load_state_dict(pid.state_dict())  # an sgd rule would silently keep only lambda
    with pytest.raises(ConfigError, match="trained with switcher.rule=sgd.*as switcher.rule=pid"):
        pid.load_state_dict(sgd.state_dict())  # was a bare KeyError: 'integral'
