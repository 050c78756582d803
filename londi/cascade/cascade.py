"""The online cascade: route each item up the levels until one answers, then learn from the final model.

For every item, level 0 predicts and its deferral head decides (forced deferral early on); a deferred item
goes to the next level, and the final level always answers. When the final model answers, its label
trains every smaller level (online imitation) and every deferral head (cascade loss, see `deferral.py`).
Items a small level answered give no signal in the paper; `learn_from_answered` adds one:
- "audit": with probability `audit_rate` the final model also labels the item (a paid call, counted like
  any other) and that label trains the levels that ran and their heads, which also removes the bias of
  heads that otherwise only ever see deferred items;
- "pseudo": the levels that ran learn from the answer given, with weight `pseudo_weight` (no extra call);
- "both": audit with probability `audit_rate`, otherwise pseudo (audits keep the heads honest, pseudo
  labels let a level follow a drifting vocabulary: new words co-occur with words it already knows).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

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
from londi.cascade.levels import Level
from londi.cascade.streams import StreamItem
from londi.loggers.base import RunLogger

LEARN_FROM_ANSWERED = ("none", "audit", "pseudo", "both")


@dataclass
class ItemResult:
    """What happened to one item: who answered, with what, at what cost (paper units: final model = 1)."""

    prediction: int
    answered_by: int
    levels_run: int
    final_called: bool
    cost_units: float
    forced: bool = False
    deferrals: list[float] = field(default_factory=list)


class OnlineCascade:
    """A chain of `levels` (cheapest first, the last is the final model) with one deferral head per
    non-final level. `mu` trades accuracy for cost: larger mu, fewer deferrals.

    `head_objective="cascade"` trains each head on the paper's cascade loss and defers when d > 0.5;
    `"error"` trains d as the level's probability of disagreeing with the final model and defers when
    d > mu x cost(next level) (see `deferral.error_loss`). Heads read the level's sorted probabilities, their
    entropy and the level's `novelty` of the item. Forced deferral decays with the number of items the level
    learnt from final-model labels (pseudo labels do not count: a level must not talk itself out of it).
    """

    def __init__(
        self,
        levels: Sequence[Level],
        mu: float = 0.2,
        forced: ForcedDeferral | None = None,
        calibration_weight: float = 0.0,
        learn_from_answered: str = "none",
        audit_rate: float = 0.0,
        pseudo_weight: float = 0.2,
        update_every: int = 1,
        head_hidden: int = 16,
        head_lr: float = 1e-2,
        head_init_defer: float = 0.6,
        top_k: int = 4,
        head_objective: str = "cascade",
        seed: int = 0,
    ):
        if len(levels) < 2:
            raise ValueError("a cascade needs at least two levels: a small model and the final model")
        if any(not lv.trainable for lv in levels[:-1]):
            raise ValueError("every level but the last must be trainable (only the final model is frozen)")
        if learn_from_answered not in LEARN_FROM_ANSWERED:
            raise ValueError(f"learn_from_answered={learn_from_answered!r}; choose one of {LEARN_FROM_ANSWERED}")
        if head_objective not in HEAD_OBJECTIVES:
            raise ValueError(f"head_objective={head_objective!r}; choose one of {HEAD_OBJECTIVES}")
        if update_every < 1:
            raise ValueError("update_every must be >= 1")
        _check_distinct("level names", [lv.name for lv in levels], "give each level its own name")
        for meter in {id(lv.meter): lv.meter for lv in levels}.values():  # one meter, one key per level
            _check_distinct("keys in one compute meter (a PolicyLevel is metered under its policy's name)",
                            [lv.usage_key for lv in levels if lv.meter is meter],
                            "give the levels that share a meter (and their policies) different names")
        self.levels = list(levels)
        self.mu = float(mu)
        self.forced = forced if forced is not None else ForcedDeferral()
        self.calibration_weight = calibration_weight
        self.learn_from_answered = learn_from_answered
        self.audit_rate = audit_rate
        self.pseudo_weight = pseudo_weight
        self.update_every = update_every
        self.top_k = top_k
        self.head_objective = head_objective
        self.rng = np.random.default_rng(seed)
        torch.manual_seed(seed)
        self.heads = [HeadTrainer(top_k + 2, head_hidden, head_lr, head_init_defer) for _ in self.levels[:-1]]
        final_params = max(1, self.levels[-1].num_parameters)
        self.costs = [lv.num_parameters / final_params for lv in self.levels]  # paper units: final = 1
        self.n_labelled = [0 for _ in self.heads]  # final-model labels each level learnt from (forced deferral)
        self._model_buf: list[list[tuple[StreamItem, int, float]]] = [[] for _ in self.heads]
        self._head_buf: list[list[tuple[np.ndarray, float, float]]] = [[] for _ in self.heads]

    @property
    def final(self) -> Level:
        return self.levels[-1]

    # ----------------------------------------------------------------------------------------------
    def step(self, item: StreamItem) -> ItemResult:
        """Answer one item, then learn from whatever label this produced."""
        ran: list[tuple[np.ndarray, np.ndarray]] = []  # (logits, features) per level that ran and deferred
        ds: list[float] = []
        forced_any = False
        cost = 0.0
        answer, answered_by = -1, len(self.levels) - 1
        for i, level in enumerate(self.levels[:-1]):
            logits = level.predict([item])[0]
            cost += self.costs[i]
            feats = self.head_features(i, item, logits)
            d = float(self.heads[i].d(feats[None])[0])
            ds.append(d)
            ran.append((logits, feats))
            forced = bool(self.rng.random() < self.forced.probability(self.n_labelled[i]))
            forced_any |= forced
            if not self.defers(i, d) and not forced:
                answer, answered_by = int(np.argmax(logits)), i
                break
        final_label: int | None = None
        if answered_by == len(self.levels) - 1:
            final_label = int(np.argmax(self.final.predict([item])[0]))
            cost += self.costs[-1]
            answer = final_label
        elif self.learn_from_answered in ("audit", "both") and self.rng.random() < self.audit_rate:
            final_label = int(np.argmax(self.final.predict([item])[0]))
            cost += self.costs[-1]
        final_called = final_label is not None
        if final_label is not None:
            for i, (logits, feats) in enumerate(ran):
                ce = float(_cross_entropy(logits, final_label))
                self._model_buf[i].append((item, final_label, 1.0))
                self._head_buf[i].append((feats, ce, float(np.argmax(logits) != final_label)))
                self.n_labelled[i] += 1
        elif self.learn_from_answered in ("pseudo", "both"):
            for i in range(len(ran)):
                self._model_buf[i].append((item, answer, self.pseudo_weight))
        self._flush()
        return ItemResult(answer, answered_by, len(ran) + int(answered_by == len(self.levels) - 1), final_called, cost, forced_any, ds)

    def head_features(self, i: int, item: StreamItem, logits: np.ndarray) -> np.ndarray:
        """What level i's deferral head reads: sorted probabilities, entropy, and the level's novelty."""
        novelty = float(self.levels[i].novelty([item])[0])
        return np.append(deferral_features(logits, self.top_k)[0], np.float32(novelty)).astype(np.float32)

    def defers(self, i: int, d: float) -> bool:
        """Level i's deferral rule for head output d under the configured objective."""
        if self.head_objective == "error":
            return d > error_threshold(self.mu, self.costs[i + 1])
        return bool(should_defer(d))

    def _flush(self, force: bool = False) -> None:
        for i, level in enumerate(self.levels[:-1]):
            hb = self._head_buf[i]
            if hb and (force or len(hb) >= self.update_every):
                feats, ce, dis = (np.array(x) for x in zip(*hb, strict=True))
                self.heads[i].update(
                    feats.astype(np.float32), ce, dis, self.mu, self.costs[i + 1], self.calibration_weight,
                    self.head_objective,
                )
                hb.clear()
            mb = self._model_buf[i]
            if mb and (force or len(mb) >= self.update_every):
                items, labels, weights = zip(*mb, strict=True)
                level.learn(list(items), list(labels), None if all(w == 1.0 for w in weights) else list(weights))
                mb.clear()

    # ----------------------------------------------------------------------------------------------
    def run(
        self,
        stream: Iterable[StreamItem],
        logger: RunLogger | None = None,
        log_every: int = 500,
        window: int = 500,
        max_items: int | None = None,
        progress: bool = False,
    ) -> dict[str, float]:
        """Process the stream in order, logging curves every `log_every` items; returns the final summary."""
        stats = CascadeStats([lv.name for lv in self.levels], window)
        t0 = time.perf_counter()
        for n, item in enumerate(stream):
            if max_items is not None and n >= max_items:
                break
            stats.add(item, self.step(item))
            if logger is not None and log_every and stats.n % log_every == 0:
                logger.log_metrics(stats.n, {**stats.metrics(), **self.compute_metrics(), "charts/SPS": stats.n / (time.perf_counter() - t0)})
            if progress and stats.n % 1000 == 0:
                print(f"[cascade] {stats.n} items  acc={stats.metrics()['cascade/accuracy']:.3f}  "
                      f"final_calls={stats.metrics()['cascade/final_call_frac']:.3f}", flush=True)
        self._flush(force=True)
        summary = {**stats.metrics(), **self.compute_metrics(), "mu": self.mu}
        if logger is not None and stats.n % max(log_every, 1) != 0:
            logger.log_metrics(stats.n, {k: v for k, v in summary.items() if k != "mu"} | {"charts/SPS": stats.n / max(time.perf_counter() - t0, 1e-9)})
        return summary

    def compute_metrics(self) -> dict[str, float]:
        """FLOPs and device seconds per level (inference and training) from the shared meter(s), each read
        from the level's own meter under its `usage_key` and named by the level."""
        out: dict[str, float] = {}
        flops = secs = 0.0
        for lv in self.levels:
            totals = lv.meter.totals
            for key, suffix in ((lv.usage_key, ""), (f"{lv.usage_key}/train", "_train")):
                u = totals.get(key)
                f = float(getattr(u, "flops", 0.0))
                s = float(getattr(u, "device_seconds", 0.0))
                out[f"compute/{lv.name}{suffix}_flops"] = f
                out[f"compute/{lv.name}{suffix}_seconds"] = s
                flops += f
                secs += s
            out[f"compute/{lv.name}_calls"] = float(getattr(totals.get(lv.usage_key), "calls", 0))
        out["compute/total_flops"] = flops
        out["compute/device_seconds"] = secs
        return out


