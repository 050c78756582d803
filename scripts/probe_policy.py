"""Where a BabyAI-Text LM policy goes wrong: it acts alone, and at every state it is compared with the bot.

Prints, per bot action (turn left, turn right, go forward, pick up, drop, toggle), how often the model chose
the same one; the most frequent (bot -> model) confusions; and per episode whether the model succeeded and
whether it ever picked up an object the mission names (the object-matching step the levels share); and, for
the moves (turns, go forward), the agreement where the named object is in view and where it is not (the bot
explores there). `--expert myopic` compares with the myopic expert instead of the bot.

    .venv/bin/python scripts/probe_policy.py londi-assets:models/babyai_deepthink BabyAI-Text-PutNextLocal-v0 \\
        --episodes 20
"""

from __future__ import annotations

import argparse
import collections
from typing import Any

import gymnasium as gym
import torch

import envs  # noqa: F401 - registers the BabyAI-Text ids
from londi.lm.hf import HFPolicy
from londi.lm.state import EpisodeHistory

MOVES = ("turn left", "turn right", "go forward")


def named_desc(level: Any) -> Any:
    """The BabyAI object description of what the mission asks to reach, pick up or move (None for missions
    made of several instructions)."""
    instrs = getattr(level, "instrs", None)
    return getattr(instrs, "desc_move", None) or getattr(instrs, "desc", None)


def named_objects(level: Any) -> list[Any]:
    """Objects the mission asks to pick up or move (empty where it names none)."""
    return list(getattr(named_desc(level), "obj_set", []) or [])


def in_view(level: Any, observation: str) -> bool:
    """Whether the current observation describes an object of the kind the mission names (hands empty)."""
    desc = named_desc(level)
    if desc is None or level.carrying is not None:
        return False
    phrase = " ".join(x for x in (desc.color, desc.type) if x)
    return any(line.startswith("You see") and f" {phrase} " in f"{line} " for line in observation.splitlines())


def probe(policy: HFPolicy, env_id: str, episodes: int, seed: int, expert: str = "bot") -> dict[str, Any]:
    """`expert`: the teacher compared with ("bot", or "myopic" for a model trained on the myopic expert)."""
    env = gym.make(env_id, expert=expert)
    agree: collections.Counter = collections.Counter()
    total: collections.Counter = collections.Counter()
    confusions: collections.Counter = collections.Counter()
    outcomes: collections.Counter = collections.Counter()
    moves: collections.Counter = collections.Counter()  # (in view?, agreed?) over the bot's turns and forwards
    try:
        for ep in range(episodes):
            obs, info = env.reset(seed=seed + ep)
            level = env.unwrapped.level.unwrapped
            hist = EpisodeHistory(max_steps=max(2, policy.history_needed))
            hist.reset(obs, info)
            picked_named = success = False
            while True:
                state = hist.state(obs, info, env=env)
                bot = env.unwrapped.expert_action()
                chosen = policy.act([state])[0]
                if bot in MOVES:
                    moves[(in_view(level, obs), chosen.action == bot)] += 1
                if bot is not None:
                    total[bot] += 1
                    agree[bot] += int(chosen.action == bot)
                    if chosen.action != bot:
                        confusions[(bot, chosen.action)] += 1
                held_before = level.carrying
                obs, _, terminated, truncated, info = env.step(chosen.index)
                if held_before is None and level.carrying is not None:
                    picked_named = picked_named or any(o is level.carrying for o in named_objects(level))
                hist.record(chosen.action, obs, info)
                success = success or bool(info.get("success", False))
                if terminated or truncated:
                    break
            outcomes[("success" if success else "failure", "picked a named object" if picked_named else "did not")] += 1
    finally:
        env.close()
    return {"agree": agree, "total": total, "confusions": confusions, "outcomes": outcomes, "moves": moves}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", help="model directory or londi-assets:models/NAME")
    ap.add_argument("env_ids", nargs="+", help="BabyAI-Text env ids, e.g. BabyAI-Text-PickupLocal-v0")
    ap.add_argument("--episodes", type=int, default=20)
    ap.add_argument("--seed", type=int, default=424242, help="reset seeds seed, seed+1, ... (424242: the model cards')")
    ap.add_argument("--expert", choices=("bot", "myopic"), default="bot",
                    help="the teacher to compare with (the BabyAI-Text env's `expert`; 'bot' in the output means it)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    policy = HFPolicy(name="probe", path=args.model, device="cpu", dtype="float32", mode="score", greedy=True,
                      temperature=1.0, max_new_tokens=8)
    for env_id in args.env_ids:
        r = probe(policy, env_id, args.episodes, args.seed, args.expert)
        print(f"{env_id}, {args.episodes} episodes: the model's action = the bot's, by the bot's action")
        for action in sorted(r["total"], key=lambda a: -r["total"][a]):
            print(f"  {action:12s} {r['agree'][action]:5d} / {r['total'][action]:5d} = "
                  f"{r['agree'][action] / r['total'][action]:.2f}")
        print("  most frequent (bot -> model):",
              ", ".join(f"{b} -> {m} ({n})" for (b, m), n in r["confusions"].most_common(6)))
        for seen in (True, False):
            n = r["moves"][(seen, True)] + r["moves"][(seen, False)]
            print(f"  bot's moves with the named object {'in view' if seen else 'not in view'}: {n}, agreement "
                  f"{r['moves'][(seen, True)] / max(n, 1):.2f}")
        print("  episodes:", ", ".join(f"{s}, {p}: {n}" for (s, p), n in sorted(r["outcomes"].items())))


if __name__ == "__main__":
    main()
