"""Benchmark the text environments: expert success rate and steps/s of the text layer vs the raw env.

    .venv/bin/python scripts/bench_envs.py --env babyai_text [--episodes 100] [--steps 5000]

Each environment family is one section (a function in SECTIONS); add a family by adding a function.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import time
from collections.abc import Callable
from typing import Any

import gymnasium as gym

BABYAI_LEVELS = ("GoToLocal", "PickupLocal", "PutNextLocal", "MixedTrainLocal", "MixedTestLocal")


def expert_success(env_id: str, episodes: int, seed0: int = 0, noise: float = 0.0, avoid: tuple[str, ...] = (),
                   **env_kwargs: Any) -> float:
    """Fraction of `episodes` seeded episodes the env's expert completes.

    With `noise` > 0 a uniformly random action replaces the expert's with that probability (or when the
    expert has no action), which measures how well the expert recovers after deviations (DAgger use, and
    DEEPTHINK = expert backing up QUICK). Random actions never start with a prefix in `avoid`.
    """
    import numpy as np

    import envs  # noqa: F401  (registers ids)

    env = gym.make(env_id, **env_kwargs)
    rng = np.random.default_rng(seed0)
    wins = 0
    for ep in range(episodes):
        env.reset(seed=seed0 + ep)
        while True:
            actions = env.unwrapped.admissible_actions  # ScienceWorld's change with the state
            expert = env.unwrapped.expert_action()
            if expert is None or (noise and rng.random() < noise):
                allowed = [i for i, x in enumerate(actions) if not (avoid and x.startswith(avoid))]
                a = allowed[int(rng.integers(len(allowed)))]
            else:
                a = actions.index(expert)
            _, _, term, trunc, info = env.step(a)
            if term or trunc:
                wins += bool(info["success"])
                break
    env.close()
    return wins / episodes


def steps_per_second(env: gym.Env, steps: int, seed: int = 0, query_expert: bool = False) -> float:
    """Random-action steps/s (resets included) of `env`; `query_expert` also asks for the expert's action."""
    env.reset(seed=seed)
    env.action_space.seed(seed)
    t0 = time.perf_counter()
    for _ in range(steps):
        if query_expert:
            env.unwrapped.expert_action()
        _, _, term, trunc, _ = env.step(env.action_space.sample())
        if term or trunc:
            env.reset()
    return steps / (time.perf_counter() - t0)


def bench_babyai_text(args: argparse.Namespace) -> None:
    """Expert success on the five benchmark levels, and the text layer's speed against raw minigrid."""
    import envs  # noqa: F401

    print("== BabyAI-Text: expert success on", args.episodes, "seeded episodes")
    for level in BABYAI_LEVELS:
        t0 = time.perf_counter()
        rate = expert_success(f"BabyAI-Text-{level}-v0", args.episodes)
        noisy = expert_success(f"BabyAI-Text-{level}-v0", args.episodes, noise=0.3)
        print(
            f"  {level:<16} success {rate:.3f}   with 30% random actions {noisy:.3f}"
            f"  ({time.perf_counter() - t0:.1f} s)"
        )
    print("== BabyAI-Text: random-action steps/s (GoToLocal)")
    with contextlib.redirect_stdout(io.StringIO()):  # the raw env prints "Sampling rejected" at resets
        raw = steps_per_second(gym.make("BabyAI-GoToLocal-v0"), args.steps)
    text = steps_per_second(gym.make("BabyAI-Text-GoToLocal-v0"), args.steps)
    print(f"  raw minigrid   {raw:8.0f} steps/s")
    print(
        f"  text env       {text:8.0f} steps/s   (ratio raw/text {raw / text:.2f}; target <= 2 and >= 2000 steps/s)"
    )
    expert = steps_per_second(gym.make("BabyAI-Text-GoToLocal-v0"), args.steps, query_expert=True)
    print(f"  text + expert  {expert:8.0f} steps/s   (expert_action() asked at every step)")


SW_TASKS = (
    "boil",
    "melt",
    "find-living-thing",
    "test-conductivity",
    "chemistry-mix",
    "grow-plant",
    "use-thermometer",
    "identify-life-stages-1",
)
SW_NOISE_TASKS = ("find-living-thing", "use-thermometer", "test-conductivity", "chemistry-mix", "melt")



