"""The top-level config schemas of the londi apps, their registration in Hydra's ConfigStore, and `compose`.

Why: a misspelt key, a wrong type or an unknown group option must fail when Hydra composes the config,
with Hydra's own message, not minutes into a run. `configs/config.yaml` lists `londi_schema` first in its
defaults, so every top-level key is checked against `LondiConfig` (the `logger` group is typed there:
`LoggerConfig`); the env group options extend `env_babyai_text_schema` / `env_scienceworld_schema`; every
option of the `switcher`, `encoder`, `model` (QUICK and DEEPTHINK) and cascade groups extends its schema
from `londi.schema`. `londi-distill` checks against `DistillConfig`.

Importing this module registers everything (the entry points import it before Hydra composes).
"""

from __future__ import annotations

import enum
import sys
from collections.abc import Callable, Sequence
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
    mode: WandbMode = MISSING  # offline writes a run folder to `wandb sync` later; disabled writes nothing
    project: str = MISSING
    entity: str | None = MISSING
    group: str | None = MISSING  # None -> "<env>-<experiment_name>"
    name: str | None = MISSING  # None -> "<switcher>-<budget|cost>-s<seed>" (see londi.rundir.run_name)
    tags: list[str] = MISSING  # added to the automatic env/switcher/budget/commit tags
    job_type: str = MISSING
    notes: str | None = MISSING


@dataclass
class ProgressConfig:
    mode: ProgressMode = MISSING
    every_seconds: float = MISSING  # plain-lines mode: at most one line per this many seconds


@dataclass
class LoggerConfig:
    wandb: WandbConfig = field(default_factory=WandbConfig)
    progress: ProgressConfig = field(default_factory=ProgressConfig)


@dataclass
class BabyAITextEnvConfig:
    """`envs.make(id, **kwargs)` for a BabyAI-Text level (ids: BabyAI-Text-<Level>-v0)."""

    _target_: str = "envs.make"
    id: str = MISSING
    # The level's step limit, passed to minigrid as its max_steps: truncation, the success reward
    # (1 - 0.9 t / limit) and the switcher's horizon all follow it (not only gymnasium's TimeLimit). None: the
    # level's own limit (64 on GoToLocal; BabyAI recomputes it per episode, e.g. 128 for MixedTrainLocal's
    # two-room task). ScienceWorld's counterpart is `step_limit`.
    max_episode_steps: int | None = None


@dataclass
class ScienceWorldEnvConfig:
    """`envs.make("ScienceWorld-v0", task=..., ...)`; the task by name or index."""

    _target_: str = "envs.make"
    id: str = "ScienceWorld-v0"
    task: Any = MISSING
    variation: int | None = None  # None: sampled from the split with the reset seed
    simplification: str = "easy"
    split: str = "train"
    step_limit: int = 100  # the step limit (truncation, the switcher's horizon): BabyAI's `max_episode_steps`;
    # a `+env.max_episode_steps` may only restate it (envs.make passes it here and refuses a different value)
    # Cap on the admissible list (and size of the action space), at least 32. ScienceWorld offers hundreds of
    # valid actions, up to ~2,800; a longer list keeps the expert's action and one of every action type,
    # then shares the cap equally among the types; info["admissible_cut"] counts what was cut.
    max_actions: int = 128
    # Each step's reward is its score delta / 100 clipped to [-1, 1] (deliberately bounded), so a DEEPTHINK cost
    # per call means the same share of the task as on BabyAI (reward 0-1). Only the step that fails the task is
    # clipped (ScienceWorld sets the score to -100, e.g. on a wrong "focus on"): its reward is exactly -1. So an
    # episode's return is (final score - reset score) / 100 unless it fails, and (score before failing - reset
    # score) / 100 - 1 when it fails (reset score: that of the package's scored "look around" at reset).
    # False: raw score deltas, return = final score - reset score (-100 - reset score on failure).
    normalize_reward: bool = True
    expert_recovery: bool = True  # DEEPTHINK=expert walks back to the gold path after QUICK leaves it


