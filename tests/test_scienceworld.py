"""ScienceWorld-v0: gold paths, truncation, action handling, errors, check_env (one shared JVM)."""

from __future__ import annotations

from collections import Counter

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import envs
from envs.scienceworld.admissible import (
    EXCLUDED_ACTIONS,
    action_type,
    ambiguity_options,
    select_admissible,
)
from envs.scienceworld.env import ROOM_DOORS, gold_rooms, room_of, route
from envs.scienceworld.jvm import JavaMissingError, find_java
from envs.scienceworld.tasks import TASK_NAMES, resolve_task

pytestmark = pytest.mark.scienceworld

ALL_GOLD_TASKS = ("boil", "melt", "find-living-thing", "test-conductivity", "chemistry-mix", "grow-plant",
                  "use-thermometer", "identify-life-stages-1")


@pytest.fixture(scope="module")
def env():
    e = gym.make("ScienceWorld-v0", task="find-living-thing", variation=0, step_limit=100)
    assert not e.unwrapped.jvm.alive(), "making the env must not start a JVM (it starts at the first reset)"
    yield e
    e.close()
    assert not e.unwrapped.jvm.alive()


def replay_gold(env, task: str) -> tuple[dict, bool, bool, int, list[str]]:
    """Follow expert_action() from reset; return the last info, terminated, truncated, steps, non-admissible."""
    env.unwrapped.task_name = task
    _, info = env.reset(seed=0)
    missing, steps, term, trunc = [], 0, False, False
    while not (term or trunc):
        action = env.unwrapped.expert_action()
        assert action is not None, f"{task}: gold path ran out after {steps} steps at score {info['score']}"
        if action not in info["admissible_actions"]:
            missing.append(action)
            _, _, term, trunc, info = env.step(action)
        else:
            _, _, term, trunc, info = env.step(info["admissible_actions"].index(action))
        steps += 1
    return info, term, trunc, steps, missing


# ---------------------------------------------------------------- no JVM needed
def test_registration_lists_the_id():
    assert "ScienceWorld-v0" in envs.text_env_ids()
    assert envs._FAMILIES.count("ScienceWorld") == 1


def test_task_resolution_and_errors():
    assert resolve_task("boil") == "boil" and resolve_task(0) == "boil" and resolve_task("1-2") == "melt"
    assert len(TASK_NAMES) == 30
    with pytest.raises(ValueError, match="Did you mean boil.*Valid tasks"):
        gym.make("ScienceWorld-v0", task="boill")
    with pytest.raises(ValueError, match="out of range"):
        resolve_task(30)
    with pytest.raises(ValueError, match="valid splits"):
        gym.make("ScienceWorld-v0", split="validation")


def test_missing_java_names_the_fix(monkeypatch):
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(JavaMissingError, match="openjdk-17"):
        find_java()


def test_the_cap_keeps_required_and_hides_its_position():
    valid = ["reset task", "look around", "put down pot", "pick up cup", "move pot to sink", "move cup to sink"]
    valid += [f"move table{i} to cup" for i in range(50)]
    out, _ = select_admissible(valid, max_actions=6, must_include=["zzz gold action", None])
    assert len(out) == 6 and out == sorted(out)
    assert "zzz gold action" in out and "reset task" not in out
    # moving what the agent carries, then what it can pick up, outranks moving furniture
    assert {"move pot to sink", "move cup to sink", "look around"} <= set(out)
    assert not any(a.startswith("move table") for a in out)


def test_ambiguity_options():
    text = "Ambiguous request: Please enter the number\n0:\tmove seed a\n1:\tmove seed b\n"
    assert ambiguity_options(text) == ["0", "1"] and ambiguity_options("You move.") == []


def test_cap_keeps_every_type_shares_the_rest_equally_and_counts_the_cut():
    valid = ["look around", "go to kitchen", "teleport to kitchen"]
    valid += [f"focus on thing{i}" for i in range(10)]
    valid += [f"move thing{i} to box{j}" for i in range(10) for j in range(10)]
    out, cut = select_admissible(valid, max_actions=12, must_include=["zzz gold"])
    kinds = Counter(action_type(a) for a in out)
    # gold, one of each of the 5 types, then the rest of the cap shared equally by the types that still
    # have actions (3 more "focus on", 3 more "move")
    assert kinds == {"zzz": 1, "look around": 1, "go to": 1, "teleport to": 1, "focus on": 4, "move": 4}
    assert cut == len(valid) - (len(out) - 1)  # the gold action is not one of the valid actions
    assert select_admissible(valid, max_actions=10**4)[1] == 0
    assert select_admissible(list(reversed(valid)), 12, ["zzz gold"]) == (out, cut)  # independent of order


