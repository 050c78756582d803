"""BabyAI-Text: minigrid's BabyAI levels with GLAM-style text observations (docs/babyai_text.md).

`register_babyai_text()` registers `BabyAI-Text-<Level>-v<N>` for every BabyAI level minigrid registers
(same version suffix as minigrid's id) plus the benchmark's PickupLocal, MixedTrainLocal and
MixedTestLocal (also registered raw as `BabyAI-<Level>-v0`). Registration instantiates nothing.
"""

from __future__ import annotations

import gymnasium as gym

from envs.babyai_text.describe import describe, distance_phrase
from envs.babyai_text.env import ACTIONS, BabyAITextEnv, level_ids, make_level
from envs.babyai_text.levels import HELD_OUT, LEVELS, TASK_KINDS, MixedTestLocal, MixedTrainLocal, PickupLocal

PREFIX = "BabyAI-Text-"

__all__ = [
    "ACTIONS",
    "HELD_OUT",
    "LEVELS",
    "PREFIX",
    "TASK_KINDS",
    "BabyAITextEnv",
    "MixedTestLocal",
    "MixedTrainLocal",
    "PickupLocal",
    "describe",
    "distance_phrase",
    "level_ids",
    "make_level",
    "register_babyai_text",
]


def register_babyai_text() -> list[str]:
    """Register every BabyAI-Text id (idempotent); returns the text ids."""
    import envs

    for name, cls in LEVELS.items():
        raw = f"BabyAI-{name}-v0"
        if raw not in gym.registry:
            gym.register(raw, entry_point=f"{cls.__module__}:{cls.__qualname__}")
    ids = []
    for name, raw in level_ids().items():
        text_id = PREFIX + raw[len("BabyAI-") :]
        if text_id not in gym.registry:
            gym.register(text_id, entry_point="envs.babyai_text.env:BabyAITextEnv", kwargs={"level": name})
        ids.append(text_id)
    if PREFIX not in envs._FAMILIES:
        envs._FAMILIES.append(PREFIX)
    envs.STEP_LIMIT_ARGS[PREFIX] = "max_steps"
    return sorted(ids)