@dataclass
class LondiConfig:
    """The top level of `configs/config.yaml` (which holds the values). Groups are `_target_` nodes built by
    `londi.build`."""

    env: Any = MISSING
    quick: Any = MISSING
    deepthink: Any = MISSING
    switcher: Any = MISSING
    encoder: Any = MISSING
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    experiment_name: str = MISSING  # set by +experiment=NAME presets; part of the W&B group
    seed: int = MISSING
    total_steps: int = MISSING  # switcher training, in env steps
    eval_episodes: int = MISSING
    eval_every: int = MISSING  # env steps between periodic evaluations (0: only at the end)
    checkpoint_every: int = MISSING  # env steps between checkpoints (0: only at the end)
    run_dir: str = MISSING  # everything the run writes goes here (Hydra's output dir)
    device: str = MISSING  # for hf models and torch switchers: cpu | cuda | cuda:N
    threads: int = MISSING  # torch CPU threads; device seconds on CPU are measured under this setting
    n_envs: int = MISSING  # text envs stepped together (one batched LM call per model per vector step)
    env_processes: bool | None = MISSING  # text envs in worker processes; None: ScienceWorld's when n_envs > 1


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
    aux_lm_weight: float = 0.0  # weight of next-token prediction on the non-action tokens (see distill_loss)
    merge_objects: bool = False  # word tokenizer: "red ball" is one token (see londi.lm.tokenization)
    merge_offsets: bool = False  # word tokenizer: "2 steps left" is one token "left_2"
    compact: bool = False  # word tokenizer: drop fixed words, one token per object and per place ("right2_f3")
    prompt_options: dict[str, Any] = field(default_factory=dict)  # the prompt builder's options, e.g. named_objects
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
    finish_at: int | None = None  # end the run at this global step: save out/model and measure it (later rounds skipped)
    # evaluation (seeds disjoint from the training seeds, which are seed*1000003 + ...)
    eval_seed: int = 424242
    eval_every: int = 0  # optimizer steps between learning-curve evaluations (0: at the end of each round)
    eval_episodes_round: int = 30  # per env, for the learning curve
    eval_episodes: int = 100  # per env, after training, greedy, on the saved model through HFPolicy
    eval_temperature: float | None = None  # also measure sampled decoding, softmax(scores / T), on the same episodes
    evaluate_only: str | None = None  # path of a saved model: only measure it (HFPolicy) and rewrite its card
    why: str = ""  # the model card's "Why this size" section (the preset says why it chose its size)


@dataclass
class CascadeSettings:
    """Online cascade learning (`londi.cascade.cascade.OnlineCascade`); `stream`/`levels` are config groups."""

    stream: Any = MISSING
    levels: Any = MISSING
    mu: float = MISSING  # cost trade-off; larger = fewer final-model calls
    forced_p0: float = MISSING  # forced deferral: p0 x decay^(level updates)
    forced_decay: float = MISSING
    calibration_weight: float = MISSING
    learn_from_answered: str = MISSING  # none | audit | pseudo
    audit_rate: float = MISSING
    pseudo_weight: float = MISSING
    update_every: int = MISSING
    head_hidden: int = MISSING
    head_lr: float = MISSING
    top_k: int = MISSING
    head_objective: str = MISSING  # error | cascade


@dataclass
class CascadeWandbConfig:
    mode: WandbMode = MISSING
    project: str = MISSING
    group: str = MISSING


@dataclass
class CascadeAppConfig:
    """`londi-cascade` (configs/cascade_app.yaml, which holds the values)."""

    seed: int = MISSING
    cascade: CascadeSettings = field(default_factory=CascadeSettings)
    log_every: int = MISSING
    window: int = MISSING
    progress: bool = MISSING
    wandb: CascadeWandbConfig = field(default_factory=CascadeWandbConfig)
    run_dir: str = MISSING


class ReportSource(str, enum.Enum):
    """Which episodes measure a run: its final evaluation (`eval`) or `londi-evaluate`'s eval.csv."""

    eval = "eval"
    evaluate = "evaluate"


# The figures' y axis: success rate, or the mean return (ScienceWorld: score gained / 100, and progress - 1 on a
# failed task: see ScienceWorldEnvConfig.normalize_reward). Functional form because
# OmegaConf matches an enum by member name, and `return` is a keyword.
ReportMetric = enum.Enum("ReportMetric", {"success": "success", "return": "return"}, type=str)


@dataclass
class ReportConfig:
    """`londi-report` (configs/report.yaml): tables and figures over a run or sweep folder."""

    dir: str = MISSING  # a londi-train run folder, or a multirun folder holding several
    out: str | None = None  # where the report goes; None: <dir>/report
    source: ReportSource = ReportSource.eval
    metric: ReportMetric = ReportMetric["success"]
    include_unfinished: bool = False  # also tabulate runs that stopped before their end (listed either way)


class EvalSplit(str, enum.Enum):
    """`train`: the run's own env and evaluation seeds; `test`: held-out objects, variations or seeds."""

    train = "train"
    test = "test"


@dataclass
class EvaluateConfig:
    """`londi-evaluate` (configs/evaluate.yaml): re-evaluate a run folder's switcher."""

    run_dir: str = MISSING  # a londi-train run folder
    episodes: int = 100
    split: EvalSplit = EvalSplit.test
    override: dict[str, Any] = field(default_factory=dict)  # keys of the run's config: +override.device=cuda



