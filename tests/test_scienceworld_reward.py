"""ScienceWorld-v0's reward and return under `normalize_reward`, on a fake simulator (no Java, no JVM).

The score paths are what ScienceWorld reports: the reset's scored "look around" first, then one score per
step, -100 once the task has failed.
"""

from __future__ import annotations

import itertools
from types import SimpleNamespace

import pytest

from envs.scienceworld.env import ScienceWorldTextEnv


class FakeServer:
    """The calls ScienceWorldTextEnv makes on the py4j server, scripted by a score path (0-100 scale)."""

    def __init__(self, scores: list[int]):
        self.scores, self.i = scores, -1

    def load(self, task, variation, simplification, generate_gold):
        self.i = -1

    def getVariationsTrain(self):
        return [0]

    getVariationsDev = getVariationsTest = getVariationsTrain

    def freeActionTaskDesc(self):
        return "Task Description: boil water."

    def step(self, action):
        self.i += 1  # reset's "look around" reaches scores[0]
        return "You look around." if action == "look around" else "You do it."

    def getScore(self):
        return self.scores[self.i] / 100

    def getCompleted(self):
        return self.scores[self.i] < 0 or self.scores[self.i] >= 100

    def freeActionLook(self):
        return "This room is called the kitchen."

    def freeActionInventory(self):
        return "In your inventory, you see: nothing"

    def getValidActionObjectCombinations(self):
        return ["look around", "focus on water"]


class FakeJVM:
    def __init__(self, scores: list[int]):
        self.server = FakeServer(scores)
        join = SimpleNamespace(join=lambda sep, items: sep.join(items))
        self.gateway = SimpleNamespace(jvm=SimpleNamespace(java=SimpleNamespace(lang=SimpleNamespace(String=join))))

    def alive(self) -> bool:
        return True

    def close(self) -> None:
        pass


def play(scores: list[int], monkeypatch, normalize_reward: bool = True) -> tuple[list[float], bool, bool]:
    """One episode along `scores` (the last one ends it); returns the rewards, terminated, truncated."""
    monkeypatch.setattr(ScienceWorldTextEnv, "_split_cache", {})  # the fake's variations stay out of real runs
    env = ScienceWorldTextEnv(task="boil", variation=0, step_limit=len(scores) - 1, expert=False,
                              normalize_reward=normalize_reward)
    env.jvm = FakeJVM(scores)
    _, info = env.reset(seed=0)
    assert info["score"] == scores[0]
    rewards, term, trunc = [], False, False
    while not (term or trunc):
        _, reward, term, trunc, info = env.step(0)
        rewards.append(reward)
    assert len(rewards) == len(scores) - 1
    return rewards, term, trunc


@pytest.mark.parametrize("scores", [[8, 8, -100], [8, 50, -100], [8, 90, -100], [0, -100], [8, 30, 20, -100]])
def test_the_failing_step_yields_exactly_minus_one_and_a_failed_return_is_progress_minus_one(scores, monkeypatch):
    rewards, term, trunc = play(scores, monkeypatch)
    assert term and not trunc and rewards[-1] == -1.0
    assert sum(rewards) == pytest.approx((scores[-2] - scores[0]) / 100 - 1)
    if scores[-2] > 0:  # progress before failing raises a failed episode's return
        assert sum(rewards) != pytest.approx((scores[-1] - scores[0]) / 100)


@pytest.mark.parametrize("scores,ends", [([8, 20, 20, 100], "terminated"), ([8, 30, 10, 60], "truncated")])
def test_otherwise_the_return_is_final_minus_reset_score_over_100(scores, ends, monkeypatch):
    rewards, term, trunc = play(scores, monkeypatch)
    assert (term, trunc) == (ends == "terminated", ends == "truncated")
    assert rewards == pytest.approx([(b - a) / 100 for a, b in itertools.pairwise(scores)])
    assert sum(rewards) == pytest.approx((scores[-1] - scores[0]) / 100)


def test_without_normalize_reward_rewards_are_raw_score_deltas(monkeypatch):
    rewards, term, _ = play([8, 50, -100], monkeypatch, normalize_reward=False)
    assert term and rewards == [42.0, -150.0] and sum(rewards) == -100 - 8
