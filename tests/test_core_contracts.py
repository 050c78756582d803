"""The compute meter, the policy base class and the CSV logger: the contracts every module relies on."""

import csv

import numpy as np
import pytest

from londi.lm import ComputeMeter, ExpertPolicy, LMPolicy, PolicyError, RandomPolicy, TextState, Usage
from londi.lm.state import EpisodeHistory
from londi.loggers import CSVLogger


def _state(expert="go forward"):
    return TextState(
        obs="You see a wall 1 step forward",
        mission="go to the red ball",
        admissible_actions=("turn left", "turn right", "go forward"),
        expert=(lambda: expert),
    )


def test_usage_adds_every_field():
    a = Usage(model="m", calls=1, prompt_tokens=3, completion_tokens=1, flops=10.0, wall_seconds=0.5, device_seconds=0.2)
    b = Usage(model="m", calls=2, prompt_tokens=4, completion_tokens=0, flops=5.0, wall_seconds=0.1, device_seconds=0.3)
    c = a + b
    assert (c.calls, c.prompt_tokens, c.completion_tokens, c.tokens) == (3, 7, 1, 8)
    assert c.flops == pytest.approx(15.0) and c.device_seconds == pytest.approx(0.5)


def test_meter_counts_every_act_call_and_times_it():
    meter = ComputeMeter()
    pol = RandomPolicy(name="random", seed=0, meter=meter)
    pol.act([_state(), _state()])
    pol.act_one(_state())
    total = meter.total()
    assert total.calls == 3
    assert total.wall_seconds > 0
    assert total.device_kind == "cpu_thread"
    restored = ComputeMeter()
    restored.load_state_dict(meter.state_dict())
    assert restored.total().calls == 3


def test_simulated_expert_is_charged_and_labelled():
    pol = ExpertPolicy(name="expert", simulated_params=1_000_000, simulated_flops_per_second=1e13)
    res = pol.act_one(_state())
    assert res.action == "go forward" and res.index == 2
    u = pol.meter.total()
    assert u.simulated and u.device_kind == "simulated"
    assert u.flops == pytest.approx(2 * 1_000_000 * u.prompt_tokens) and u.prompt_tokens > 0
    free = ExpertPolicy(name="expert", simulated_params=None, simulated_flops_per_second=1e13)
    free.act_one(_state())
    assert free.meter.total().flops == 0 and not free.meter.total().simulated


def test_expert_without_admissible_answer_raises():
    with pytest.raises(PolicyError, match="no admissible action"):
        ExpertPolicy(name="expert", simulated_params=None, simulated_flops_per_second=1e13).act_one(_state(expert="fly"))


def test_policy_returning_inadmissible_action_is_caught():
    class Bad(LMPolicy):
        def _act(self, states, usage, return_hidden):
            from londi.lm import ActResult

            return [ActResult(index=0, action="jump") for _ in states]

    with pytest.raises(PolicyError, match="not admissible"):
        Bad("bad").act_one(_state())


def test_random_policy_is_seeded():
    a = [RandomPolicy(name="random", seed=3).act_one(_state()).index for _ in range(1)]
    picks = lambda seed: [r.index for r in RandomPolicy(name="random", seed=seed).act([_state()] * 20)]  # noqa: E731
    assert picks(3) == picks(3) and picks(3) != picks(4)
    assert a[0] in range(3)
    probs = RandomPolicy(name="random", seed=0).act_one(_state()).probs
    assert np.allclose(probs, 1 / 3)


def test_history_keeps_last_steps_and_clears_on_reset():
    h = EpisodeHistory(max_steps=2)
    info = {"admissible_actions": ["a", "b"], "mission": "m", "descriptions": ["d0"]}
    h.reset("o0", info)
    for t in range(1, 4):
        h.record("a", f"o{t}", {**info, "descriptions": [f"d{t}"]})
    assert [s.obs for s in h.steps] == ["o1", "o2"]
    assert h.steps[-1].descriptions == ("d2",)
    st = h.state("o3", info)
    assert st.mission == "m" and st.admissible_actions == ("a", "b") and len(st.history) == 2
    h.reset("x", info)
    assert h.steps == ()
    with pytest.raises(KeyError, match="admissible_actions"):
        TextState.from_env("o", {"mission": "m"})


def test_csv_logger_appends_and_rejects_unknown_columns(tmp_path):
    lg = CSVLogger(tmp_path)
    lg.log_metrics(10, {"charts/episodic_return": 1.0})
    lg.log_episode({"phase": "train", "episode": 0, "success": True})
    lg.close()
    lg = CSVLogger(tmp_path)  # a resumed run continues the same files
    lg.log_metrics(20, {"charts/episodic_return": 0.5})
    with pytest.raises(ValueError, match="not among its columns"):
        lg.log_metrics(30, {"charts/typo": 1.0})
    lg.close()
    rows = list(csv.DictReader((tmp_path / "metrics.csv").open()))
    assert [r["global_step"] for r in rows] == ["10", "20"]
