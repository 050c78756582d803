"""Switching-control benchmark: the configured switcher vs always_quick / always_deepthink / oracle / random.

Composes `configs/config.yaml` with the Hydra overrides given on the command line (so it measures exactly
what `londi-train` would run, default models included), trains the switcher for `total_steps`, then
evaluates it and the baselines on the same seeded episodes and prints success, DEEPTHINK calls per
episode, switcher decision overhead per state (ms: encoder excluded, `decide` only) and whole-loop steps/s
(QUICK/DEEPTHINK calls, encoder and env included). `random` runs at the learned switcher's DEEPTHINK rate.

    .venv/bin/python scripts/bench_switch.py switcher=londi switcher.cost=0.1 encoder.goal_features=true \
        encoder.quick_features=true encoder.history_features=true total_steps=10000 --episodes 100
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from londi import build
from londi.metrics import summarize
from londi.runner import make_switching_env, run, run_episodes


def timed_eval(parts, switcher, episodes: int, seed: int) -> tuple[dict[str, float], float, float]:
    """Seeded evaluation: (eval summary, ms per switcher decision, whole-loop steps/s)."""
    env = make_switching_env(parts["env_fn"], parts["quick"], parts["deepthink"], switcher, parts["encoder"], seed,
                             train=False)
    decide_s, steps = 0.0, 0
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
    ap.add_argument("overrides", nargs="*", help="Hydra overrides, as for londi-train")
    ap.add_argument("--episodes", type=int, default=100)
    ap.add_argument("--out", default=None, help="write the figures as JSON here")
    args = ap.parse_args()
    torch.set_num_threads(1)
    overrides = ["logger=disabled", "run_dir=unused", *args.overrides]
    cfg = build.config(overrides)

    def parts():  # fresh models (and meters) per evaluation
        c = build.components(cfg)
        return {"env_fn": c.env_fn, "quick": c.quick, "deepthink": c.deepthink, "encoder": c.encoder}

    def baseline(name: str, *extra: str):
        return build.switcher([*overrides, f"switcher={name}", *extra])

    eval_seed = cfg.seed + 1_000_000  # the runner's evaluation seeds
    rows = {}
    switcher = build.switcher(cfg)
    name = type(switcher).__name__
    train_s = 0.0
    if switcher.learns:
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            run(**parts(), switcher=switcher, run_dir=Path(tmp), seed=cfg.seed, total_steps=cfg.total_steps,
                eval_episodes=0, eval_every=cfg.total_steps, checkpoint_every=cfg.total_steps)
            train_s = time.perf_counter() - t0
    rows[name] = timed_eval(parts(), switcher, args.episodes, eval_seed)
    for base in ("always_quick", "always_deepthink", "oracle"):
        rows[base] = timed_eval(parts(), baseline(base), args.episodes, eval_seed)
    p = rows[name][0]["eval/deepthink_frac"]
    rows[f"random(p={p:.3f})"] = timed_eval(parts(), baseline("random", f"switcher.p={p}"), args.episodes, eval_seed)

    print(f"overrides: {' '.join(args.overrides) or '(defaults)'}")
    print(f"quick={cfg.quick._target_}({cfg.quick.get('path', '')}) deepthink={cfg.deepthink._target_} "
          f"seed={cfg.seed} train_steps={cfg.total_steps if switcher.learns else 0}"
          + (f" ({train_s:.0f} s, {cfg.total_steps / train_s:.0f} steps/s incl. updates)" if train_s else "")
          + f" eval_episodes={args.episodes} (seeds {eval_seed}..)")
    print(f"{'switcher':22s} {'success':>8s} {'DT calls/ep':>12s} {'DT frac':>8s} {'steps/ep':>9s} "
          f"{'decide ms':>10s} {'loop steps/s':>13s}")
    for key, (s, ms, sps) in rows.items():
        steps_ep = s["eval/deepthink_calls"] + s["eval/quick_calls"]
        print(f"{key:22s} {s['eval/success_rate']:8.3f} {s['eval/deepthink_calls']:12.2f} "
              f"{s['eval/deepthink_frac']:8.3f} {steps_ep:9.2f} {ms:10.3f} {sps:13.0f}")
    if args.out:
        Path(args.out).write_text(json.dumps(
            {k: {"summary": v[0], "decide_ms": v[1], "steps_per_s": v[2]} for k, v in rows.items()}, indent=2))


if __name__ == "__main__":
    main()
