"""`BabyAITextEnv`: a minigrid BabyAI level seen through BabyAI-Text (GLAM) descriptions.

Observation: one string,
    "Goal of the agent: {mission}" followed by one line per description ("\\n"-joined), e.g.
    "Goal of the agent: go to the red ball\\nYou see a wall 2 steps forward\\nYou see a red ball 1 step left"
Action: Discrete(6), an index into `ACTIONS` = "turn left", "turn right", "go forward", "pick up", "drop",
"toggle" (minigrid's indices; "done" is not offered).
info: "descriptions" (list[str], `describe.describe`), "mission", "admissible_actions" (the 6 strings in
index order), "success" (True only on the step that completes the mission), "family" = "babyai_text".
Reward, termination and truncation are minigrid's: 1 - 0.9 * steps / max_steps on success, terminated on
success or failure, truncated at max_steps. `max_steps` is the level's own limit unless the constructor's
`max_steps` fixes it (what `envs.make(id, max_episode_steps=N)` passes). `expert_action()` returns the BabyAI
bot's action string.

This is a `gymnasium.Env` holding the minigrid level (not a Wrapper) so that `env.unwrapped` is this
class and `env.unwrapped.expert_action()` works through `gymnasium.make`'s wrappers; the level itself is
`env.unwrapped.level`.
"""

from __future__ import annotations

import contextlib
import string
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.envs.registration import load_env_creator
from minigrid.minigrid_env import MiniGridEnv

from envs.babyai_text.describe import describe
from envs.babyai_text.expert import ACTIONS, BotExpert, MyopicBotExpert
from envs.babyai_text.levels import LEVELS
from envs.limits import check_step_limit

FAMILY = "babyai_text"
CHARSET = string.ascii_letters + string.digits + " \n,.:;'-_()"
MAX_OBS_CHARS = 8192
# `expert=`: "bot" plans from all it has seen; "myopic" from the current view only (a function of the text)
EXPERTS = {"bot": BotExpert, "myopic": MyopicBotExpert}


class _Discard:
    """A stdout sink: minigrid prints 'Sampling rejected: ...' on every rejected mission at reset."""

    def write(self, s: str) -> int:
        return len(s)

    def flush(self) -> None:
        pass


def level_ids() -> dict[str, str]:
    """Level name -> raw gymnasium id ("GoToLocal" -> "BabyAI-GoToLocal-v0") of every registered BabyAI level."""
    import minigrid  # noqa: F401  (registers the BabyAI-* ids)

    out = {}
    for env_id in gym.registry:
        if env_id.startswith("BabyAI-") and not env_id.startswith("BabyAI-Text-"):
            name = env_id[len("BabyAI-") :].rsplit("-v", 1)[0]
            out.setdefault(name, env_id)
    return out


def make_level(level: str, **kwargs: Any) -> MiniGridEnv:
    """Instantiate a BabyAI level by name ("GoToLocal") or raw id ("BabyAI-GoToLocal-v0"), without wrappers."""
    if level in LEVELS:
        return LEVELS[level](**kwargs)
    ids = level_ids()
    env_id = ids.get(level, level if level in ids.values() else None)
    if env_id is None:
        valid = ", ".join(sorted({*ids, *LEVELS}))
        raise ValueError(f"Unknown BabyAI level {level!r}. Valid levels: {valid}")
    spec = gym.spec(env_id)
    return load_env_creator(spec.entry_point)(**{**spec.kwargs, **kwargs})


