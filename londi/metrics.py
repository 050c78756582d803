"""Metric names and their computation: per-step `info["switch"]` records -> episode rows and training curves.

The keys are the same in metrics.csv, W&B and the report (CleanRL-style names, x-axis = env steps):
`TRAIN_KEYS` every `log_every` training steps, `EVAL_KEYS` after every evaluation, `EPISODE_COLUMNS` per
finished episode (episodes.csv). `switch/cost` is what the env charges per DEEPTHINK call now (LONDI's
fixed c, the Lagrangian's current lambda); `switch/lambda` is logged only by switchers that have a
multiplier.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

EPISODE_COLUMNS = (
    "phase", "episode", "global_step", "env_steps", "return", "success", "quick_calls", "deepthink_calls",
    "deepthink_flops", "total_flops", "device_seconds", "budget", "blocked", "fallbacks", "episode_seed",
    "env_restarts",
)
TRAIN_KEYS = (
    "charts/episodic_return", "charts/success_rate", "charts/SPS", "switch/deepthink_frac", "switch/cost",
    "budget/remaining", "budget/violations", "budget/blocked", "switch/fallbacks",
    *(f"compute/{m}_{k}" for m in ("quick", "deepthink") for k in ("calls", "tokens", "flops", "seconds")),
    "compute/gpu_seconds", "compute/total_flops",
)
EVAL_KEYS = ("eval/success_rate", "eval/episodic_return", "eval/deepthink_calls", "eval/quick_calls",
             "eval/deepthink_frac", "eval/total_flops", "eval/episodes")


def episode_row(phase: str, episode: int, global_step: int, ep: Mapping[str, Any]) -> dict[str, Any]:
    """One episodes.csv row from an episode summary (`info["switch"]["episode"]`)."""
    row: dict[str, Any] = {"phase": phase, "episode": episode, "global_step": global_step}
    for k in EPISODE_COLUMNS[3:]:
        row[k] = ep.get(k)
    row["success"] = int(bool(ep["success"]))
    row["budget"] = "" if ep.get("budget") is None else ep["budget"]
    return row


def summarize(episodes: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """eval/* metrics of a list of episode summaries."""
    steps = sum(e["env_steps"] for e in episodes)
    dt = sum(e["deepthink_calls"] for e in episodes)
    n = max(1, len(episodes))
    return {
        "eval/success_rate": sum(bool(e["success"]) for e in episodes) / n,
        "eval/episodic_return": sum(e["return"] for e in episodes) / n,
        "eval/deepthink_calls": dt / n,
        "eval/quick_calls": sum(e["quick_calls"] for e in episodes) / n,
        "eval/deepthink_frac": dt / max(1, steps),
        "eval/total_flops": sum(e["total_flops"] for e in episodes) / n,
        "eval/episodes": float(len(episodes)),
    }


class MetricsTracker:
    """Turns per-step `info["switch"]` records into episode rows and cumulative training metrics.

    Its state (`state_dict`) is plain JSON, saved in every checkpoint.
    """

    def __init__(self, window: int = 20):
        self.steps = 0
        self.episodes = 0
        self.window = window
        self.recent: deque[tuple[float, float]] = deque(maxlen=window)
        self.totals = {f"{m}_{k}": 0.0 for m in ("quick", "deepthink") for k in ("calls", "tokens", "flops", "seconds")}
        self.violations = self.blocked = self.fallbacks = 0
        self.interval_steps = self.interval_deepthink = 0
        self.budget_remaining = float("nan")
        self.pending_rows: list[dict[str, Any]] = []

    def on_step(self, info: Mapping[str, Any]) -> None:
        sw = info["switch"]
        self.steps += 1
        self.interval_steps += 1
        self.interval_deepthink += int(sw["deepthink_acted"])
        self.blocked += int(sw["blocked"])
        self.fallbacks += int(sw["fallback"])
        for m in ("quick", "deepthink"):
            u = sw["usage"][m]
            self.totals[f"{m}_calls"] += u["calls"]
            self.totals[f"{m}_tokens"] += u["tokens"]
            self.totals[f"{m}_flops"] += u["flops"]
            self.totals[f"{m}_seconds"] += u["device_seconds"]
        rem = sw.get("budget_remaining")
        self.budget_remaining = float("nan") if rem is None else float(rem)
        ep = sw.get("episode")
        if ep is not None:
            self.episodes += 1
            if ep["budget"] is not None and ep["deepthink_calls"] > ep["budget"]:
                self.violations += 1
            self.recent.append((float(ep["return"]), float(ep["success"])))
            self.pending_rows.append(episode_row("train", self.episodes, self.steps, ep))

    def metrics(self, cost: float, sps: float) -> dict[str, float]:
        """The TRAIN_KEYS now; `cost` is the env's current charge per DEEPTHINK call."""
        nan = float("nan")
        ret = float(np.mean([r for r, _ in self.recent])) if self.recent else nan
        suc = float(np.mean([s for _, s in self.recent])) if self.recent else nan
        out = {
            "charts/episodic_return": ret, "charts/success_rate": suc, "charts/SPS": sps,
            "switch/deepthink_frac": self.interval_deepthink / max(1, self.interval_steps),
            "switch/cost": float(cost), "budget/remaining": self.budget_remaining,
            "budget/violations": float(self.violations), "budget/blocked": float(self.blocked),
            "switch/fallbacks": float(self.fallbacks),
            **{f"compute/{k}": float(v) for k, v in self.totals.items()},
            "compute/gpu_seconds": self.totals["quick_seconds"] + self.totals["deepthink_seconds"],
            "compute/total_flops": self.totals["quick_flops"] + self.totals["deepthink_flops"],
        }
        self.interval_steps = self.interval_deepthink = 0
        return out

    def state_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["recent"] = [list(x) for x in self.recent]
        return d

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.__dict__.update({k: v for k, v in state.items() if k != "recent"})
        self.recent = deque((tuple(x) for x in state["recent"]), maxlen=self.window)
