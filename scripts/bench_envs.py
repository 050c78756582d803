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

import gymnasium as gym

BABYAI_LEVELS = ("GoToLocal", "PickupLocal", "PutNextLocal", "MixedTrainLocal", "MixedTestLocal")


def expert_success(env_id: str, episodes: int, seed0: int = 0) -> float:
    """Fraction of `episodes` seeded episodes the env's expert completes."""
    import envs  # noqa: F401  (registers ids)

    env = gym.make(env_id)
    wins = 0
    for ep in range(episodes):
        env.reset(seed=seed0 + ep)
        actions = env.unwrapped.admissible_actions
        while True:
            a = actions.index(env.unwrapped.expert_action())
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
        print(f"  {level:<16} success {rate:.3f}  ({time.perf_counter() - t0:.1f} s)")
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


SECTIONS: dict[str, Callable[[argparse.Namespace], None]] = {"babyai_text": bench_babyai_text}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", choices=[*SECTIONS, "all"], default="all")
    parser.add_argument("--episodes", type=int, default=100, help="expert episodes per level")
    parser.add_argument("--steps", type=int, default=5000, help="steps per speed measurement")
    args = parser.parse_args(argv)
    for name, section in SECTIONS.items():
        if args.env in (name, "all"):
            section(args)


if __name__ == "__main__":
    main()
