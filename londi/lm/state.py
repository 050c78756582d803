"""The text state an LM policy acts on, and the per-episode history that builds it."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Step:
    """One past step of the episode: what was observed, and the action then taken."""

    obs: str
    descriptions: tuple[str, ...] | None
    action: str


@dataclass(frozen=True)
class TextState:
    """Everything a policy may read at one decision point.

    `family` selects the prompt builder ("babyai_text", "scienceworld", ...). `history` holds the most
    recent past steps (as many as the producer keeps); `step` is how many actions the episode has taken, so
    a prompt builder can place its history window from the episode start (see `history_chunk` in
    `londi.lm.prompts`). `expert` is a zero-argument callable returning the expert's action string (or None)
    and is only evaluated on request, so states cost nothing extra when no expert is used.
    """

    obs: str
    mission: str
    admissible_actions: tuple[str, ...]
    family: str = "generic"
    descriptions: tuple[str, ...] | None = None
    history: tuple[Step, ...] = ()
    step: int = 0
    expert: Callable[[], str | None] | None = field(default=None, compare=False, repr=False)

    @classmethod
    def from_env(
        cls,
        obs: str,
        info: Mapping[str, Any],
        history: Sequence[Step] = (),
        env: Any = None,
        family: str | None = None,
        step: int | None = None,
    ) -> TextState:
        """Build a state from a text env's (obs, info); `env` enables `expert_action()` on request."""
        if "admissible_actions" not in info:
            raise KeyError(
                "info has no 'admissible_actions': londi text envs must list the valid action strings there "
                "(see docs/design.md, 'A text env' contract)"
            )
        unwrapped = getattr(env, "unwrapped", env)
        expert = getattr(unwrapped, "expert_action", None) if unwrapped is not None else None
        descriptions = info.get("descriptions")
        return cls(
            obs=obs,
            mission=str(info.get("mission", info.get("task", ""))),
            admissible_actions=tuple(info["admissible_actions"]),
            family=family or str(info.get("family", getattr(unwrapped, "family", "generic"))),
            descriptions=tuple(descriptions) if descriptions is not None else None,
            history=tuple(history),
            step=len(history) if step is None else int(step),
            expert=expert,
        )


class EpisodeHistory:
    """Keeps the last `max_steps` (obs, action) pairs of the current episode and the episode's step count;
    cleared on reset."""

    def __init__(self, max_steps: int = 2):
        if max_steps < 0:
            raise ValueError(f"max_steps must be >= 0, got {max_steps}")
        self.max_steps = max_steps
        self._steps: deque[Step] = deque(maxlen=max_steps)
        self._last: tuple[str, tuple[str, ...] | None] | None = None
        self.t = 0

    def reset(self, obs: str, info: Mapping[str, Any]) -> None:
        self._steps.clear()
        self._last = (obs, _descriptions(info))
        self.t = 0

    def record(self, action: str, next_obs: str, next_info: Mapping[str, Any]) -> None:
        if self._last is not None and self.max_steps > 0:
            self._steps.append(Step(obs=self._last[0], descriptions=self._last[1], action=action))
        self._last = (next_obs, _descriptions(next_info))
        self.t += 1

    @property
    def steps(self) -> tuple[Step, ...]:
        return tuple(self._steps)

    def state(self, obs: str, info: Mapping[str, Any], env: Any = None) -> TextState:
        return TextState.from_env(obs, info, history=self.steps, env=env, step=self.t)


def _descriptions(info: Mapping[str, Any]) -> tuple[str, ...] | None:
    d = info.get("descriptions")
    return tuple(d) if d is not None else None