def bench_scienceworld(args: argparse.Namespace) -> None:
    """Gold-path replays of 8 tasks through ScienceWorld-v0, then median step time: ours vs the package's step."""
    import random
    import statistics

    from scienceworld import ScienceWorldEnv

    import envs  # noqa: F401

    print("== ScienceWorld: gold paths (variation 0, easy) replayed by expert_action()")
    env = gym.make("ScienceWorld-v0", task="boil", variation=0)
    for task in SW_TASKS:
        env.unwrapped.task_name = task
        obs, info = env.reset(seed=0)
        n, admissible = 0, True
        while (action := env.unwrapped.expert_action()) is not None:
            admissible &= action in info["admissible_actions"]
            obs, _, term, trunc, info = env.step(info["admissible_actions"].index(action))
            n += 1
            if term or trunc:
                break
        print(
            f"  {task:<24} steps {n:3d} score {info['score']:3d} terminated {term} success {info['success']}"
            f" every gold action admissible {admissible}"
        )
    env.close()

    print(f"== ScienceWorld: expert success with {args.sw_noise:.0%} random actions (never 'focus on', which ends")
    print(f"   the episode), {args.sw_episodes} episodes per task over sampled train variations, step limit 100")
    for task in SW_NOISE_TASKS:
        rates = [expert_success("ScienceWorld-v0", args.sw_episodes, noise=args.sw_noise, avoid=("focus on",),
                                task=task, variation=None, expert_recovery=rec) for rec in (True, False)]
        print(f"  {task:<24} walks back to the gold path {rates[0]:.2f}   stops at the first deviation {rates[1]:.2f}")

    steps = args.sw_steps
    print(f"== ScienceWorld: median step time over the same {steps} actions (a seeded random walk over")
    print("   ScienceWorld-v0's admissible actions, boil v0 easy, episodes of 100 steps), both with valid actions")
    walk = gym.make("ScienceWorld-v0", task="boil", variation=0, step_limit=100)
    rng = random.Random(0)
    actions: list[str | None] = [None]  # None = reset
    _, info = walk.reset(seed=0)
    for _ in range(steps):
        actions.append(rng.choice(info["admissible_actions"]))
        _, _, term, trunc, info = walk.step(actions[-1])
        if term or trunc:
            actions.append(None)
            walk.reset(seed=0)
    walk.close()

    raw = ScienceWorldEnv("", envStepLimit=100)  # the package's step: step + look + inventory + valid list
    raw.load("boil", 0, "easy")
    ours = gym.make("ScienceWorld-v0", task="boil", variation=0, step_limit=100)
    times: dict[str, list[float]] = {"package": [], "ours": []}
    for a in actions:  # alternately, so both see the same load on a shared machine
        for name, env in (("package", raw), ("ours", ours)):
            if a is None:
                if env is raw:
                    raw.reset()
                else:
                    ours.reset(seed=0)
                continue
            t0 = time.perf_counter()
            env.step(a)
            times[name].append(time.perf_counter() - t0)
    raw.close()
    ours.close()
    t_raw, t_ours = (1000 * statistics.median(times[k]) for k in ("package", "ours"))
    print(f"  package ScienceWorldEnv.step {t_raw:7.1f} ms  ({1000 / t_raw:6.1f} steps/s)")
    print(
        f"  ScienceWorld-v0 step         {t_ours:7.1f} ms  ({1000 / t_ours:6.1f} steps/s; speed-up x{t_raw / t_ours:.2f};"
        " both query the valid actions at every step, timed alternately)"
    )

SECTIONS: dict[str, Callable[[argparse.Namespace], None]] = {
    "babyai_text": bench_babyai_text,
    "scienceworld": bench_scienceworld,
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", choices=[*SECTIONS, "all"], default="all")
    parser.add_argument("--episodes", type=int, default=100, help="expert episodes per level")
    parser.add_argument("--steps", type=int, default=5000, help="steps per speed measurement")
    parser.add_argument("--sw-episodes", type=int, default=10, help="ScienceWorld noisy-expert episodes per task")
    parser.add_argument("--sw-noise", type=float, default=0.2, help="ScienceWorld random-action probability")
    parser.add_argument("--sw-steps", type=int, default=300, help="ScienceWorld steps per speed measurement")
    args = parser.parse_args(argv)
    for name, section in SECTIONS.items():
        if args.env in (name, "all"):
            section(args)


if __name__ == "__main__":
    main()
