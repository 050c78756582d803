"""Errors that mean "fix the command or the files", which the apps report in one line without a traceback."""

from __future__ import annotations

import gymnasium as gym

from londi.checkpoints import CheckpointError
from londi.lm.hf import ModelLoadError


class ConfigError(ValueError):
    """A config value that composes but cannot be used (a missing value, an unknown key, a bad number)."""


USER_ERRORS: tuple[type[BaseException], ...] = (ConfigError, CheckpointError, ModelLoadError, gym.error.Error)
