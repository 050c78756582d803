"""The hashed n-gram encoder's optional QUICK and history features."""

import numpy as np

from londi.lm import ActResult, Step, TextState
from londi.switch.encoders import goal_lines
from tests.helpers import hashed

ACTIONS = ("turn left", "turn right", "go forward")


def _state(obs="You see a wall 1 step forward", history=()):
    return TextState(obs=obs, mission="go to the red ball", admissible_actions=ACTIONS, history=tuple(history))


def test_plain_encoder_has_n_features_and_ignores_history():
    enc = hashed(64)
    a = enc.encode(_state())
    b = enc.encode(_state(history=[Step("x", None, "turn left")]))
    assert a.shape == (64,) == (enc.dim,)
    assert np.allclose(a, b)


def test_history_features_see_past_actions_and_flag_repeated_observations():
    enc = hashed(256, history_features=True)
    obs = "You see a wall 1 step forward"
    fresh = enc.encode(_state(obs, [Step("elsewhere", None, "turn left")]))
    looped = enc.encode(_state(obs, [Step(obs, None, "turn left"), Step("elsewhere", None, "turn right")]))
    other_action = enc.encode(_state(obs, [Step("elsewhere", None, "go forward")]))
    assert fresh.shape == (enc.dim,) == (257,)
    assert fresh[-1] == 0.0 and looped[-1] == 1.0
    assert not np.allclose(fresh[:-1], other_action[:-1])  # the previous action is part of the encoding


def test_quick_features_hash_the_proposed_action_and_its_confidence():
    enc = hashed(256, quick_features=True)
    assert enc.needs_quick_output and enc.dim == 259
    sure = ActResult(index=2, action="go forward", scores=np.log(np.array([0.05, 0.05, 0.9])))
    unsure = ActResult(index=0, action="turn left", scores=np.log(np.array([0.4, 0.3, 0.3])))
    a, b = enc.encode(_state(), sure), enc.encode(_state(), unsure)
    assert not np.allclose(a[:256], b[:256])  # the proposal is hashed
    assert a[-2] > b[-2] and a[-3] < b[-3]  # higher max-prob, lower entropy


def test_goal_lines_keep_only_lines_naming_the_goal_object():
    obs = "You see a red ball 2 steps left\nYou see a red box 1 step forward\nYou see a green ball 3 steps right"
    assert goal_lines(_state(obs)) == ["red ball 2 steps left"]
    assert goal_lines(_state("You see a wall 1 step forward")) == []


def test_goal_features_tell_where_the_goal_is_when_the_plain_bag_cannot():
    # Same words in both observations; only which object is left and which is right differs.
    left = "You see a red ball 2 steps left\nYou see a green box 2 steps right"
    right = "You see a red ball 2 steps right\nYou see a green box 2 steps left"
    plain = hashed(1024, ngram_max=1)
    goal = hashed(1024, ngram_max=1, goal_features=True)
    assert np.allclose(plain.encode(_state(left)), plain.encode(_state(right)))
    assert not np.allclose(goal.encode(_state(left)), goal.encode(_state(right)))
    assert goal.dim == 1024


def test_encode_batch_gives_the_rows_of_encode_one_by_one():
    kw = dict(quick_features=True, history_features=True, goal_features=True)
    batched, single = hashed(256, **kw), hashed(256, **kw)
    sure = ActResult(index=2, action="go forward", scores=np.log(np.array([0.05, 0.05, 0.9])))
    states = [_state(), _state("You see a red ball 2 steps left", [Step("x", None, "turn left")]), _state(),
              _state("You see a red ball 1 step forward")]
    quicks = [sure, None, sure, sure]  # a repeated (state, proposal): one row hashed, used twice
    rows = batched.encode_batch(states, quicks)
    assert rows.shape == (4, batched.dim)
    for row, s, q in zip(rows, states, quicks, strict=True):
        np.testing.assert_array_equal(row, single.encode(s, q))
    np.testing.assert_array_equal(batched.encode_batch(states[:1], quicks[:1])[0], rows[0])  # from the cache
    assert not np.array_equal(rows[0], rows[1])
