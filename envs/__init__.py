"""Gymnasium text environments. `import envs` registers every id (BabyAI-Text-*, ScienceWorld-v0).

Each subpackage exposes a `register_*()` function that is called here; `envs.make` is `gymnasium.make`
with an error that lists the registered text env ids when the id is unknown, and with `max_episode_steps`
made the env's own step limit (see `make`).
"""

from __future__ import annotations

import difflib
from typing import Any

import gymnasium as gym

from envs.limits import check_step_limit

_FAMILIES: list[str] = []  # id prefixes registered by the subpackages below
# id prefix -> the constructor argument holding that family's own step limit (set by the subpackages below)
STEP_LIMIT_ARGS: dict[str, str] = {}


def text_env_ids() -> list[str]:
    """Every registered londi text env id."""
    return sorted(k for k in gym.registry if any(k.startswith(p) for p in _FAMILIES))


def check_id(id: str) -> None:
    """Raise `gymnasium.error.UnregisteredEnv` naming the closest valid ids when `id` is not registered."""
    if id not in gym.registry:
        valid = text_env_ids()
        close = difflib.get_close_matches(id, valid, n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise gym.error.UnregisteredEnv(f"Unknown text env id {id!r}.{hint} Valid ids: {', '.join(valid)}")


def make(id: str, **kwargs: Any) -> gym.Env:
    """`gymnasium.make` for londi text envs; an unknown id names the closest valid ones.

    `max_episode_steps=N` is also passed to the env as its own step limit (`STEP_LIMIT_ARGS`: BabyAI-Text's
    `max_steps`, ScienceWorld's `step_limit`). Why: gymnasium's TimeLimit alone cuts episodes at N while the
    env keeps its own limit, which would still truncate earlier, scale BabyAI's success reward and set the
    switcher's horizon. None (or -1, gymnasium's "no TimeLimit"): the env's own limit, unchanged.
    """
    check_id(id)
    return gym.make(id, **with_step_limit(id, kwargs))


def with_step_limit(id: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """`kwargs` with `max_episode_steps` copied to the env's own step-limit argument (see `make`); a bad
    value, or two limits that disagree, is a ValueError (`londi.build.validate` calls it before a run starts)."""
    limit = kwargs.get("max_episode_steps")
    arg = next((a for prefix, a in STEP_LIMIT_ARGS.items() if id.startswith(prefix)), None)
    if limit is None or limit == -1 or arg is None:
        return dict(kwargs)
    limit = check_step_limit(limit, "max_episode_steps")
    if kwargs.get(arg, limit) != limit:
        raise ValueError(
            f"max_episode_steps={limit} and {arg}={kwargs[arg]} both set {id}'s step limit and disagree: "
            f"set only {arg} (or give both the same value)"
        )
    return {**kwargs, arg: limit}

from envs.babyai_text import register_babyai_text  # noqa: E402

register_babyai_text()

from envs.scienceworld import register_scienceworld  # noqa: E402

register_scienceworld()