# ---------------------------------------------------------------- one shared JVM
@pytest.mark.parametrize("task", ["find-living-thing", "use-thermometer"])
def test_gold_path_reaches_100_with_every_action_admissible(env, task):
    info, term, trunc, steps, missing = replay_gold(env, task)
    assert missing == [], f"gold actions not admissible: {missing}"
    assert (info["score"], term, trunc, info["success"]) == (100, True, False, True)
    assert len(info["admissible_actions"]) <= env.unwrapped.max_actions


def test_observation_info_and_actions(env):
    env.unwrapped.task_name = "find-living-thing"
    obs, info = env.reset(seed=0)
    assert env.observation_space.contains(obs) and "Your task is to" in obs and "In your inventory" in obs
    assert info["family"] == "scienceworld" and info["mission"] == info["task"] != ""
    assert info["action_mask"].sum() == len(info["admissible_actions"]) and info["jvm_restarts"] == info["env_restarts"] == 0
    assert env.unwrapped.action_masks().dtype == bool
    # an index past the list and a string ScienceWorld does not know: reported, not raised
    _, r, term, trunc, info = env.step(env.action_space.n - 1)
    assert info["action_accepted"] is False and "outside" in info["error"] and r == 0 and not (term or trunc)
    _, _, _, _, info = env.step("dance wildly")
    assert info["action_accepted"] is False and info["action"] == "dance wildly"
    assert env.unwrapped.expert_action() == env.unwrapped.gold_path()[0]  # a rejected action: resume the path
    _, _, _, _, info = env.step("look around")  # a string outside the index space still works
    assert info["action_accepted"] is True


def test_step_limit_truncates_never_terminates(env):
    env.unwrapped.step_limit = 3
    try:
        env.reset(seed=0)
        flags = [env.step("look around")[2:4] for _ in range(3)]
    finally:
        env.unwrapped.step_limit = 100
    assert flags == [(False, False), (False, False), (False, True)]


def test_expert_walks_back_to_the_gold_path_and_finishes(env):
    """find-living-thing v0 starts in the hallway; after two steps into the wrong room the expert returns."""
    u = env.unwrapped
    env.reset(seed=0)
    gold = u.gold_path()
    assert gold[0] == "open door to kitchen" and room_of(u._look) == "hallway"
    env.step("teleport to foundry")
    env.step("look around")
    assert u.expert_action() == "teleport to hallway"  # "easy" includes teleportAction
    info, steps = {}, 0
    while steps < 40:
        _, _, term, trunc, info = env.step(u.expert_action())
        steps += 1
        if term or trunc:
            break
    assert info["success"] and info["score"] == 100 and steps == len(gold) + 1


def test_expert_without_recovery_stops_at_the_first_deviation(env):
    u = env.unwrapped
    u.expert_recovery = False
    try:
        env.reset(seed=0)
        env.step("look at agent")
        assert u.expert_action() is None
    finally:
        u.expert_recovery = True


def test_expert_skips_gold_actions_the_agent_already_did(env):
    u = env.unwrapped
    env.reset(seed=0)
    gold = u.gold_path()
    env.step(gold[1])  # "go to kitchen" before "open door to kitchen" (doors are open under "easy")
    assert u.expert_action() == gold[2]


def test_expert_does_not_skip_a_needed_gold_action(env):
    """A later gold action done early ("pick up" before "focus on") does not count the skipped one as done."""
    u = env.unwrapped
    env.reset(seed=0)
    gold = u.gold_path()
    k = next(i for i, a in enumerate(gold) if a.startswith("focus on"))
    for a in gold[:k]:
        env.step(a)
    env.step(gold[k + 1])
    assert u.expert_action() == gold[k]


def test_room_map_routes_through_doors():
    assert all(a in ROOM_DOORS[b] for a, doors in ROOM_DOORS.items() for b in doors)  # doors go both ways
    assert route("bathroom", "foundry") == ["kitchen", "outside", "foundry"]
    assert route("living room", "living room") == [] and route("kitchen", "moon") == []
    assert gold_rooms("hallway", ["open door to kitchen", "go to kitchen", "look around", "teleport to foundry"]) == [
        "hallway", "hallway", "kitchen", "kitchen", "foundry"]
    assert room_of("This outside location is called the outside. Here you see:") == "outside"


