"""Policies that run no language model: the env's expert (upper bound) and uniform random (lower bound)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from londi.lm.policy import ActResult, LMPolicy, PolicyError
from londi.lm.state import TextState
from londi.lm.usage import DEVICE_SIMULATED, ComputeMeter, Usage


class ExpertPolicy(LMPolicy):
    """Acts with the env's `expert_action()`.

    With `simulated_params` set it stands in for a model of that size and is charged its cost: FLOPs
    = 2 x params x prompt tokens (tokens estimated as whitespace-separated words of the state's prompt
    text) and device seconds = FLOPs / `simulated_flops_per_second`. Every output labels it simulated.
    With `simulated_params=None` it is free (an oracle, not a model).
    """

    def __init__(
        self,
        *,
        name: str,
        simulated_params: int | None,
        simulated_flops_per_second: float,
        meter: ComputeMeter | None = None,
    ):
        super().__init__(name, meter)
        self.simulated_params = simulated_params
        self.simulated_flops_per_second = simulated_flops_per_second
        self.simulated = simulated_params is not None

    @property
    def num_parameters(self) -> int:
        return int(self.simulated_params or 0)

    def _act(self, states: Sequence[TextState], usage: Usage, return_hidden: bool) -> list[ActResult]:
        out = []
        for s in states:
            if s.expert is None:
                raise PolicyError("expert policy needs a state built with its env (TextState.from_env(..., env=env))")
            action = s.expert()
            if action is None or action not in s.admissible_actions:
                raise PolicyError(f"expert has no admissible action here (it proposed {action!r})")
            own = Usage(model=self.name, calls=1)
            if self.simulated:
                tokens = len(s.obs.split()) + len(s.mission.split()) + sum(len(a.split()) for a in s.admissible_actions)
                own.prompt_tokens, own.flops = tokens, 2.0 * self.num_parameters * tokens
            out.append(ActResult(index=s.admissible_actions.index(action), action=action, usage=own))
            usage.calls += 1
            usage.prompt_tokens += own.prompt_tokens
            usage.flops += own.flops
        if self.simulated:
            usage.device_kind = DEVICE_SIMULATED
            usage.device_seconds += usage.flops / self.simulated_flops_per_second
        return out


class RandomPolicy(LMPolicy):
    """Uniform over admissible actions; seeded for reproducibility."""

    def __init__(self, *, name: str, seed: int | None, meter: ComputeMeter | None = None):
        super().__init__(name, meter)
        self.seed(seed)

    def _act(self, states: Sequence[TextState], usage: Usage, return_hidden: bool) -> list[ActResult]:
        out = []
        for n, s in enumerate(states):
            k = len(s.admissible_actions)
            i = int(self.rng(n).integers(k))
            out.append(ActResult(index=i, action=s.admissible_actions[i], scores=np.full(k, -np.log(k))))
            usage.calls += 1
        return out
