"""Drive `ScienceWorld-v0` and the package's `scienceworld.ScienceWorldEnv` in lockstep and compare them.

    .venv/bin/python scripts/lockstep_scienceworld.py [--tasks boil melt ...] [--variations 3] [--steps 40]

For every task and each of its first `--variations` train variations, both envs load the variation and
play two episodes of the same actions: a mix of the expert's gold-path action (probability `--gold`) and a
random action from the package's valid list (never "focus on", which ends an episode); the second episode
replays the first half of the first and then goes its own way (states reached again by the same actions).
At every state it compares:

- the admissible list: ours against what the rule of `select_admissible` (same cap, same gold action) makes
  of the package's valid list (`info["valid"]` of its `reset`/`step`);
- the score (at reset: the package's reset performs a scored "look around") and the end of the episode;

and counts how many of the package's valid actions our cap cut. Prints the figures for `results/envs.md`.

Look-alike objects (two oranges in the inventory, three paint cups in the art studio) get names that
ScienceWorld draws at random at every valid-action query ("orange", "orange in inventory", "orange on
inventory"; two of them may even get the same name), so two JVMs in the same state can list them
differently, and the cap, which reads the texts, then keeps other actions of the same types. A list that
differs from the expected one therefore counts as stale unless ScienceWorld names this state at random
(our JVM, asked up to 7 more times, lists it in two different ways) and our list keeps as many actions
of every type as the expected one: then it counts as "renamed". The extra queries happen only there.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field

DEFAULT_TASKS = ("boil", "melt", "find-living-thing", "test-conductivity", "chemistry-mix", "grow-plant",
                 "use-thermometer")
AVOID = ("focus on",)


@dataclass
class Stats:
    """What the lockstep run counted; `report()` prints it."""

    states: int = 0
    identical: int = 0
    renamed: int = 0
    stale: int = 0
    resets: int = 0
    reset_score_mismatches: int = 0
    step_score_mismatches: int = 0
    done_mismatches: int = 0
    valid_sizes: list[int] = field(default_factory=list)
    cuts: list[int] = field(default_factory=list)
    reset_scores: list[tuple[str, int, int, int]] = field(default_factory=list)  # task, variation, ours, package
    kept_by_type: Counter = field(default_factory=Counter)
    valid_by_type: Counter = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def report(self, max_actions: int) -> str:
        cuts, sizes = sorted(self.cuts), sorted(self.valid_sizes)
        cut_states = sum(c > 0 for c in cuts)
        credited = sorted({(t, v, p) for t, v, _, p in self.reset_scores if p > 0})
        buckets = [(0, 0), (1, 99), (100, 499), (500, 999), (1000, 10**6)]
        by_type = sorted(self.valid_by_type.items(), key=lambda kv: -kv[1])
        lines = [
            f"states compared: {self.states}",
            f"stale admissible lists: {self.stale} (identical to the expected list: {self.identical}; differing "
            f"only by ScienceWorld's random names for look-alike objects: {self.renamed})",
            f"reset-score mismatches: {self.reset_score_mismatches} of {self.resets} resets (package reset scores "
            "above 0: " + (", ".join(f"{t} v{v} {p}" for t, v, p in credited) or "none") + ")",
            f"step-score mismatches: {self.step_score_mismatches}; end-of-episode mismatches: {self.done_mismatches}",
            f"package valid actions per state: median {statistics.median(sizes):.0f}, "
            f"mean {statistics.mean(sizes):.0f}, max {sizes[-1]}",
            f"cap max_actions={max_actions} cut in {cut_states} of {self.states} states "
            f"({cut_states / max(self.states, 1):.0%}); actions cut per state: median {statistics.median(cuts):.0f}, "
            f"mean {statistics.mean(cuts):.0f}, 90th percentile {cuts[int(0.9 * (len(cuts) - 1))]}, max {cuts[-1]}; "
            f"{sum(cuts) / max(sum(sizes), 1):.0%} of all valid actions cut",
            "states by actions cut: " + ", ".join(
                f"{lo if lo == hi else f'{lo}-{hi}' if hi < 10**6 else f'{lo}+'}: {sum(lo <= c <= hi for c in cuts)}"
                for lo, hi in buckets),
            "kept share by action type (kept / valid, summed over states): "
            + ", ".join(f"{t} {self.kept_by_type[t] / n:.2f}" for t, n in by_type),
            f"time: {self.seconds:.0f} s",
        ]
        return "\n".join(lines + [f"  e.g. {e}" for e in self.examples[:5]])


def lockstep(tasks=DEFAULT_TASKS, variations: int = 3, steps: int = 40, gold: float = 0.5,
             max_actions: int = 128, simplification: str = "easy", seed: int = 0, log=print) -> Stats:
    """Run the comparison and return its counts (see the module docstring)."""
    import gymnasium as gym
    from scienceworld import ScienceWorldEnv

    import envs  # noqa: F401  (registers ScienceWorld-v0)
    from envs.scienceworld.admissible import select_admissible

    stats = Stats()
    rng = random.Random(seed)
    t0 = time.perf_counter()
    package = ScienceWorldEnv("", envStepLimit=10 * steps)
    try:
        for task in tasks:
            ours = gym.make("ScienceWorld-v0", task=task, variation=None, simplification=simplification,
                            step_limit=steps, max_actions=max_actions)
            u = ours.unwrapped
            try:
                for variation in u.variations("train")[:variations]:
                    first: list[str] = []
                    for episode in range(2):
                        replay = first[: len(first) // 2] if episode else []
                        actions = _episode(stats, ours, package, task, variation, simplification, steps, gold,
                                           max_actions, replay, rng, select_admissible)
                        first = first or actions
            finally:
                ours.close()
            log(f"  {task:<20} states so far {stats.states:5d}  stale {stats.stale}  "
                f"reset-score mismatches {stats.reset_score_mismatches}  ({time.perf_counter() - t0:.0f} s)")
    finally:
        package.close()
    stats.seconds = time.perf_counter() - t0
    return stats


def _episode(stats, ours, package, task, variation, simplification, steps, gold, max_actions, replay, rng,
             select_admissible) -> list[str]:
    """One episode in lockstep; returns the actions taken."""
    u = ours.unwrapped
    _, info = ours.reset(options={"variation": variation})
    package.load(task, variation, simplification)
    _, pinfo = package.reset()
    stats.resets += 1
    stats.reset_scores.append((task, variation, info["score"], pinfo["score"]))
    if info["score"] != pinfo["score"]:
        stats.reset_score_mismatches += 1
        stats.examples.append(f"{task} v{variation} reset score ours {info['score']} package {pinfo['score']}")
    taken: list[str] = []
    for t in range(steps + 1):
        _compare(stats, u, info, pinfo, max_actions, select_admissible, f"{task} v{variation} t{t}")
        if t == steps:
            break
        expert = u.expert_action()
        if t < len(replay):
            action = replay[t]
        elif expert is not None and rng.random() < gold:
            action = expert
        else:
            pool = sorted(set(pinfo["valid"]) - {"reset task", "task"})
            pool = [a for a in pool if not a.startswith(AVOID)] or pool
            action = rng.choice(pool)
        taken.append(action)
        _, _, term, trunc, info = ours.step(action)
        _, _, pdone, pinfo = package.step(action)
        if info["score"] != pinfo["score"]:
            stats.step_score_mismatches += 1
            stats.examples.append(f"{task} v{variation} t{t} after {action!r}: score ours {info['score']} "
                                  f"package {pinfo['score']}")
        if term != pdone:  # the package's step limit is out of reach: its "completed" is ours "terminated"
            stats.done_mismatches += 1
            stats.examples.append(f"{task} v{variation} t{t}: terminated ours {term} package {pdone}")
        if term or trunc:
            break
    return taken


def _compare(stats, u, info, pinfo, max_actions, select_admissible, where) -> None:
    """Our admissible list against the rule applied to the package's valid list, and the cut counts."""
    from envs.scienceworld.admissible import EXCLUDED_ACTIONS, action_type

    expected, cut = select_admissible(pinfo["valid"], max_actions, must_include=[u.expert_action()])
    ours = info["admissible_actions"]
    valid = set(pinfo["valid"]) - EXCLUDED_ACTIONS
    stats.states += 1
    stats.valid_sizes.append(len(valid))
    stats.cuts.append(info["admissible_cut"])
    if ours == expected and info["admissible_cut"] == cut:
        stats.identical += 1
    else:
        same_types = Counter(map(action_type, ours)) == Counter(map(action_type, expected))
        if same_types and _named_at_random(u):
            stats.renamed += 1
        else:
            stats.stale += 1
            stats.examples.append(
                f"{where}: only ours {sorted(set(ours) - set(expected))[:3]}, only expected "
                f"{sorted(set(expected) - set(ours))[:3]}, cut ours {info['admissible_cut']} expected {cut}")
    kept = set(ours)
    for action in valid:
        if not action.isdigit():  # not an answer to an ambiguous request
            stats.valid_by_type[action_type(action)] += 1
            stats.kept_by_type[action_type(action)] += action in kept


def _named_at_random(u, tries: int = 7) -> bool:
    """Whether ScienceWorld lists this state differently from one valid-action query to the next."""
    first = None
    for _ in range(tries):
        names = set(u.valid_actions())
        if first is not None and names != first:
            return True
        first = names
    return False


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=list(DEFAULT_TASKS))
    parser.add_argument("--variations", type=int, default=3, help="first N train variations of each task")
    parser.add_argument("--steps", type=int, default=40, help="steps per episode")
    parser.add_argument("--gold", type=float, default=0.5, help="probability of the expert's action")
    parser.add_argument("--max-actions", type=int, default=128, help="ScienceWorld-v0's cap (env.max_actions)")
    parser.add_argument("--simplification", default="easy")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(f"== ScienceWorld lockstep: ScienceWorld-v0 vs scienceworld.ScienceWorldEnv, {len(args.tasks)} tasks x "
          f"{args.variations} variations x 2 episodes of <= {args.steps} steps, gold {args.gold:.0%}")
    stats = lockstep(args.tasks, args.variations, args.steps, args.gold, args.max_actions, args.simplification,
                     args.seed)
    print(stats.report(args.max_actions))


if __name__ == "__main__":
    main()