def _check_distinct(what: str, names: Sequence[str], fix: str) -> None:
    """Two levels under one name would report one's compute as the other's (or as both): refuse."""
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"the cascade's {what} must differ, but {', '.join(map(repr, dup))} is used twice: {fix}")


def _cross_entropy(logits: np.ndarray, target: int) -> float:
    z = np.asarray(logits, dtype=np.float64)
    m = z.max()
    return float(m + np.log(np.exp(z - m).sum()) - z[target])


class CascadeStats:
    """Running accuracy, agreement, answer shares and cost, over the whole stream and a trailing window."""

    def __init__(self, level_names: Sequence[str], window: int = 500):
        self.names = list(level_names)
        self.n = 0
        self.n_gold = self.correct = 0
        self.n_final_known = self.agree = 0
        self.final_ref_correct = self.n_ref = 0
        self.answered = np.zeros(len(self.names), dtype=np.int64)
        self.final_calls = 0
        self.cost = 0.0
        self.forced = 0
        self._win_correct: deque[int] = deque(maxlen=window)
        self._win_final: deque[int] = deque(maxlen=window)

    def add(self, item: StreamItem, r: ItemResult) -> None:
        self.n += 1
        self.answered[r.answered_by] += 1
        self.final_calls += int(r.final_called)
        self._win_final.append(int(r.final_called))
        self.cost += r.cost_units
        self.forced += int(r.forced)
        if item.gold is not None:
            self.n_gold += 1
            self.correct += int(r.prediction == item.gold)
            self._win_correct.append(int(r.prediction == item.gold))
            if item.final is not None:
                self.n_ref += 1
                self.final_ref_correct += int(item.final == item.gold)
        if item.final is not None:
            self.n_final_known += 1
            self.agree += int(r.prediction == item.final)

    def metrics(self) -> dict[str, float]:
        n = max(self.n, 1)
        m = {
            "cascade/items": float(self.n),
            "cascade/accuracy": self.correct / self.n_gold if self.n_gold else float("nan"),
            "cascade/window_accuracy": float(np.mean(self._win_correct)) if self._win_correct else float("nan"),
            "cascade/agreement": self.agree / self.n_final_known if self.n_final_known else float("nan"),
            "cascade/final_call_frac": self.final_calls / n,
            "cascade/window_final_call_frac": float(np.mean(self._win_final)) if self._win_final else float("nan"),
            "cascade/forced_frac": self.forced / n,
            "cost/units_per_item": self.cost / n,
            "reference/final_accuracy": self.final_ref_correct / self.n_ref if self.n_ref else float("nan"),
        }
        for name, a in zip(self.names, self.answered, strict=True):
            m[f"cascade/answered_frac/{name}"] = float(a) / n
        return m