class BabyAITextEnv(gym.Env[str, np.int64]):
    """A BabyAI level with text observations (see the module docstring for the exact format)."""

    metadata = {"render_modes": ["rgb_array", "ansi"], "render_fps": 10}

    def __init__(self, level: str = "GoToLocal", render_mode: str | None = None, expert: str = "bot",
                 max_steps: int | None = None, **level_kwargs: Any):
        """`max_steps`: the step limit of every episode, given to the minigrid level so that truncation, the
        success reward (1 - 0.9 t / max_steps) and `self.max_steps` all follow it; None: the level's own."""
        if expert not in EXPERTS:
            raise ValueError(f"expert must be one of {sorted(EXPERTS)}, got {expert!r}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(
                f"render_mode must be one of {self.metadata['render_modes']} or None, got {render_mode!r}"
            )
        self.render_mode = render_mode
        self.level_name = level
        inner_render = "rgb_array" if render_mode == "rgb_array" else None
        self._fixed_max_steps = check_step_limit(max_steps, "max_steps (max_episode_steps)")
        if self._fixed_max_steps is not None:
            level_kwargs["max_steps"] = self._fixed_max_steps
        try:
            self.level = make_level(level, render_mode=inner_render, **level_kwargs)
        except TypeError as e:
            if self._fixed_max_steps is None or "max_steps" not in str(e):
                raise
            raise ValueError(f"BabyAI level {level!r} does not take a step limit (max_steps={max_steps}): {e}. "
                             "Leave max_episode_steps unset (null) to run it at its own limit") from e
        self.expert = EXPERTS[expert](self.level)
        self.admissible_actions = list(ACTIONS)
        self.action_space = gym.spaces.Discrete(len(ACTIONS))
        self.observation_space = gym.spaces.Text(max_length=MAX_OBS_CHARS, min_length=1, charset=CHARSET)
        self._obs = ""

    @property
    def family(self) -> str:
        return FAMILY

    @property
    def max_steps(self) -> int:
        """The episode's step limit (minigrid's; reached -> truncated): the constructor's `max_steps`, else the
        level's own (set at reset; it may differ between episodes, e.g. MixedTrainLocal's two-room task)."""
        return int(self.level.max_steps)

    @property
    def mission(self) -> str:
        return self.level.mission

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[str, dict[str, Any]]:
        super().reset(seed=seed)
        with contextlib.redirect_stdout(_Discard()):
            raw, _ = self.level.reset(seed=seed, options=options)
        if self._fixed_max_steps is not None and self.level.max_steps != self._fixed_max_steps:
            raise RuntimeError(  # a level that recomputes its limit at reset would make the configured one a lie
                f"BabyAI level {self.level_name!r} set its step limit to {self.level.max_steps} at reset, ignoring "
                f"max_steps={self._fixed_max_steps}; leave max_episode_steps unset (null) to run it at its own limit"
            )
        self.expert.reset()
        return self._observe(raw, success=False)

    def step(self, action: int) -> tuple[str, float, bool, bool, dict[str, Any]]:
        a = int(action)
        if not 0 <= a < len(ACTIONS):
            raise ValueError(f"action must be an index in [0, {len(ACTIONS)}) into {ACTIONS}, got {action!r}")
        raw, reward, terminated, truncated, _ = self.level.step(a)
        self.expert.observe(a)
        obs, info = self._observe(raw, success=bool(terminated and reward > 0))
        return obs, float(reward), bool(terminated), bool(truncated), info

    def expert_action(self) -> str | None:
        """The BabyAI bot's action string for the current state (None if it has none); replans after deviations."""
        return self.expert.action()

    def render(self) -> Any:
        if self.render_mode == "ansi":
            return self._obs
        if self.render_mode == "rgb_array":
            return self.level.render()
        return None

    def close(self) -> None:
        self.level.close()

    def _observe(self, raw: dict[str, Any], success: bool) -> tuple[str, dict[str, Any]]:
        descriptions = describe(raw["image"], self.level.carrying)
        mission = self.level.mission
        self._obs = "\n".join([f"Goal of the agent: {mission}", *descriptions])
        info = {
            "descriptions": descriptions,
            "mission": mission,
            "admissible_actions": list(ACTIONS),
            "success": success,
            "family": FAMILY,
        }
        return self._obs, info
