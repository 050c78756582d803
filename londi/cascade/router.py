"""Per-state cascade routing in the text envs: `switcher=cascade`.

A two-level cascade over actions: QUICK answers unless its deferral head defers to DEEPTHINK. QUICK is
asked first at every state (`needs_quick_output`), the head reads QUICK's action probabilities, and every
DEEPTHINK answer trains the head (cascade loss: defer when QUICK's cross-entropy on DEEPTHINK's action
exceeds mu x cost) and, when QUICK can learn (a policy with `learn(states, action_indices)`, such as
`OnlineNgramPolicy` here), distils DEEPTHINK's action into QUICK, so QUICK improves during the run and
the DEEPTHINK fraction falls. The switcher never calls a model itself: the env calls both and meters them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from londi.cascade.deferral import (
    HEAD_OBJECTIVES,
    ForcedDeferral,
    HeadTrainer,
    deferral_features,
    error_threshold,
    should_defer,
)
from londi.lm.policy import ActResult, LMPolicy
from londi.lm.state import TextState
from londi.lm.usage import ComputeMeter, Usage
from londi.switch.base import DEEPTHINK, QUICK, DecisionContext, Switcher, Transition


def state_text(state: TextState) -> str:
    """The words QUICK's n-gram model reads: the mission and the current observation/descriptions."""
    body = " . ".join(state.descriptions) if state.descriptions is not None else state.obs
    return f"{state.mission} . {body}"


class OnlineNgramPolicy(LMPolicy):
    """A QUICK that learns online: a linear scorer over (state n-gram, candidate action) pairs.

    Each candidate's score is w . phi(state, action), where phi hashes every state n-gram crossed with the
    action's words (so it handles fixed and varying admissible-action sets alike); `learn` takes a softmax
    cross-entropy SGD step towards the given action index (distillation of DEEPTHINK's choices).
    """

    def __init__(
        self,
        *,
        name: str,
        n_features: int,
        ngram_range: tuple[int, int] | list[int],
        lr: float,
        meter: ComputeMeter | None = None,
    ):
        super().__init__(name, meter)
        from sklearn.feature_extraction.text import HashingVectorizer

        self.vectorizer = HashingVectorizer(n_features=n_features, ngram_range=tuple(ngram_range), alternate_sign=False, norm="l2")
        self.n_features = n_features
        self.lr = lr
        self.weight = np.zeros(n_features)
        self.n_updates = 0

    @property
    def num_parameters(self) -> int:
        return self.n_features

    def _phi(self, state: TextState):
        text = state_text(state)
        docs = [" ".join(f"{a.replace(' ', '_')}__{tok}" for tok in text.split()) for a in state.admissible_actions]
        docs = [f"{d} {a} " for d, a in zip(docs, state.admissible_actions, strict=True)]
        return self.vectorizer.transform(docs).tocsr()

    def _scores(self, state: TextState) -> tuple[np.ndarray, Any]:
        x = self._phi(state)
        z = np.asarray(x @ self.weight).ravel()
        return z - np.logaddexp.reduce(z), x

    def _act(self, states: Sequence[TextState], usage: Usage, return_hidden: bool) -> list[ActResult]:
        out = []
        for s in states:
            scores, x = self._scores(s)
            usage.calls += 1
            usage.prompt_tokens += len(state_text(s).split())
            usage.flops += 2.0 * x.nnz
            i = int(np.argmax(scores))
            out.append(ActResult(index=i, action=s.admissible_actions[i], scores=scores))
        return out

    def learn(self, states: Sequence[TextState], targets: Sequence[int]) -> None:
        """One SGD step per state towards `targets` (indices into its admissible actions); metered."""
        with self.meter.measure(Usage(model=f"{self.name}/train"), device=self.compute_device) as usage:
            for s, y in zip(states, targets, strict=True):
                scores, x = self._scores(s)
                g = np.exp(scores)
                g[y] -= 1.0
                usage.flops += 6.0 * x.nnz
                usage.prompt_tokens += len(state_text(s).split())
                np.add.at(self.weight, x.indices, -self.lr * np.repeat(g, np.diff(x.indptr)) * x.data)
                self.n_updates += 1

    def save(self, directory: str | Path) -> None:
        np.save(Path(directory) / f"{self.name}_ngram_weight.npy", self.weight)

    def load(self, directory: str | Path) -> None:
        self.weight = np.load(Path(directory) / f"{self.name}_ngram_weight.npy")


