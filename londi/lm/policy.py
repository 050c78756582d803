"""The LM-policy protocol: given text states, pick admissible actions, and pay for it through the meter."""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from londi.lm.state import TextState
from londi.lm.usage import ComputeMeter, Usage


class PolicyError(RuntimeError):
    """An LM could not produce a usable action (endpoint down, unusable reply). Callers may fall back."""


class EndpointError(RuntimeError):
    """A served model refuses every request (wrong key, wrong model name or URL): stop the run.

    Deliberately not a `PolicyError`: retrying cannot fix it, and falling back to QUICK would silently
    turn a DEEPTHINK run into a QUICK run.
    """


@dataclass
class ActResult:
    """One decision: the chosen admissible action, and what the model thought of every candidate.

    `scores` are per-candidate log-probabilities (None for backends that only generate). `hidden` is a
    state embedding, filled only when `act(..., return_hidden=True)` and the backend has one.
    """

    index: int
    action: str
    scores: np.ndarray | None = None
    hidden: np.ndarray | None = None
    info: dict = field(default_factory=dict)

    @property
    def probs(self) -> np.ndarray | None:
        if self.scores is None:
            return None
        z = np.asarray(self.scores, dtype=np.float64)
        z = np.exp(z - z.max())
        return z / z.sum()

    @property
    def entropy(self) -> float:
        p = self.probs
        if p is None:
            return 0.0
        p = p[p > 0]
        return float(-(p * np.log(p)).sum())


class LMPolicy(abc.ABC):
    """Base of every backend. Subclasses implement `_act`; `act` meters it, so no call goes uncounted.

    `_act(states, usage, return_hidden)` must fill `usage.calls`, tokens and `usage.flops` for the batch;
    wall and device seconds are measured around it by the meter. A call is a state that got an action:
    when the batch raises, `act` records its tokens, FLOPs and seconds (that compute was spent) but no
    calls, so call counts (compute/*_calls, *_model_calls) count only decisions that were made.
    """

    simulated: bool = False

    def __init__(self, name: str, meter: ComputeMeter | None = None):
        self.name = name
        self.meter = meter if meter is not None else ComputeMeter()

    def act(self, states: Sequence[TextState], return_hidden: bool = False) -> list[ActResult]:
        if not states:
            return []
        for s in states:
            if not s.admissible_actions:
                raise ValueError(f"{self.name}: state has no admissible actions to choose from")
        usage = Usage(model=self.name, simulated=self.simulated)
        with self.meter.measure(usage):
            try:
                results = self._act(states, usage, return_hidden)
                for s, r in zip(states, results, strict=True):
                    if not 0 <= r.index < len(s.admissible_actions) or s.admissible_actions[r.index] != r.action:
                        raise PolicyError(f"{self.name} returned {r.action!r}, which is not admissible here")
            except BaseException:
                usage.calls = 0  # no action came back: the compute is recorded, the call is not
                raise
        return results

    def act_one(self, state: TextState, return_hidden: bool = False) -> ActResult:
        return self.act([state], return_hidden=return_hidden)[0]

    @abc.abstractmethod
    def _act(self, states: Sequence[TextState], usage: Usage, return_hidden: bool) -> list[ActResult]: ...

    @property
    def num_parameters(self) -> int:
        """Parameter count used for FLOPs; 0 for policies that run no model."""
        return 0

    @property
    def history_needed(self) -> int:
        """Past steps a state must carry for this policy's prompt (the env keeps at least this many)."""
        return 0

    def seed(self, seed: int | None) -> None:  # noqa: B027 - optional hook
        """Reseed any internal randomness (random and sampling backends)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release clients, servers or devices."""