@dataclass
class DemoConfig:
    """`londi-demo` (configs/demo.yaml): the demo sweep and its report."""

    switchers: list[str] = MISSING
    seeds: list[int] = MISSING
    n_jobs: int = MISSING  # parallel jobs (joblib launcher), at most the CPU count
    sweep_dir: str = MISSING
    overrides: list[str] = MISSING  # more londi-train overrides for every job, e.g. [total_steps=500]


def register_configs() -> None:
    """Store the schemas (idempotent: Hydra's ConfigStore overwrites by name)."""
    cs = ConfigStore.instance()
    from londi.schema import register_schemas

    register_schemas(cs)
    cs.store(name="londi_schema", node=LondiConfig)
    cs.store(name="distill_schema", node=DistillConfig)
    cs.store(name="cascade_app_schema", node=CascadeAppConfig)
    cs.store(name="demo_schema", node=DemoConfig)
    cs.store(name="report_schema", node=ReportConfig)
    cs.store(name="evaluate_schema", node=EvaluateConfig)
    cs.store(name="env_babyai_text_schema", node=BabyAITextEnvConfig)
    cs.store(name="env_scienceworld_schema", node=ScienceWorldEnvConfig)


def compose(config_name: str = "config", overrides: Sequence[str] = ()) -> DictConfig:
    """The config a londi app composes for these command-line overrides (`hydra.compose` on configs/).

    Tests, scripts and the Python API build their objects from this (`londi.build`), so they build exactly
    what `londi-train ... overrides` builds.
    """
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from londi.paths import CONFIG_DIR

    if GlobalHydra.instance().is_initialized():  # inside a running londi app: same search path
        return hydra_compose(config_name=config_name, overrides=list(overrides))
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return hydra_compose(config_name=config_name, overrides=list(overrides))


# Keys that name where a run goes or how it is shown, not what it computes: left out of its fingerprint.
_NOT_FINGERPRINTED = frozenset({"hydra", "run_dir", "logger", "experiment_name"})


def run_app(app: Callable[[], Any], prog: str, argv: Sequence[str] | None) -> None:
    """Run a Hydra app (a `@hydra.main` function) on `argv` instead of the command line, or on the command
    line when `argv` is None; sys.argv is restored after (for the `main(argv)` of the londi entry points)."""
    if argv is None:
        app()
        return
    saved = sys.argv
    sys.argv = [saved[0] if saved else prog, *argv]
    try:
        app()
    finally:
        sys.argv = saved


def override_key(override: str) -> str:
    """The dotted key a Hydra command-line override sets: "+switcher.x=1" -> "switcher.x", "~a.b" -> "a.b"."""
    return str(override).split("=", 1)[0].lstrip("+~")


def config_fingerprint(cfg: DictConfig) -> str:
    """8 hex digits of the resolved config (what the run computes): the default run dir ends with it, so
    rerunning the same command finds the same folder and resumes it."""
    import hashlib
    import json

    data = {}
    for k in cfg:
        if k not in _NOT_FINGERPRINTED:
            v = cfg[k]
            data[k] = OmegaConf.to_container(v, resolve=True, enum_to_str=True) if OmegaConf.is_config(v) else v
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:8]


def _fingerprint_resolver(*, _root_: DictConfig) -> str:
    return config_fingerprint(_root_)


def _first_set(*values: Any) -> Any:
    """`${londi.first_set:a,b}`: the first value that is not null."""
    return next((v for v in values if v is not None), None)


def _if_folder(path: Any, then: Any) -> str:
    """`${londi.if_folder:${dir},OUT}`: OUT when `dir` is a folder, else "." (the current directory).

    Why: Hydra creates its run dir before the app starts; a misspelt `dir=` would leave an empty folder
    behind. "." exists already, so Hydra creates nothing and the app itself says what is wrong.
    """
    from pathlib import Path

    return str(then) if path is not None and Path(str(path)).is_dir() else "."


def _register_resolvers() -> None:
    if not OmegaConf.has_resolver("londi.fingerprint"):
        OmegaConf.register_new_resolver("londi.fingerprint", _fingerprint_resolver)
    if not OmegaConf.has_resolver("londi.first_set"):
        OmegaConf.register_new_resolver("londi.first_set", _first_set)
    if not OmegaConf.has_resolver("londi.run_name"):
        from londi.rundir import switcher_run_name

        OmegaConf.register_new_resolver("londi.run_name", switcher_run_name)
    if not OmegaConf.has_resolver("londi.max"):
        OmegaConf.register_new_resolver("londi.max", lambda *xs: max(xs))
    if not OmegaConf.has_resolver("londi.if_folder"):
        OmegaConf.register_new_resolver("londi.if_folder", _if_folder)


register_configs()
_register_resolvers()
