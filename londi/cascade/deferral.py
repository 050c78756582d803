"""Deferral heads and the cascade losses (Nie et al., ICML 2024).

A deferral head reads a level's class probabilities and outputs d in (0,1); the level answers when
d <= 0.5 and passes the item to the next level otherwise. Its training signal, when the final model's label
y is known, is the cascade loss

    (1 - d) * CE(logits, y) + d * mu * cost(next level)

whose gradient in d pushes d up exactly when the level's own loss exceeds the price of asking the next level,
plus (optionally) a calibration term BCE(d, 1[level disagreed with y]). The cross-entropy takes LOGITS (the
published code fed it probabilities, which flattens its gradient). Early in the stream deferral is forced
with a probability that decays geometrically in the level's update count (expert mixing, as in DAgger).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

DEFER_THRESHOLD = 0.5
HEAD_OBJECTIVES = ("cascade", "error")  # the paper's cascade loss | error-probability BCE (see error_loss)


def should_defer(d: float | np.ndarray | torch.Tensor, threshold: float = DEFER_THRESHOLD):
    """The paper's rule: a level answers when d <= threshold, defers when d > threshold."""
    return d > threshold


def deferral_features(logits: np.ndarray, top_k: int = 4) -> np.ndarray:
    """What a deferral head reads: the level's top-k class probabilities (descending) and their entropy.

    Sorting makes the head independent of which class is predicted and of the number of classes, so the
    same head serves fixed label sets and varying admissible-action sets; entropy is normalised to [0,1].
    """
    z = np.atleast_2d(np.asarray(logits, dtype=np.float64))
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    ps = -np.sort(-p, axis=1)
    k = ps.shape[1]
    top = np.zeros((ps.shape[0], top_k))
    top[:, : min(k, top_k)] = ps[:, :top_k]
    ent = -(p * np.log(np.clip(p, 1e-12, 1.0))).sum(axis=1) / max(np.log(k), 1e-12) if k > 1 else np.zeros(len(p))
    return np.concatenate([top, ent[:, None]], axis=1).astype(np.float32)


class DeferralHead(nn.Module):
    """Small MLP: deferral features -> d in (0,1). Starts near d = 0.5 + `init_bias` offset (defer-leaning)."""

    def __init__(self, in_dim: int, hidden: int = 16, init_defer: float = 0.6):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_dim, hidden), nn.Tanh(), nn.Linear(hidden, 1))
        with torch.no_grad():
            self.net[-1].bias.fill_(float(np.log(init_defer / (1.0 - init_defer))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.net(x)).squeeze(-1)

    @property
    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def cascade_loss(
    logits: torch.Tensor, target: torch.Tensor, d: torch.Tensor, mu: float, next_cost: float
) -> torch.Tensor:
    """Per-item (1 - d) * CE(logits, target) + d * mu * next_cost; `logits` are raw scores, not probabilities."""
    ce = F.cross_entropy(logits, target, reduction="none")
    return (1.0 - d) * ce + d * mu * next_cost


def deferral_loss(
    d: torch.Tensor,
    level_ce: torch.Tensor,
    disagree: torch.Tensor,
    mu: float,
    next_cost: float,
    calibration_weight: float = 0.0,
) -> torch.Tensor:
    """Mean loss that trains a deferral head: the cascade loss in d (the level's CE is a constant here)
    plus `calibration_weight` x BCE(d, disagree)."""
    loss = (1.0 - d) * level_ce.detach() + d * mu * next_cost
    if calibration_weight:
        loss = loss + calibration_weight * F.binary_cross_entropy(d.clamp(1e-6, 1 - 1e-6), disagree.float(), reduction="none")
    return loss.mean()


def error_loss(d: torch.Tensor, disagree: torch.Tensor) -> torch.Tensor:
    """Mean BCE(d, 1[level disagreed with the final model]): trains d as the level's error probability.

    With a calibrated error probability e, answering costs e in expected 0/1 loss and deferring costs
    mu x cost(next level), so the Bayes rule is "defer iff e > mu x cost(next)": the paper's linear cascade
    loss with the 0/1 loss in place of the cross-entropy, whose minimiser in d is exactly that threshold.
    A proper scoring rule gives the head a strong gradient everywhere, where the linear loss's gradient
    d(1-d)(mu c - CE) leaves d hovering at the 0.5 boundary on noisy single-item updates.
    """
    return F.binary_cross_entropy(d.clamp(1e-6, 1 - 1e-6), disagree.float())


def error_threshold(mu: float, next_cost: float) -> float:
    """Error probability above which a level defers under the "error" objective: mu x cost(next level)."""
    return float(mu * next_cost)


@dataclass
class ForcedDeferral:
    """Defer regardless of d with probability `p0 * decay ** n_updates` (0 when `p0` is 0)."""

    p0: float = 1.0
    decay: float = 0.99

    def probability(self, n_updates: int) -> float:
        if not 0.0 <= self.p0 <= 1.0 or not 0.0 <= self.decay <= 1.0:
            raise ValueError(f"forced deferral needs p0 and decay in [0,1], got p0={self.p0}, decay={self.decay}")
        return float(self.p0 * self.decay**n_updates)


class HeadTrainer:
    """A deferral head with its optimiser; one Adam step per `update` on the given items."""

    def __init__(self, in_dim: int, hidden: int = 16, lr: float = 1e-2, init_defer: float = 0.6):
        self.head = DeferralHead(in_dim, hidden, init_defer)
        self.optimizer = torch.optim.Adam(self.head.parameters(), lr=lr)

    def d(self, features: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return self.head(torch.as_tensor(features)).numpy()

    def update(
        self,
        features: np.ndarray,
        level_ce: np.ndarray,
        disagree: np.ndarray,
        mu: float,
        next_cost: float,
        calibration_weight: float = 0.0,
        objective: str = "cascade",
    ) -> float:
        """One Adam step on the paper's cascade loss (`objective="cascade"`) or on `error_loss` ("error")."""
        d = self.head(torch.as_tensor(features))
        if objective == "error":
            loss = error_loss(d, torch.as_tensor(disagree))
        else:
            loss = deferral_loss(
                d, torch.as_tensor(level_ce, dtype=torch.float32), torch.as_tensor(disagree), mu, next_cost,
                calibration_weight,
            )
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return float(loss.detach())
