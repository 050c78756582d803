"""ScienceWorld as a Gymnasium text env: `gymnasium.make("ScienceWorld-v0", task="boil", variation=0)`.

Registering does not start a JVM; each env starts its own at its first reset (heap bounded, see `jvm.py`).
"""

from __future__ import annotations

import gymnasium as gym

from envs.scienceworld.env import ScienceWorldTextEnv
from envs.scienceworld.jvm import JavaMissingError, ScienceWorldJVM, find_java
from envs.scienceworld.tasks import TASK_NAMES, resolve_task

ENV_ID = "ScienceWorld-v0"

__all__ = [
    "ENV_ID", "TASK_NAMES", "JavaMissingError", "ScienceWorldJVM", "ScienceWorldTextEnv", "find_java",
    "register_scienceworld", "resolve_task",
]


def register_scienceworld() -> None:
    """Register `ScienceWorld-v0` (idempotent) and list its prefix in `envs._FAMILIES`."""
    import envs

    if "ScienceWorld" not in envs._FAMILIES:
        envs._FAMILIES.append("ScienceWorld")
    envs.STEP_LIMIT_ARGS["ScienceWorld"] = "step_limit"
    if ENV_ID not in gym.registry:
        gym.register(id=ENV_ID, entry_point="envs.scienceworld.env:ScienceWorldTextEnv")
