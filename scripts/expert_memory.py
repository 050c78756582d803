"""What a BabyAI-Text expert's labels depend on: its own success, and how often its action equals that of an
expert built at the same state (which has seen only the current view), along its own episodes and along
episodes where every third action is a random move. A policy shown 1-2 steps of history can imitate only
the part that agrees.

    .venv/bin/python scripts/expert_memory.py --expert bot myopic --episodes 30 --success-episodes 100
"""

from __future__ import annotations

import argparse
import functools

import gymnasium as gym

import envs  # noqa: F401 - registers the BabyAI-Text ids
from envs.babyai_text.expert import fresh_agreement
from londi.lm.demonstrations import collect

LEVELS = ("GoToLocal", "PickupLocal", "PutNextLocal", "MixedTrainLocal", "MixedTestLocal")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--expert", nargs="+", default=["bot", "myopic"], choices=("bot", "myopic"))
    ap.add_argument("--levels", nargs="+", default=list(LEVELS))
    ap.add_argument("--episodes", type=int, default=30, help="episodes for the agreement (reset seeds 0..)")
    ap.add_argument("--success-episodes", type=int, default=100,
                    help="episodes for the expert's own success (reset seeds 10,000,000..)")
    args = ap.parse_args()
    print("| expert | level | own success | agreement, own episodes | agreement, every 3rd action random |")
    print("|---|---|---|---|---|")
    for expert in args.expert:
        for level in args.levels:
            make = functools.partial(gym.make, f"BabyAI-Text-{level}-v0", expert=expert)
            success = collect(make, args.success_episodes, seed=10_000_000)[1].success_rate  # the expert alone
            env = make()
            cells = []
            for deviate in (0, 3):
                agree, total = fresh_agreement(env, args.episodes, deviate_every=deviate)
                cells.append(f"{agree / total:.3f} ({agree}/{total})")
            print(f"| {expert} | {level} | {success:.2f} | {cells[0]} | {cells[1]} |", flush=True)


if __name__ == "__main__":
    main()
