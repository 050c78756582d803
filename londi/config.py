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
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf


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
    # Cap on the admissible list (and size of the action space), at least 32. ScienceWorld offers hundreds of
    # valid actions, up to ~2,800; a longer list keeps the expert's action and one of every action type,
    # then shares the cap equally among the types; info["admissible_cut"] counts what was cut.
    max_actions: int = 128
    normalize_reward: bool = True  # score delta / 100: an episode's return is the score it gained / 100 (reset's
    # scored "look around" excluded, as in the package), so a DEEPTHINK cost per call means the same share of
    # the task as on BabyAI (reward 0-1)
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


@dataclass
class DistillConfig:
    """`londi-distill` (configs/distill.yaml + a `distill_model` preset): data, model and training recipe."""

    envs: Any = "BabyAI-Text-GoToLocal-v0"  # an env id, or a list of ids trained together (`env` is londi-train's group)
    env_kwargs: dict[str, Any] = field(default_factory=dict)  # more envs.make kwargs (e.g. task=... for ScienceWorld)
    eval_envs: Any = None  # env id(s) to measure on; None: the training envs
    name: str = "model"  # names the default output dir (the preset's name)
    out: str = MISSING  # the run dir: data/, checkpoint.pt, curve.jsonl, model/
    init_from: str | None = None  # a saved model dir to fine-tune (then `arch` is ignored)
    arch: dict[str, Any] = field(default_factory=dict)  # transformers config kwargs: model_type + sizes
    seed: int = 0
    threads: int = 1  # torch CPU threads (1 = bitwise reproducible)
    progress: bool = True  # tqdm bars
    # prompt: what HFPolicy will show the model (saved in the model dir)
    history: int = 0  # past (observation, action) steps in the prompt; prompt length dominates cost
    history_chunk: int = 1  # the history window moves this many steps at once (see londi.lm.prompts)
    max_prompt_tokens: int = 256
    pack: bool = True  # steps whose prompts extend one another train as one sequence
    # data
    episodes: int = 1000  # round-0 episodes per env (clean expert + noise-injected expert)
    noisy_fraction: float = 0.5  # share of round-0 episodes with random-action injection
    noise: float = 0.3  # per-step probability of a random action in noisy episodes
    dagger_rounds: int = 2  # rounds of learner rollouts labelled by the expert (aggregated)
    dagger_episodes: int = 300  # per env and round
    dagger_beta: float = 0.5  # round r follows the expert with probability beta**r
    # optimisation
    steps: int = 2000  # optimizer steps on the round-0 data
    dagger_steps: int = 500  # optimizer steps after each DAgger round (on all data so far)
    batch_size: int = 32  # sequences per step
    lr: float = 3.0e-3
    min_lr_ratio: float = 0.05  # cosine decay over all rounds' steps down to lr * min_lr_ratio
    warmup_steps: int = 100
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    checkpoint_every: int = 200
    stop_at: int | None = None  # stop (after a checkpoint) at this global step; rerun without it to resume
    # evaluation (seeds disjoint from the training seeds, which are seed*1000003 + ...)
    eval_seed: int = 424242
    eval_every: int = 0  # optimizer steps between learning-curve evaluations (0: at the end of each round)
    eval_episodes_round: int = 30  # per env, for the learning curve
    eval_episodes: int = 100  # per env, after training, greedy, on the saved model through HFPolicy
    evaluate_only: str | None = None  # path of a saved model: only measure it (HFPolicy) and rewrite its card


def register_configs() -> None:
    """Store the schemas (idempotent: Hydra's ConfigStore overwrites by name)."""
    cs = ConfigStore.instance()
    cs.store(name="londi_schema", node=LondiConfig)
    cs.store(name="distill_schema", node=DistillConfig)
    cs.store(group="env/babyai_text", name="base", node=BabyAITextEnvConfig)
    cs.store(group="env/scienceworld", name="base", node=ScienceWorldEnvConfig)


def compose(config_name: str = "config", overrides: Sequence[str] = ()) -> DictConfig:
    """The config a londi app composes for these command-line overrides (`hydra.compose` on configs/).

    Tests, scripts and the Python API build their objects from this, so they build exactly what
    `londi-train ... overrides` builds. Not callable from inside a running Hydra app (use its cfg).
    """
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from londi.paths import CONFIG_DIR

    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return hydra_compose(config_name=config_name, overrides=list(overrides))


def _first_set(*values: Any) -> Any:
    """`${londi.first_set:a,b}`: the first value that is not null."""
    return next((v for v in values if v is not None), None)


def _register_resolvers() -> None:
    if not OmegaConf.has_resolver("londi.first_set"):
        OmegaConf.register_new_resolver("londi.first_set", _first_set)
    if not OmegaConf.has_resolver("londi.run_name"):
        from londi.rundir import run_name_from_parts

        OmegaConf.register_new_resolver("londi.run_name", run_name_from_parts)


register_configs()
_register_resolvers()
