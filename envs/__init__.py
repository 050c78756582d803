"""Gymnasium text environments. `import envs` registers every id (BabyAI-Text-*, ScienceWorld-v0).

Each subpackage exposes a `register_*()` function that is called here; `envs.make` is `gymnasium.make`
with an error that lists the registered text env ids when the id is unknown.
"""

from __future__ import annotations

import difflib
from typing import Any

import gymnasium as gym

_FAMILIES: list[str] = []  # id prefixes registered by the subpackages below


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
    """`gymnasium.make` for londi text envs; an unknown id names the closest valid ones."""
    check_id(id)
    return gym.make(id, **kwargs)

from envs.babyai_text import register_babyai_text  # noqa: E402

register_babyai_text()

from envs.scienceworld import register_scienceworld  # noqa: E402

register_scienceworld()
