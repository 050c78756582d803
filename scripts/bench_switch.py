"""Switching-control benchmark: LONDI vs always_quick / always_deepthink / random at LONDI's call rate.

Prints success, DEEPTHINK calls per episode, switcher decision overhead per state (ms; encoder + decide)
and whole-loop steps/s. Without a default QUICK model (londi/assets/models/babyai_quick) it uses a
noisy-expert stand-in (errs with prob `--hard-error` on states whose text contains `--hard-word`).

    .venv/bin/python scripts/bench_switch.py --steps 15000 --episodes 100 --seed 0
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

import envs
from londi.lm import ExpertPolicy
from londi.runner import make_switching_env, run, run_episodes, summarize
from londi.switch import make_switcher
from londi.switch.encoders import HashedNgramEncoder
from londi.switch.toy import NoisyExpertPolicy


def timed_eval(env_fn, quick, deepthink, switcher, encoder, episodes, seed):
    """Seeded evaluation: (eval summary, ms per switcher decision, whole-loop steps/s)."""
    env = make_switching_env(env_fn, quick, deepthink, switcher, encoder, seed, train=False)
    decide_s = 0.0
    steps = 0
    orig = switcher.decide

    def timed(obs, ctx):
        nonlocal decide_s, steps
        t = time.perf_counter()
        out = orig(obs, ctx)
        decide_s += time.perf_counter() - t
        steps += 1
        return out

    switcher.decide = timed
    t0 = time.perf_counter()
    eps = run_episodes(env, switcher, episodes, seed)
    wall = time.perf_counter() - t0
    switcher.decide = orig
    return summarize(eps), 1000 * decide_s / max(1, steps), steps / wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--env", default="BabyAI-Text-GoToLocal-v0")
    ap.add_argument("--steps", type=int, default=15000)
    ap.add_argument("--episodes", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cost", type=float, default=0.02)
    ap.add_argument("--hard-word", default="wall")
    ap.add_argument("--hard-error", type=float, default=0.9)
    ap.add_argument("--easy-error", type=float, default=0.1)
    ap.add_argument("--out", default=None, help="write the figures as JSON here")
    args = ap.parse_args()
    torch.set_num_threads(1)

    def env_fn():
        return envs.make(args.env)

    def quick():
        return NoisyExpertPolicy(name="quick", hard_words=(args.hard_word,), hard_error=args.hard_error,
                                 easy_error=args.easy_error, simulated_params=10**6)

    def deepthink():
        return ExpertPolicy(name="deepthink", simulated_params=10**8)

    def enc():
        return HashedNgramEncoder(512)

    rows = {}
    eval_seed = args.seed + 1_000_000
    with tempfile.TemporaryDirectory() as tmp:
        londi = make_switcher("londi", cost=args.cost)
        t0 = time.perf_counter()
        res = run(env_fn, quick(), deepthink(), londi, Path(tmp) / "londi", seed=args.seed, total_steps=args.steps,
                  eval_episodes=20, eval_every=args.steps // 3, encoder=enc())
        train_s = time.perf_counter() - t0
        rows["londi"] = timed_eval(env_fn, quick(), deepthink(), londi, enc(), args.episodes, eval_seed)
    for name in ("always_quick", "always_deepthink"):
        rows[name] = timed_eval(env_fn, quick(), deepthink(), make_switcher(name), enc(), args.episodes, eval_seed)
    p = rows["londi"][0]["eval/deepthink_frac"]
    rows[f"random(p={p:.3f})"] = timed_eval(env_fn, quick(), deepthink(), make_switcher("random", p=p), enc(),
                                            args.episodes, eval_seed)
    print(f"env={args.env} seed={args.seed} train_steps={args.steps} ({train_s:.0f}s, {args.steps / train_s:.0f} steps/s "
          f"incl. DQN updates) eval_episodes={args.episodes} (seeds {eval_seed}..) cost={args.cost}")
    print(f"QUICK = noisy expert (error {args.hard_error} on states containing {args.hard_word!r}, else {args.easy_error});"
          " DEEPTHINK = expert")
    print(f"{'switcher':22s} {'success':>8s} {'DT calls/ep':>12s} {'DT frac':>8s} {'decide ms':>10s} {'loop steps/s':>13s}")
    for name, (s, ms, sps) in rows.items():
        print(f"{name:22s} {s['eval/success_rate']:8.3f} {s['eval/deepthink_calls']:12.2f} {s['eval/deepthink_frac']:8.3f}"
              f" {ms:10.3f} {sps:13.0f}")
    print("periodic londi evals:", [(e["step"], e["eval/success_rate"], round(e["eval/deepthink_calls"], 2)) for e in res.evals])
    if args.out:
        Path(args.out).write_text(json.dumps({k: {"summary": v[0], "decide_ms": v[1], "steps_per_s": v[2]} for k, v in rows.items()}, indent=2))


if __name__ == "__main__":
    main()
