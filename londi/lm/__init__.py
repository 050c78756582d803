"""LM policies: the protocol, backends, prompt building, action scoring, compute meter, distillation."""

from londi.lm.baselines import ExpertPolicy, RandomPolicy
from londi.lm.policy import ActResult, LMPolicy, PolicyError
from londi.lm.state import EpisodeHistory, Step, TextState
from londi.lm.usage import ComputeMeter, Usage

__all__ = [
    "ActResult",
    "ComputeMeter",
    "EpisodeHistory",
    "ExpertPolicy",
    "LMPolicy",
    "PolicyError",
    "RandomPolicy",
    "Step",
    "TextState",
    "Usage",
]
