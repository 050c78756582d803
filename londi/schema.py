"""Typed schemas of every config-group option, one dataclass per option (stored in Hydra's ConfigStore).

Why: the YAML files in configs/ hold the values (the one place defaults live); these dataclasses hold the
types, so a misspelt key (`+switcher.cots=1`), a wrong type (`switcher.cost=abc`) or an unknown choice
(`switcher.algo=dqnn`) fails when Hydra composes the config, before any run folder exists. Every field
is `MISSING` (no default of its own): an option file that forgets a key fails at composition too. The
constructors they target take no defaults either, so the YAML value is the only value.

Each option file starts with `defaults: [/<group>_<option>_schema@_here_, _self_]` (a `/` in the group
becomes `_`); `register_schemas()` stores the dataclasses under those names at the root of the ConfigStore,
so they are types, not options `--help` would list. See docs/configuration.md.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING


class _Choice(str, enum.Enum):
    """A fixed set of string choices; members equal their strings (`Algo.dqn == "dqn"`)."""

    def __str__(self) -> str:
        return str(self.value)


class Algo(_Choice):
    dqn = "dqn"
    ppo = "ppo"


class LambdaRuleName(_Choice):
    pid = "pid"
    sgd = "sgd"


class HeadObjective(_Choice):
    error = "error"
    cascade = "cascade"


class ModelMode(_Choice):
    score = "score"
    generate = "generate"


class Reduction(_Choice):
    sum = "sum"
    mean = "mean"


class DType(_Choice):
    auto = "auto"
    float32 = "float32"
    bfloat16 = "bfloat16"
    float16 = "float16"


class Endpoint(_Choice):
    chat = "chat"
    completions = "completions"


class TinyArch(_Choice):
    llama = "llama"
    gpt2 = "gpt2"
    t5 = "t5"


class TinyTokenizer(_Choice):
    byte = "byte"
    bpe = "bpe"


# ------------------------------------------------------------------------------------------- switchers
@dataclass
class DQNSchema:
    """stable-baselines3 DQN arguments (the switcher's, when algo=dqn)."""

    learning_rate: float = MISSING
    buffer_size: int = MISSING
    learning_starts: int = MISSING
    batch_size: int = MISSING
    gamma: float = MISSING
    train_freq: int = MISSING  # vector steps between updates
    gradient_steps: int = MISSING  # gradient steps per update (-1: one per env step collected)
    max_gradient_steps: int | None = None  # more per update are merged into fewer, larger batches (same samples)
    target_update_interval: int = MISSING
    exploration_fraction: float = MISSING
    exploration_final_eps: float = MISSING
    n_steps: int = MISSING  # n-step returns


@dataclass
class PPOSchema:
    """stable-baselines3 PPO / sb3-contrib MaskablePPO arguments (the switcher's, when algo=ppo)."""

    learning_rate: float = MISSING
    n_steps: int = MISSING
    batch_size: int = MISSING
    n_epochs: int = MISSING
    gamma: float = MISSING
    ent_coef: float = MISSING


@dataclass
class SB3SwitcherSchema:
    _target_: str = MISSING
    algo: Algo = MISSING
    net_arch: list[int] = MISSING
    dqn: DQNSchema = MISSING
    ppo: PPOSchema = MISSING
    device: str = MISSING
    needs_quick_output: bool = MISSING


@dataclass
class LondiSchema(SB3SwitcherSchema):
    _target_: str = "londi.switch.londi.LondiSwitcher"
    cost: float = MISSING


@dataclass
class LondiBSchema(SB3SwitcherSchema):
    _target_: str = "londi.switch.londi_b.LondiBSwitcher"
    cost: float = MISSING
    budget: int = MISSING
    budget_range: list[int] | None = MISSING
    relabel: bool = MISSING  # train on every transition under other feasible budgets too (DQN only)


@dataclass
class LagrangianSchema(SB3SwitcherSchema):
    _target_: str = "londi.switch.lagrangian.LagrangianSwitcher"
    target_calls: float = MISSING
    rule: LambdaRuleName = MISSING
    kp: float = MISSING
    ki: float = MISSING
    kd: float = MISSING
    lr: float = MISSING
    max_lambda: float | None = MISSING
    update_every: int = MISSING


@dataclass
class AlwaysQuickSchema:
    _target_: str = "londi.switch.baselines.AlwaysQuick"


@dataclass
class AlwaysDeepthinkSchema:
    _target_: str = "londi.switch.baselines.AlwaysDeepthink"


@dataclass
class RandomSwitcherSchema:
    _target_: str = "londi.switch.baselines.RandomSwitcher"
    p: float = MISSING


@dataclass
class HeuristicSchema:
    _target_: str = "londi.switch.baselines.HeuristicSwitcher"
    stall_steps: int = MISSING
    max_failures: int = MISSING
    max_consecutive: int = MISSING
    entropy_threshold: float | None = MISSING


@dataclass
class OracleSchema:
    _target_: str = "londi.switch.baselines.OracleSwitcher"
    rule: str = "quick_wrong"  # or deepthink_right: DEEPTHINK only where its action is the expert's and QUICK's is not


@dataclass
class CascadeRouterSchema:
    _target_: str = "londi.cascade.router.CascadeSwitcher"
    mu: float = MISSING
    forced_p0: float = MISSING
    forced_decay: float = MISSING
    audit_rate: float = MISSING
    calibration_weight: float = MISSING
    distill: bool = MISSING
    head_hidden: int = MISSING
    head_lr: float = MISSING
    top_k: int = MISSING
    head_objective: HeadObjective = MISSING
    seed: int = MISSING


# -------------------------------------------------------------------------------------------- encoders
@dataclass
class HashedNgramsSchema:
    _target_: str = "londi.switch.encoders.HashedNgramEncoder"
    n_features: int = MISSING
    ngram_max: int = MISSING
    quick_features: bool = MISSING
    history_features: bool = MISSING
    goal_features: bool = MISSING
    episode_features: bool = MISSING


@dataclass
class QuickHiddenSchema:
    _target_: str = "londi.switch.encoders.QuickHiddenEncoder"
    dim: int | None = MISSING
    quick_features: bool = MISSING


@dataclass
class SentenceEmbeddingSchema:
    _target_: str = "londi.switch.encoders.SentenceEmbeddingEncoder"
    path: str = MISSING
    max_length: int = MISSING
    device: str = MISSING


# ---------------------------------------------------------------------------- models (QUICK / DEEPTHINK)
@dataclass
class HFModelSchema:
    """`HFPolicy`: a transformers LM by local directory, shipped asset ("londi-assets:...") or hub name."""

    _target_: str = "londi.lm.hf.HFPolicy"
    name: str = MISSING  # the role (quick | deepthink), set by configs/config.yaml
    path: str = MISSING
    device: str = MISSING
    dtype: DType = MISSING
    mode: ModelMode = MISSING
    score: Reduction | None = MISSING
    history: int | None = MISSING
    history_chunk: int | None = MISSING
    prompt_options: dict[str, Any] | None = MISSING
    max_prompt_tokens: int | None = MISSING
    greedy: bool = MISSING
    temperature: float = MISSING
    max_new_tokens: int = MISSING
    seed: int | None = MISSING
    trust_remote_code: bool = MISSING


@dataclass
class ExpertModelSchema:
    _target_: str = "londi.lm.baselines.ExpertPolicy"
    name: str = MISSING
    simulated_params: int | None = MISSING
    simulated_flops_per_second: float = MISSING


@dataclass
class RandomModelSchema:
    _target_: str = "londi.lm.baselines.RandomPolicy"
    name: str = MISSING
    seed: int | None = MISSING


@dataclass
class OpenAIModelSchema:
    _target_: str = "londi.lm.openai_client.OpenAIPolicy"
    name: str = MISSING
    base_url: str = MISSING
    model: str = MISSING
    api_key_env: str | None = MISSING
    endpoint: Endpoint = MISSING
    timeout: float = MISSING
    retries: int = MISSING
    backoff: float = MISSING
    max_backoff: float = MISSING
    temperature: float = MISSING
    max_tokens: int = MISSING
    history: int | None = MISSING
    system_prompt: str | None = MISSING
    num_params: float = MISSING  # required: the served model's parameter count (8e9 works), for its FLOPs
    max_concurrency: int = MISSING


@dataclass
class TinyHFModelSchema:
    _target_: str = "londi.lm.tiny.tiny_hf_policy"
    name: str = MISSING
    arch: TinyArch = MISSING
    tokenizer: TinyTokenizer = MISSING
    d_model: int = MISSING
    n_layer: int = MISSING
    n_head: int = MISSING
    model_seed: int = MISSING
    device: str = MISSING
    mode: ModelMode = MISSING
    score: Reduction = MISSING
    history: int = MISSING
    max_prompt_tokens: int = MISSING
    greedy: bool = MISSING
    temperature: float = MISSING
    max_new_tokens: int = MISSING
    seed: int | None = MISSING


@dataclass
class OnlineNgramModelSchema:
    _target_: str = "londi.cascade.router.OnlineNgramPolicy"
    name: str = MISSING
    n_features: int = MISSING
    ngram_range: list[int] = MISSING
    lr: float = MISSING


# ------------------------------------------------------------------------------------ cascade streams
@dataclass
class SyntheticStreamSchema:
    _target_: str = "londi.cascade.streams.synthetic_drifting"
    n: int = MISSING
    num_classes: int = MISSING
    seed: int = MISSING
    words_per_class: int = MISSING
    length: int = MISSING
    drift_every: int = MISSING
    drift_fraction: float = MISSING
    hard_fraction: float = MISSING
    final_accuracy: float = MISSING


@dataclass
class FileStreamSchema:
    _target_: str = MISSING
    path: str = MISSING
    text_col: str = MISSING
    gold_col: str = MISSING
    final_col: str | None = MISSING
    labels: list[str] | None = MISSING
    limit: int | None = MISSING


@dataclass
class CsvStreamSchema(FileStreamSchema):
    _target_: str = "londi.cascade.streams.read_csv"


@dataclass
class JsonlStreamSchema(FileStreamSchema):
    _target_: str = "londi.cascade.streams.read_jsonl"


@dataclass
class HFDatasetStreamSchema:
    _target_: str = "londi.cascade.streams.read_hf_dataset"
    name: str = MISSING
    split: str = MISSING
    text_col: str = MISSING
    gold_col: str = MISSING
    final_col: str | None = MISSING
    limit: int | None = MISSING
    shuffle_seed: int | None = MISSING


@dataclass
class EnvExpertStreamSchema:
    _target_: str = "londi.cascade.streams.env_expert_stream"
    env_id: str = MISSING
    n: int = MISSING
    seed: int = MISSING
    noise: float = MISSING


@dataclass
class CascadeLevelsSchema:
    """The chain of cascade levels, cheapest first; each entry a `_target_` node (londi.cascade.levels)."""

    chain: list[Any] = MISSING


OPTIONS: dict[str, dict[str, type]] = {
    "switcher": {
        "londi": LondiSchema, "londi_b": LondiBSchema, "lagrangian": LagrangianSchema,
        "always_quick": AlwaysQuickSchema, "always_deepthink": AlwaysDeepthinkSchema,
        "random": RandomSwitcherSchema, "heuristic": HeuristicSchema, "oracle": OracleSchema,
        "cascade": CascadeRouterSchema,
    },
    "encoder": {"hashed_ngrams": HashedNgramsSchema, "quick_hidden": QuickHiddenSchema,
                "sentence_embedding": SentenceEmbeddingSchema},
    "model": {"distilled": HFModelSchema, "hf": HFModelSchema, "expert": ExpertModelSchema,
              "random": RandomModelSchema, "openai": OpenAIModelSchema, "tiny_hf": TinyHFModelSchema,
              "online_ngram": OnlineNgramModelSchema},
    "cascade/stream": {"synthetic": SyntheticStreamSchema, "csv": CsvStreamSchema, "jsonl": JsonlStreamSchema,
                       "hf": HFDatasetStreamSchema, "babyai_expert": EnvExpertStreamSchema},
    "cascade/levels": {"chain": CascadeLevelsSchema},
}
"""Group -> option -> schema; every YAML option file of these groups extends its schema."""


def schema_name(group: str, option: str) -> str:
    """The ConfigStore name of an option's schema: `switcher/londi` -> `switcher_londi_schema`."""
    return f"{group.replace('/', '_')}_{option}_schema"


def register_schemas(cs: ConfigStore | None = None) -> None:
    """Store every option schema at the root of the ConfigStore (idempotent)."""
    cs = cs or ConfigStore.instance()
    for group, options in OPTIONS.items():
        for name, node in options.items():
            cs.store(name=schema_name(group, name), node=node)
