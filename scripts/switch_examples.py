"""Which states does a trained switcher send to DEEPTHINK? Replays a run's final evaluation and tabulates its
decisions against whether QUICK's action was the expert's (the oracle's rule), with example states.

    .venv/bin/python scripts/switch_examples.py multirun/results/goto_local/londi/1_londi-c0.1-s0 --episodes 100

Prints: the 2x2 table (QUICK right / wrong x QUICK / DEEPTHINK chosen), the share of QUICK's mistakes the
switcher caught, and `--examples` states of each kind. Needs an env with an expert (`expert_action()`).
"""

from __future__ import annotations

import argparse
import json
import random
from collections import defaultdict
from pathlib import Path

import torch

from londi import build
from londi.rundir import load_run_config
from londi.runner import make_switching_env
from londi.switch.base import DEEPTHINK


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--episodes", type=int, default=100)
    ap.add_argument("--examples", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(1)
    cfg = load_run_config(args.run_dir)
    meta = json.loads((args.run_dir / "run.json").read_text())
    parts = build.components(cfg)
    switcher, quick = parts.switcher, parts.quick
    vec = make_switching_env(parts.env_fn, quick, parts.deepthink, switcher, parts.encoder,
                             meta["eval_seed"], train=False)
    env = vec.envs[0]  # one env: the script steps it directly
    switcher.setup(vec, meta["seed"], meta["total_steps"])
    if switcher.learns:
        switcher.load(args.run_dir / "switcher")

    cells: dict[tuple[bool, int], list[tuple[str, str, str]]] = defaultdict(list)
    env.reset(seed=meta["eval_seed"])
    for _ in range(args.episodes):
        while True:
            obs, ctx = env.current_obs(), env.context()
            decision = int(switcher.decide(obs, ctx))
            expert = ctx.state.expert() if ctx.state.expert is not None else None
            proposal = ctx.quick.action if ctx.quick is not None else quick.act_one(ctx.state).action
            cells[(proposal == expert, decision)].append((ctx.state.obs, proposal, expert))
            _, _, terminated, truncated, info = env.step(decision)
            if terminated or truncated:
                break
        env.reset()

    total = sum(len(v) for v in cells.values())
    print(f"{args.run_dir}: {args.episodes} evaluation episodes, {total} decisions")
    print(f"{'':18s} {'QUICK chosen':>13s} {'DEEPTHINK chosen':>17s}")
    for right in (True, False):
        q, d = len(cells[(right, 0)]), len(cells[(right, DEEPTHINK)])
        print(f"{'QUICK ' + ('right' if right else 'wrong'):18s} {q:13d} {d:17d}")
    wrong = len(cells[(False, 0)]) + len(cells[(False, DEEPTHINK)])
    calls = len(cells[(True, DEEPTHINK)]) + len(cells[(False, DEEPTHINK)])
    print(f"QUICK's mistakes caught: {len(cells[(False, DEEPTHINK)])}/{wrong}; calls on states QUICK got right: "
          f"{len(cells[(True, DEEPTHINK)])}/{calls}")
    rng = random.Random(0)
    for (right, decision), label in (((False, DEEPTHINK), "DEEPTHINK called, QUICK was wrong"),
                                     ((True, DEEPTHINK), "DEEPTHINK called, QUICK was right"),
                                     ((False, 0), "QUICK kept, QUICK was wrong"),
                                     ((True, 0), "QUICK kept, QUICK was right")):
        rows = cells[(right, decision)]
        for text, proposal, expert in rng.sample(rows, min(args.examples, len(rows))):
            print(f"\n[{label}] QUICK proposes {proposal!r}, expert {expert!r}\n  " + text.replace("\n", "\n  "))


if __name__ == "__main__":
    main()