def test_variation_sampling_and_split_errors(env):
    u = env.unwrapped
    train = u.variations("train")
    assert 0 in train and not set(train) & set(u.variations("test"))
    u.variation = None
    try:
        picks = [env.reset(seed=s)[1]["variation"] for s in (1, 1, 2, 3, 4)]
    finally:
        u.variation = 0
    assert picks[0] == picks[1] and set(picks) <= set(train) and len(set(picks)) > 1
    with pytest.raises(ValueError, match="not in the 'train' split.*valid train variations"):
        env.reset(options={"variation": u.variations("test")[0]})


def test_normalized_reward_is_score_delta_over_100(env):
    u = env.unwrapped
    u.normalize_reward = True
    try:
        _, info = env.reset(seed=0)
        rewards, scores = [], [info["score"]]
        for _ in range(4):
            _, r, _, _, info = env.step(info_index(env, u.expert_action()))
            rewards.append(r)
            scores.append(info["score"])
    finally:
        u.normalize_reward = False
    assert np.allclose(rewards, np.diff(scores) / 100) and max(scores) > 0


def info_index(env, action: str) -> int:
    return env.unwrapped.admissible_actions.index(action)


def test_reset_scores_like_the_package_reset(env):
    """The package's reset() ends with a scored "look around"; ours must start from the same score, so the
    first step is not paid the credit of that look (find-living-thing v0 earns 8 for it)."""
    from scienceworld import ScienceWorldEnv

    package = ScienceWorldEnv("", envStepLimit=100)
    try:
        package.load("find-living-thing", 0, "easy")
        _, pinfo = package.reset()
        env.unwrapped.task_name = "find-living-thing"
        _, info = env.reset(seed=0)
        assert info["variation"] == 0 and pinfo["score"] > 0, "the case under test: a reset that earns credit"
        assert info["score"] == pinfo["score"]
        action = env.unwrapped.expert_action()
        _, reward, _, _, info = env.step(action)
        _, package_reward, _, pinfo = package.step(action)
        assert (reward, info["score"]) == (package_reward, pinfo["score"])
    finally:
        package.close()


def test_cap_keeps_the_gold_action_and_every_action_type(env):
    """The kitchen offers about 1,000 valid actions (mostly move/pour); the 128 kept hold every type."""
    u = env.unwrapped
    u.task_name = "find-living-thing"
    env.reset(seed=0)
    _, _, _, _, info = env.step("teleport to kitchen")
    valid = set(u.valid_actions()) - EXCLUDED_ACTIONS
    kept = set(info["admissible_actions"])
    assert len(kept) == u.max_actions == 128 and u.expert_action() in kept
    assert info["admissible_cut"] == len(valid - kept) > 500
    assert {action_type(a) for a in kept & valid} == {action_type(a) for a in valid}


def test_max_actions_too_small_for_every_type_is_refused():
    with pytest.raises(ValueError, match="max_actions=16 is too small.*max_actions >= 32"):
        gym.make("ScienceWorld-v0", task="boil", max_actions=16)


def test_admissible_list_follows_state_that_look_and_inventory_do_not_show():
    """Opening the drawer in the kitchen counter changes the valid actions but neither the look text (the
    counter lists "a drawer" either way) nor the inventory, which a cache keyed on them missed."""
    e = gym.make("ScienceWorld-v0", task="find-living-thing", variation=0, max_actions=4096, expert=False)
    u = e.unwrapped
    try:
        e.reset(seed=0)
        _, _, _, _, before = e.step("teleport to kitchen")
        _, _, _, _, after = e.step("open drawer in counter")
        assert set(after["admissible_actions"]) == set(u.valid_actions()) - EXCLUDED_ACTIONS
        assert "open drawer in counter" in before["admissible_actions"]
        assert "close drawer in counter" in after["admissible_actions"]
        assert "open drawer in counter" not in after["admissible_actions"]
    finally:
        e.close()


def test_check_env_passes(env):
    check_env(env.unwrapped, skip_render_check=True)


@pytest.mark.slow
@pytest.mark.parametrize("task", ALL_GOLD_TASKS)
def test_all_eight_gold_paths(env, task):
    info, term, trunc, _, missing = replay_gold(env, task)
    assert missing == [] and (info["score"], term, trunc, info["success"]) == (100, True, False, True)
