"""Small builders the tests share: switchers from the real config path, tiny encoders and policies."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from londi import build
from londi.lm.baselines import ExpertPolicy, RandomPolicy
from londi.switch.encoders import HashedNgramEncoder


def load_script(name: str) -> ModuleType:
    """scripts/NAME.py imported as a module (scripts are not a package); registered in sys.modules, where
    dataclasses look their module up."""
    path = Path(__file__).resolve().parents[1] / "scripts" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def switcher(name: str, *overrides: str) -> Any:
    """The switcher `londi-train switcher=NAME OVERRIDES...` builds."""
    return build.switcher([f"switcher={name}", *overrides])


def hashed(n_features: int = 16, ngram_max: int = 2, **flags: bool) -> HashedNgramEncoder:
    """A small hashed-n-gram encoder, every feature flag off unless given."""
    opts = {"quick_features": False, "history_features": False, "goal_features": False, "episode_features": False}
    return HashedNgramEncoder(n_features=n_features, ngram_max=ngram_max, **{**opts, **flags})


def expert(name: str = "d", simulated_params: int | None = None) -> ExpertPolicy:
    return ExpertPolicy(name=name, simulated_params=simulated_params, simulated_flops_per_second=1e13)


def random_policy(name: str = "q", seed: int | None = 0) -> RandomPolicy:
    return RandomPolicy(name=name, seed=seed)


HF_SETTINGS = {"device": "cpu", "dtype": "float32", "mode": "score", "greedy": True, "temperature": 1.0,
               "max_new_tokens": 16}


def hf_policy(**kwargs: Any) -> Any:
    """An `HFPolicy` with the settings of configs/model/hf.yaml on CPU (kwargs: path or model+tokenizer, ...)."""
    from londi.lm.hf import HFPolicy

    return HFPolicy(**{**HF_SETTINGS, **kwargs})


OPENAI_SETTINGS = {"name": "dt", "base_url": "http://127.0.0.1:9/v1", "model": "m", "api_key_env": None,
                   "endpoint": "chat", "timeout": 30.0, "retries": 3, "backoff": 0.5, "max_backoff": 8.0,
                   "temperature": 0.0, "max_tokens": 32, "history": None, "system_prompt": None, "num_params": 1e9,
                   "max_concurrency": 8}


def openai_policy(**kwargs: Any) -> Any:
    """An `OpenAIPolicy` with the settings of configs/model/openai.yaml, pointed where kwargs say."""
    from londi.lm.openai_client import OpenAIPolicy

    return OpenAIPolicy(**{**OPENAI_SETTINGS, **kwargs})


def tiny(meter: Any = None, **overrides: Any) -> Any:
    """The `tiny_hf` model option as `londi-train model@quick=tiny_hf quick.KEY=VALUE ...` builds it."""
    cfg = build.config(["model@quick=tiny_hf", *(f"quick.{k}={'null' if v is None else v}" for k, v in overrides.items())])
    # the meter goes to the built object, not through Hydra (which would turn a dataclass into a config)
    return build.instantiate_node(cfg.quick, _partial_=True)(meter=meter)
