"""Structured config schemas for `londi-train` and friends, registered in Hydra's ConfigStore.

Why: a misspelt key, a wrong type or an unknown group option must fail when Hydra composes the config,
with Hydra's own message, not minutes into a run. `configs/config.yaml` lists `londi_schema` first in its
defaults, so every key it and its groups set is checked against `LondiConfig` (the `logger` group is
typed there: `LoggerConfig`); the env group options extend their own schemas (`env/babyai_text/base`,
`env/scienceworld/base`).
The `quick`, `deepthink`, `switcher` and `encoder` groups are `_target_` nodes whose keys are checked by
the constructor they name (`hydra.utils.instantiate`); Hydra's struct mode already rejects overriding a key
they do not have (`switcher.cots=0.1` -> "Could not override 'switcher.cots'").

Call `register_configs()` before composing (the entry points do it at import).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, OmegaConf


class WandbMode(str, enum.Enum):
    """W&B modes: offline writes a run folder you can `wandb sync` later; disabled writes nothing."""

    online = "online"
    offline = "offline"
    disabled = "disabled"


class ProgressMode(str, enum.Enum):
    """auto: a bar on a terminal, plain periodic lines otherwise (files, CI, Slurm logs)."""

    auto = "auto"
    bar = "bar"
    lines = "lines"
    off = "off"


@dataclass
class WandbConfig:
    mode: WandbMode = WandbMode.offline
    project: str = "londi"
    entity: str | None = None
    group: str | None = None  # None -> "<env>-<experiment_name>"
    name: str | None = None  # None -> "<switcher>-<budget|cost>-s<seed>" (see londi.rundir.run_name)
    tags: list[str] = field(default_factory=list)  # added to the automatic env/switcher/budget/commit tags
    job_type: str = "train"
    notes: str | None = None


@dataclass
class ProgressConfig:
    mode: ProgressMode = ProgressMode.auto
    every_seconds: float = 15.0  # plain-lines mode: at most one line per this many seconds


@dataclass
class LoggerConfig:
    wandb: WandbConfig = field(default_factory=WandbConfig)
    progress: ProgressConfig = field(default_factory=ProgressConfig)


@dataclass
class BabyAITextEnvConfig:
    """`envs.make(id, **kwargs)` for a BabyAI-Text level (ids: BabyAI-Text-<Level>-v0)."""

    _target_: str = "envs.make"
    id: str = MISSING
    max_episode_steps: int | None = None  # None: the level's own limit


@dataclass
class ScienceWorldEnvConfig:
    """`envs.make("ScienceWorld-v0", task=..., ...)`; the task by name or index."""

    _target_: str = "envs.make"
    id: str = "ScienceWorld-v0"
    task: Any = MISSING
    variation: int | None = None  # None: sampled from the split with the reset seed
    simplification: str = "easy"
    split: str = "train"
    step_limit: int = 100
    max_actions: int = 128  # cap on the admissible list QUICK scores (the expert's action is always kept)
    normalize_reward: bool = True  # score delta / 100: an episode's return is its final score / 100, so a
    # DEEPTHINK cost per call means the same share of the task as on BabyAI (reward 0-1)
    expert_recovery: bool = True  # DEEPTHINK=expert walks back to the gold path after QUICK leaves it


@dataclass
class LondiConfig:
    """The top level of `configs/config.yaml`. Groups are `_target_` nodes built with `instantiate`."""

    env: Any = MISSING
    quick: Any = MISSING
    deepthink: Any = MISSING
    switcher: Any = MISSING
    encoder: Any = None
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    experiment_name: str = "default"  # set by +experiment=NAME presets; part of the W&B group
    seed: int = 0
    total_steps: int = 20_000  # switcher training, in env steps
    eval_episodes: int = 50
    eval_every: int = 5_000  # env steps between periodic evaluations (0: only at the end)
    checkpoint_every: int = 5_000  # env steps between checkpoints (resume restarts from the last one)
    run_dir: str = "${hydra:runtime.output_dir}"  # everything the run writes goes here
    device: str = "cpu"  # for hf models and torch switchers: cpu | cuda | cuda:N


def register_configs() -> None:
    """Store the schemas (idempotent: Hydra's ConfigStore overwrites by name)."""
    cs = ConfigStore.instance()
    cs.store(name="londi_schema", node=LondiConfig)
    cs.store(group="env/babyai_text", name="base", node=BabyAITextEnvConfig)
    cs.store(group="env/scienceworld", name="base", node=ScienceWorldEnvConfig)


def _register_resolvers() -> None:
    if not OmegaConf.has_resolver("londi.run_name"):
        from londi.rundir import run_name_from_parts

        OmegaConf.register_new_resolver("londi.run_name", run_name_from_parts)


register_configs()
_register_resolvers()