class CascadeSwitcher(Switcher):
    """Online-cascade router: DEEPTHINK iff QUICK's deferral head says defer (or forced early on).

    `mu` trades success for DEEPTHINK calls (DEEPTHINK's cost is 1 in the paper's units). `distill`
    trains QUICK on DEEPTHINK's actions when QUICK has a `learn` method. `audit_rate` keeps a small
    floor of DEEPTHINK calls during training so the head keeps seeing states it would answer itself.
    `head_objective="error"` (default) trains d as P(QUICK disagrees with DEEPTHINK) and defers iff d > mu;
    `"cascade"` is the paper's loss with the d > 0.5 rule (see `OnlineCascade`).
    """

    name = "cascade"
    reads_obs = False  # routes on QUICK's output (ctx.quick), not the encoded state
    needs_quick_output = True
    learns = True

    def __init__(
        self,
        *,
        mu: float,
        forced_p0: float,
        forced_decay: float,
        audit_rate: float,
        calibration_weight: float,
        distill: bool,
        head_hidden: int,
        head_lr: float,
        top_k: int,
        head_objective: str,
        seed: int,
    ):
        if head_objective not in HEAD_OBJECTIVES:
            raise ValueError(f"head_objective={head_objective!r}; choose one of {HEAD_OBJECTIVES}")
        self.head_objective = head_objective
        self.mu = float(mu)
        self.forced = ForcedDeferral(forced_p0, forced_decay)
        self.audit_rate = audit_rate
        self.calibration_weight = calibration_weight
        self.distill = distill
        self.top_k = top_k
        self.seed = seed
        torch.manual_seed(seed)
        self.trainer = HeadTrainer(top_k + 1, head_hidden, head_lr)
        self.quick: LMPolicy | None = None
        self.n_updates = 0
        self._training = False
        self._window: list[int] = []
        self._last_loss = float("nan")
        self._steps = 0
        self._deepthink = 0

    def setup(self, env: Any, seed: int, total_steps: int | None = None) -> None:
        self.quick = getattr(env, "quick", None)
        torch.manual_seed(seed)

    def d(self, quick: ActResult | None) -> float:
        """QUICK's deferral probability on a state (1.0 when QUICK gave no scores: nothing to judge)."""
        if quick is None or quick.scores is None:
            return 1.0
        return float(self.trainer.d(deferral_features(np.asarray(quick.scores)[None], self.top_k))[0])

    def decide(self, obs: np.ndarray, ctx: DecisionContext) -> int:
        if not ctx.action_mask[DEEPTHINK]:
            return QUICK
        d = self.d(ctx.quick)
        defer = d > error_threshold(self.mu, 1.0) if self.head_objective == "error" else bool(should_defer(d))
        if self._training and not defer:
            p = max(self.forced.probability(self.n_updates), self.audit_rate)
            defer = bool(ctx.rng.random() < p)
        return DEEPTHINK if defer else QUICK

    def learn(self, env: Any, steps: int, on_step: Any) -> None:
        self._training = True
        try:
            super().learn(env, steps, on_step)
        finally:
            self._training = False

    def observe(self, t: Transition) -> None:
        self._steps += 1
        self._deepthink += int(t.acted == DEEPTHINK)
        if t.deepthink is None or t.quick is None or t.quick.scores is None:
            return
        y = t.deepthink.index
        scores = np.asarray(t.quick.scores, dtype=np.float64)
        ce = float(np.logaddexp.reduce(scores) - scores[y])
        feats = deferral_features(scores[None], self.top_k)
        self._last_loss = self.trainer.update(
            feats, np.array([ce]), np.array([float(t.quick.index != y)]), self.mu, 1.0, self.calibration_weight,
            self.head_objective,
        )
        self.n_updates += 1
        if self.distill and self.quick is not None and hasattr(self.quick, "learn"):
            self.quick.learn([t.state], [y])

    def metrics(self) -> dict[str, float]:
        return {
            "losses/deferral": self._last_loss,
            "cascade/head_updates": float(self.n_updates),
            "cascade/forced_p": self.forced.probability(self.n_updates),
            "cascade/train_deepthink_frac": self._deepthink / max(self._steps, 1),
        }

    def state_dict(self) -> dict[str, Any]:
        return {"n_updates": self.n_updates, "steps": self._steps, "deepthink": self._deepthink}

    def load_state_dict(self, state: Any) -> None:
        self.n_updates = int(state.get("n_updates", 0))
        self._steps = int(state.get("steps", 0))
        self._deepthink = int(state.get("deepthink", 0))

    def save(self, directory: str | Path) -> None:
        super().save(directory)
        torch.save(
            {"head": self.trainer.head.state_dict(), "opt": self.trainer.optimizer.state_dict()},
            Path(directory) / "cascade_head.pt",
        )
        if self.quick is not None and hasattr(self.quick, "save") and hasattr(self.quick, "learn"):
            self.quick.save(directory)

    def load(self, directory: str | Path) -> None:
        super().load(directory)
        ckpt = torch.load(Path(directory) / "cascade_head.pt", weights_only=True)
        self.trainer.head.load_state_dict(ckpt["head"])
        self.trainer.optimizer.load_state_dict(ckpt["opt"])
        if self.quick is not None and hasattr(self.quick, "load") and hasattr(self.quick, "learn"):
            self.quick.load(directory)
