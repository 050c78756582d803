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
    state embedding, filled only when `act(..., return_hidden=True)` and the backend has one. `usage` is
    this state's share of the call (set by `LMPolicy.act`, see `split_usage`).
    """

    index: int
    action: str
    scores: np.ndarray | None = None
    hidden: np.ndarray | None = None
    info: dict = field(default_factory=dict)
    usage: Usage | None = None

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


def split_usage(total: Usage, results: Sequence[ActResult]) -> None:
    """Give every result its share of a batched call's `total` usage (`result.usage`, one call each).

    Tokens and FLOPs are each state's own when the backend filled `result.usage` with them (exact: a batch
    costs the sum of its states), else an equal share. Wall and device seconds cannot be told apart
    within a batch: each state gets a share in proportion to its tokens (equal when no tokens are known).
    The shares add up to `total`, so per-episode compute sums to what the meter recorded.
    """
    n = len(results)
    if n == 0:
        return
    own = [r.usage for r in results]
    if any(u is None for u in own):
        own = [Usage(model=total.model, prompt_tokens=0, completion_tokens=0) for _ in results]
        for i, u in enumerate(own):  # equal shares; integer tokens spread so they sum exactly
            u.prompt_tokens = total.prompt_tokens // n + (1 if i < total.prompt_tokens % n else 0)
            u.completion_tokens = total.completion_tokens // n + (1 if i < total.completion_tokens % n else 0)
            u.flops = total.flops / n
    tokens = [u.tokens for u in own]
    weights = [t / sum(tokens) for t in tokens] if sum(tokens) > 0 else [1.0 / n] * n
    for r, u, w in zip(results, own, weights, strict=True):
        r.usage = Usage(model=total.model, calls=1, prompt_tokens=u.prompt_tokens, completion_tokens=u.completion_tokens,
                        flops=u.flops, wall_seconds=total.wall_seconds * w, device_seconds=total.device_seconds * w,
                        device_kind=total.device_kind, simulated=total.simulated)


class LMPolicy(abc.ABC):
    """Base of every backend. Subclasses implement `_act`; `act` meters it, so no call goes uncounted.

    `_act(states, usage, return_hidden)` must fill `usage.calls`, tokens and `usage.flops` for the batch;
    wall and device seconds are measured around it by the meter, on the clock of `compute_device`. A call
    is a state that got an action: when the batch raises, `act` records its tokens, FLOPs and seconds (that
    compute was spent) but no calls, so call counts (compute/*_calls, *_model_calls) count only decisions
    that were made.
    """

    simulated: bool = False

    def __init__(self, name: str, meter: ComputeMeter | None = None):
        self.name = name
        self.meter = meter if meter is not None else ComputeMeter()
        self._rngs: list[np.random.Generator] = [np.random.default_rng()]

    def act(self, states: Sequence[TextState], return_hidden: bool = False) -> list[ActResult]:
        if not states:
            return []
        for s in states:
            if not s.admissible_actions:
                raise ValueError(f"{self.name}: state has no admissible actions to choose from")
        usage = Usage(model=self.name, simulated=self.simulated)
        with self.meter.measure(usage, device=self.compute_device):
            try:
                results = self._act(states, usage, return_hidden)
                for s, r in zip(states, results, strict=True):
                    if not 0 <= r.index < len(s.admissible_actions) or s.admissible_actions[r.index] != r.action:
                        raise PolicyError(f"{self.name} returned {r.action!r}, which is not admissible here")
            except BaseException:
                usage.calls = 0  # no action came back: the compute is recorded, the call is not
                raise
        split_usage(usage, results)
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
    def compute_device(self) -> str:
        """Where this policy's work runs, so the meter times it with that device's clock: "cpu" (the
        calling thread's CPU time), "cuda" / "cuda:N" (CUDA events), or "remote" (`_act` adds the seconds
        it measured). Override it in a backend that runs elsewhere than the calling thread's CPU."""
        return "cpu"

    def trained_episode_seeds(self, env_id: str) -> list[tuple[int, int]]:
        """The reset seeds of `env_id` this policy was trained on ([first, end) ranges): an evaluation on them
        is refused (`londi.lm.heldout`). None known: []."""
        return []

    def fingerprint(self) -> str | None:
        """A short hash of the weights this policy acts with (None when it has none): a run records it so
        that a resume or a re-evaluation with other weights under the same path fails instead of mixing."""
        return None

    @property
    def history_needed(self) -> int:
        """Past steps a state must carry for this policy's prompt (the env keeps at least this many)."""
        return 0

    def seed(self, seed: int | Sequence[int] | None) -> None:
        """Reseed the randomness of sampling backends: one seed, or one per state of the next `act` batch
        (then each state draws from its own generator, so a batched call makes the same choices as calls
        one state at a time with those seeds)."""
        if seed is None or isinstance(seed, (int, np.integer)):
            self._rngs = [np.random.default_rng(seed)]
        else:
            self._rngs = [np.random.default_rng(int(s)) for s in seed]

    def rng(self, i: int = 0) -> np.random.Generator:
        """The generator for state `i` of the current batch (the one shared generator without per-state seeds)."""
        return self._rngs[i] if i < len(self._rngs) else self._rngs[0]

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release clients, servers or devices."""
