"""What a `SwitchingEnv` keeps about the episode in progress, and the summary it reports at its end.

Why typed: the record is read by the step info, the budget mask, the heuristic switcher (`recent`), the
checkpoint (it is JSON) and the episode row of episodes.csv; one dataclass says what each field holds.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

USAGE_FIELDS = ("calls", "tokens", "flops", "device_seconds", "wall_seconds")


def zero_usage() -> dict[str, float]:
    return dict.fromkeys(USAGE_FIELDS, 0)


@dataclass
class RecentSteps:
    """The last steps as SwiftSage's heuristic reads them."""

    last_pairs: list[list[str]] = field(default_factory=list)  # up to 3 [observation, action taken] pairs
    no_change_streak: int = 0  # consecutive steps whose observation did not change
    steps_since_progress: int = 0  # steps since the last positive reward
    deepthink_streak: int = 0  # consecutive steps DEEPTHINK acted


@dataclass
class EpisodeRecord:
    """The episode in progress: seed, the text actions taken (a checkpoint replays them), budget, counts."""

    seed: int
    budget: int | None  # DEEPTHINK calls allowed this episode (None: no hard budget)
    t: int = 0  # env steps taken
    actions: list[int] = field(default_factory=list)  # admissible-action indices executed, in order
    decisions: list[int] = field(default_factory=list)  # 1 where DEEPTHINK acted
    used: int = 0  # DEEPTHINK actions so far (what the budget counts)
    env_return: float = 0.0  # sum of the text env's rewards
    switch_return: float = 0.0  # the same minus the cost of each DEEPTHINK action
    quick_calls: int = 0  # steps QUICK acted
    deepthink_calls: int = 0  # steps DEEPTHINK acted
    fallbacks: int = 0  # steps DEEPTHINK was asked, failed, and QUICK acted
    blocked: int = 0  # DEEPTHINK requests refused by the budget
    fallback_error: str = ""  # the last DEEPTHINK failure, for the episode's warning
    usage: dict[str, dict[str, float]] = field(default_factory=lambda: {"quick": zero_usage(), "deepthink": zero_usage()})
    recent: RecentSteps = field(default_factory=RecentSteps)
    visits: dict[str, int] | None = None  # observation -> times seen (only when the encoder reads repeats)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EpisodeRecord:
        d = dict(d)
        d["recent"] = RecentSteps(**d.get("recent", {}))
        return cls(**d)


@dataclass(frozen=True)
class EpisodeSummary:
    """An ended episode, as `info["switch"]["episode"]` reports it (`as_dict`) and episodes.csv stores it."""

    episode_seed: int
    env_steps: int
    episode_return: float
    switch_return: float
    success: bool
    quick_calls: int
    deepthink_calls: int
    budget: int | None
    fallbacks: int
    blocked: int
    quick_model_calls: int  # QUICK calls, QUICK-first reads included
    deepthink_model_calls: int
    quick_flops: float
    deepthink_flops: float
    device_seconds: float
    env_restarts: int = 0  # restarts of the text env's backend this episode (ScienceWorld's JVM), reset included

    @classmethod
    def of(cls, ep: EpisodeRecord, success: bool, env_restarts: int = 0) -> EpisodeSummary:
        u = ep.usage
        return cls(
            episode_seed=ep.seed, env_steps=ep.t, episode_return=ep.env_return, switch_return=ep.switch_return,
            success=bool(success), quick_calls=ep.quick_calls, deepthink_calls=ep.deepthink_calls, budget=ep.budget,
            fallbacks=ep.fallbacks, blocked=ep.blocked, quick_model_calls=int(u["quick"]["calls"]),
            deepthink_model_calls=int(u["deepthink"]["calls"]), quick_flops=float(u["quick"]["flops"]),
            deepthink_flops=float(u["deepthink"]["flops"]),
            device_seconds=float(u["quick"]["device_seconds"] + u["deepthink"]["device_seconds"]),
            env_restarts=int(env_restarts),
        )

    def as_dict(self) -> dict[str, Any]:
        """The info/CSV form: `return` for the env return, `total_flops` added."""
        d = asdict(self)
        d["return"] = d.pop("episode_return")
        d["total_flops"] = self.quick_flops + self.deepthink_flops
        return d
