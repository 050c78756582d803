"""Switching-control benchmarks, on exactly what `londi-train` would build for the given Hydra overrides.

Throughput (default): training env steps per second of the configured switcher at several `n_envs`, one
after another in one process (the first setting is measured again at the end, so machine drift shows),
after a warm-up past DQN's `learning_starts` so gradient steps are included. Each setting gets fresh
models; the figure is the training loop itself (QUICK/DEEPTHINK calls, encoder, env, DQN updates).

    .venv/bin/python scripts/bench_switch.py --n-envs 1,4,16 --steps 3000
    .venv/bin/python scripts/bench_switch.py env=scienceworld/find_living_thing model@quick=random \
        model@deepthink=expert --n-envs 1,2 --steps 400

Baselines (`--baselines`): the switcher trained for `total_steps`, then it and always_quick /
always_deepthink / oracle / random (at its DEEPTHINK rate) evaluated on the same seeded episodes: success,
DEEPTHINK calls per episode, decision overhead per state (`decide` only) and whole-loop steps/s.

    .venv/bin/python scripts/bench_switch.py total_steps=20000 --baselines --episodes 100
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
from londi.runner import EVAL_SEED_OFFSET, episode_seed_base, make_switching_env, run, run_episodes


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


def throughput(overrides: list[str], n_envs: list[int], steps: int, warmup: int) -> dict[int, list[float]]:
    """Training env steps/s per n_envs (the first setting twice: at the start and at the end)."""
    out: dict[int, list[float]] = {}
    for n in [*n_envs, n_envs[0]]:
        cfg = build.config([*overrides, f"n_envs={n}"])
        parts = build.components(cfg)
        env = make_switching_env(parts.env_fn, parts.quick, parts.deepthink, parts.switcher, parts.encoder,
                                 seed=cfg.seed, train=True, n_envs=n)
        sw = parts.switcher
        sw.setup(env, cfg.seed, warmup + steps)
        count = [0]

        def on_step(info, count=count):
            count[0] += 1

        sw.learn(env, -(-warmup // n) * n, on_step)
        t0, c0 = time.perf_counter(), count[0]
        sw.learn(env, -(-steps // n) * n, on_step)
        out.setdefault(n, []).append((count[0] - c0) / (time.perf_counter() - t0))
        q, d = parts.quick.meter.total(), parts.deepthink.meter.total()
        print(f"n_envs={n:3d}: {out[n][-1]:8.1f} env steps/s  (QUICK {q.calls} calls, DEEPTHINK {d.calls} calls "
              f"over {count[0]} steps)", flush=True)
        env.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("overrides", nargs="*", help="Hydra overrides, as for londi-train")
    ap.add_argument("--n-envs", default="1,4,16", help="comma-separated n_envs to compare (throughput mode)")
    ap.add_argument("--steps", type=int, default=3000, help="timed training env steps per setting")
    ap.add_argument("--warmup", type=int, default=600, help="untimed env steps first (past learning_starts)")
    ap.add_argument("--baselines", action="store_true", help="compare the trained switcher with the baselines")
    ap.add_argument("--episodes", type=int, default=100)
    ap.add_argument("--out", default=None, help="write the figures as JSON here")
    args = ap.parse_args()
    torch.set_num_threads(1)
    overrides = ["logger=disabled", "run_dir=unused", *args.overrides]
    if not args.baselines:
        ns = [int(x) for x in args.n_envs.split(",")]
        rates = throughput(overrides, ns, args.steps, args.warmup)
        base = sum(rates[ns[0]]) / len(rates[ns[0]])
        print(f"\noverrides: {' '.join(args.overrides) or '(defaults)'}; {args.steps} timed steps after "
              f"{args.warmup} warm-up steps; 1 torch thread")
        print(f"{'n_envs':>7s} {'env steps/s':>12s} {'x n_envs=' + str(ns[0]):>12s}")
        for n in ns:
            r = sum(rates[n]) / len(rates[n])
            extra = f"   (runs: {', '.join(f'{x:.1f}' for x in rates[n])})" if len(rates[n]) > 1 else ""
            print(f"{n:7d} {r:12.1f} {r / base:12.2f}{extra}")
        if args.out:
            Path(args.out).write_text(json.dumps({str(k): v for k, v in rates.items()}, indent=2))
        return
    cfg = build.config(overrides)

    def parts():  # fresh models (and meters) per evaluation
        c = build.components(cfg)
        return {"env_fn": c.env_fn, "quick": c.quick, "deepthink": c.deepthink, "encoder": c.encoder}

    def baseline(name: str, *extra: str):
        return build.switcher([*overrides, f"switcher={name}", *extra])

    eval_seed = episode_seed_base(cfg.seed, EVAL_SEED_OFFSET)  # the runner's evaluation seeds
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
