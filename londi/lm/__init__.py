"""LM policies: the protocol, backends, prompt building, action scoring, compute meter, distillation."""

from londi.lm.baselines import ExpertPolicy, RandomPolicy
from londi.lm.matching import match_action
from londi.lm.policy import ActResult, EndpointError, LMPolicy, PolicyError
from londi.lm.prompts import build_prompt, get_prompt_builder, register_prompt_builder
from londi.lm.state import EpisodeHistory, Step, TextState
from londi.lm.usage import ComputeMeter, Usage

__all__ = [
    "ActResult",
    "ActionScorer",
    "HFPolicy",
    "OpenAIPolicy",
    "build_prompt",
    "get_prompt_builder",
    "match_action",
    "register_prompt_builder",
    "ComputeMeter",
    "EndpointError",
    "EpisodeHistory",
    "ExpertPolicy",
    "LMPolicy",
    "PolicyError",
    "RandomPolicy",
    "Step",
    "TextState",
    "Usage",
]

# Backends that import torch/transformers load on first use, so `import londi.lm` stays cheap.
_LAZY = {
    "ActionScorer": "londi.lm.scoring",
    "HFPolicy": "londi.lm.hf",
    "OpenAIPolicy": "londi.lm.openai_client",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'londi.lm' has no attribute {name!r}")
