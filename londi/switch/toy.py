"""Small stand-ins for tests and benchmarks: a corridor text env and a noisy-expert QUICK.

`CorridorTextEnv` follows the londi text-env contract (str obs, `info["admissible_actions"]`, int action
index, `info["success"]`, `expert_action()`) in a few microseconds per step, so switcher logic can be
tested without BabyAI. `NoisyExpertPolicy` is the expert that errs more often on "hard" states (those
whose text contains one of `hard_words`): a QUICK with state-dependent mistakes that a switcher can learn.
"""

from __future__ import annotations

from collections.abc import Sequence

import gymnasium as gym
import numpy as np

from londi.lm.baselines import ExpertPolicy
from londi.lm.policy import ActResult
from londi.lm.state import TextState
from londi.lm.usage import ComputeMeter, Usage

CORRIDOR_ACTIONS = ("go left", "go right", "wait")


class CorridorTextEnv(gym.Env):
    """Walk along a corridor of `length` cells to the goal; reward 1 - 0.9 t / max_steps on arrival."""

    metadata = {"render_modes": []}
    family = "corridor"

    def __init__(self, length: int = 8, max_steps: int = 24):
        self.length, self.max_steps = length, max_steps
        self.action_space = gym.spaces.Discrete(len(CORRIDOR_ACTIONS))
        self.observation_space = gym.spaces.Text(max_length=256)
        self._pos = self._goal = self._t = 0

    def _obs(self) -> tuple[str, dict]:
        d = self._goal - self._pos
        where = "here" if d == 0 else f"{abs(d)} {'cell' if abs(d) == 1 else 'cells'} to the {'right' if d > 0 else 'left'}"
        near = "near" if abs(d) <= 2 else "far"
        obs = f"You are in cell {self._pos}. The goal is {where}, {near}."
        info = {"admissible_actions": list(CORRIDOR_ACTIONS), "mission": "reach the goal", "family": self.family,
                "descriptions": [obs], "success": False}
        return obs, info

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._goal = int(self.np_random.integers(self.length))
        self._pos = int(self.np_random.integers(self.length))
        while self._pos == self._goal:
            self._pos = int(self.np_random.integers(self.length))
        self._t = 0
        return self._obs()

    def step(self, action: int):
        move = {0: -1, 1: 1, 2: 0}[int(action)]
        self._pos = int(np.clip(self._pos + move, 0, self.length - 1))
        self._t += 1
        obs, info = self._obs()
        success = self._pos == self._goal
        info["success"] = success
        reward = 1.0 - 0.9 * self._t / self.max_steps if success else 0.0
        return obs, reward, success, (not success) and self._t >= self.max_steps, info

    def expert_action(self) -> str | None:
        if self._pos == self._goal:
            return None
        return "go right" if self._goal > self._pos else "go left"


class NoisyExpertPolicy(ExpertPolicy):
    """The expert, except with probability `hard_error` (or `easy_error`) it picks another action at random.

    Seeded (`seed`), so with the switching env's per-step reseeding its mistakes are reproducible.
    """

    def __init__(self, name: str = "noisy_expert", hard_words: Sequence[str] = ("far",), hard_error: float = 0.8,
                 easy_error: float = 0.05, seed: int | None = 0, simulated_params: int | None = None,
                 meter: ComputeMeter | None = None):
        super().__init__(name=name, simulated_params=simulated_params, simulated_flops_per_second=1e13, meter=meter)
        self.hard_words = tuple(hard_words)
        self.hard_error, self.easy_error = hard_error, easy_error
        self.seed(seed)

    def _act(self, states: Sequence[TextState], usage: Usage, return_hidden: bool) -> list[ActResult]:
        out = super()._act(states, usage, return_hidden)
        for i, (s, r) in enumerate(zip(states, out, strict=True)):
            text = " ".join([s.obs, *(s.descriptions or ())])
            p = self.hard_error if any(w in text for w in self.hard_words) else self.easy_error
            k = len(s.admissible_actions)
            rng = self.rng(i)
            if k > 1 and rng.random() < p:
                j = int(rng.integers(k - 1))
                j = j if j < r.index else j + 1
                out[i] = ActResult(index=j, action=s.admissible_actions[j])
        return out
