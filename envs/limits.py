"""The one rule for a step limit given to a text env (`envs.make`'s max_episode_steps, an env's own argument)."""

from __future__ import annotations

from typing import Any

import numpy as np


def check_step_limit(value: Any, name: str) -> int | None:
    """`value` as an int >= 1, or None (the env's own limit); anything else is a ValueError naming `name`
    (minigrid would take 0 and divide by it)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be an int >= 1 or None (the env's own limit), got {value!r}")
    return int(value)
