"""Expert demonstrations for behaviour cloning: (prompt, admissible actions, expert action) per visited state.

Three ways to pick the action that is actually executed, all labelled with the env's expert at every state:
- expert: follow the expert (clean trajectories);
- noisy expert: with probability `noise` take a uniformly random action instead, so the data also covers
  the off-course states a learner reaches (the expert replans from wherever the agent is);
- DAgger: follow a learner policy, taking the expert's action with probability `beta` (Ross et al. 2011),
  so the labels cover the learner's own state distribution.

The BabyAI bot occasionally raises after deviations (e.g. a toggled box disappears under it); such an
episode ends there and keeps the labels collected so far, counted in `CollectionStats.expert_failures`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from londi.lm.prompts import PromptBuilder, build_prompt
from londi.lm.state import EpisodeHistory, TextState

log = logging.getLogger(__name__)

ActFn = Callable[[TextState], int]
"""A learner: returns the index of the chosen admissible action for one state."""


@dataclass(frozen=True)
class Demonstration:
    """One labelled state: the prompt the model will see, the candidates, and the expert's choice."""

    prompt: str
    actions: tuple[str, ...]
    label: int
    source: str = "expert"
    episode: int = 0
    env: str = ""

    @property
    def action(self) -> str:
        return self.actions[self.label]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Demonstration:
        return cls(d["prompt"], tuple(d["actions"]), int(d["label"]), d.get("source", "expert"), int(d.get("episode", 0)),
                   d.get("env", ""))


@dataclass
class CollectionStats:
    """What a collection run did: episodes, labelled steps, successes of the executed trajectories."""

    episodes: int = 0
    steps: int = 0
    successes: int = 0
    expert_failures: int = 0
    returns: list[float] = field(default_factory=list)

    @property
    def success_rate(self) -> float:
        return self.successes / max(self.episodes, 1)

    def as_dict(self) -> dict[str, float]:
        return {
            "episodes": self.episodes,
            "steps": self.steps,
            "success_rate": self.success_rate,
            "expert_failures": self.expert_failures,
            "mean_return": float(np.mean(self.returns)) if self.returns else 0.0,
        }


def _expert_action(env: Any) -> str | None:
    """The env's expert action, or None when it has none or the expert raised (logged, not fatal)."""
    try:
        return env.unwrapped.expert_action()
    except Exception as e:  # the BabyAI bot raises on some states it cannot plan from
        log.debug("expert raised %s: %s", type(e).__name__, e)
        raise _ExpertFailed from e


class _ExpertFailed(Exception):
    pass


def rollout(
    env: Any,
    seed: int,
    *,
    learner: ActFn | None = None,
    beta: float = 1.0,
    noise: float = 0.0,
    label: bool = True,
    history: int = 0,
    prompt: PromptBuilder | None = None,
    rng: np.random.Generator | None = None,
    episode: int = 0,
    source: str = "expert",
    env_id: str = "",
    stats: CollectionStats | None = None,
) -> Iterator[Demonstration]:
    """Run one episode from `env.reset(seed=seed)` and yield a labelled `Demonstration` per visited state.

    Executed action: the expert's with probability `beta` (else `learner`'s), then replaced by a uniformly
    random one with probability `noise`. `label=False` runs the learner alone (evaluation): nothing is
    yielded and the expert is never asked. The labelled prompts come from `prompt` (a builder: history
    window, token budget) or else from the family's builder with `history` past steps; without labels,
    `history` is the number of past steps the states carry for the learner.
    """
    if learner is None and (beta < 1.0 or not label):
        raise ValueError("a learner is needed when beta < 1 or label=False (who acts when the expert does not?)")
    rng = rng if rng is not None else np.random.default_rng(seed)
    stats = stats if stats is not None else CollectionStats()
    hist = EpisodeHistory(max_steps=max(history, prompt.history_needed if prompt is not None else 0))
    obs, info = env.reset(seed=seed)
    hist.reset(obs, info)
    success, ret = False, 0.0
    while True:
        state = hist.state(obs, info, env=env)
        actions = state.admissible_actions
        expert = None
        if label or beta > 0:
            try:
                expert = _expert_action(env)
            except _ExpertFailed:
                stats.expert_failures += 1
                break
            if expert is None or expert not in actions:
                break  # no expert action here: nothing to learn from this state on
        if label:
            stats.steps += 1
            text = prompt.build(state) if prompt is not None else build_prompt(state, history=history)
            yield Demonstration(text, actions, actions.index(expert), source, episode, env_id)
        if expert is not None and (learner is None or rng.random() < beta):
            index = actions.index(expert)
        else:
            index = int(learner(state))  # type: ignore[misc]
        if noise > 0 and rng.random() < noise:
            index = int(rng.integers(len(actions)))
        obs, reward, terminated, truncated, info = env.step(index)
        ret += float(reward)
        success = success or bool(info.get("success", False))
        hist.record(actions[index], obs, info)
        if terminated or truncated:
            break
    stats.episodes += 1
    stats.successes += int(success)
    stats.returns.append(ret)


def collect(
    make_env: Callable[[], Any],
    episodes: int,
    *,
    seed: int = 0,
    learner: ActFn | None = None,
    beta: float = 1.0,
    noise: float = 0.0,
    history: int = 0,
    prompt: PromptBuilder | None = None,
    source: str = "expert",
    env_id: str = "",
    progress: bool = False,
) -> tuple[list[Demonstration], CollectionStats]:
    """Labelled states from `episodes` episodes (reset seeds `seed`, `seed+1`, ...); deterministic given `seed`."""
    env = make_env()
    rng = np.random.default_rng(seed)
    stats = CollectionStats()
    demos: list[Demonstration] = []
    it: Sequence[int] | Any = range(episodes)
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(it, desc=f"collect {source} {env_id}".strip(), unit="ep", leave=False)
    try:
        for ep in it:
            demos.extend(rollout(env, seed + ep, learner=learner, beta=beta, noise=noise, history=history, prompt=prompt,
                                 rng=rng, episode=seed + ep, source=source, env_id=env_id, stats=stats))
    finally:
        env.close()
    return demos, stats


def evaluate(
    make_env: Callable[[], Any], learner: ActFn, episodes: int, *, seed: int = 0, history: int = 0,
    progress: bool = False,
) -> CollectionStats:
    """Success of `learner` acting alone over `episodes` seeded episodes (reset seeds `seed`, `seed+1`, ...).

    `history`: past steps the states carry (at least what the learner's prompt shows)."""
    env = make_env()
    stats = CollectionStats()
    it: Sequence[int] | Any = range(episodes)
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(it, desc="evaluate", unit="ep", leave=False)
    try:
        for ep in it:
            for _ in rollout(env, seed + ep, learner=learner, beta=0.0, label=False, history=history, stats=stats):
                pass
    finally:
        env.close()
    return stats
