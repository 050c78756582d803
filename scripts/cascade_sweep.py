"""Accuracy vs cost of the online cascade over a mu sweep on the synthetic drifting stream (CPU, ~30 s/run).

    .venv/bin/python scripts/cascade_sweep.py --n 10000 --hard-fraction 0.1 --mus 0.1,0.2,0.3,0.35,0.4,0.5 --out results/cascade_sweep_error

With --router-metrics RUN/metrics.csv (a `londi-train switcher=cascade` run) it instead plots QUICK's
DEEPTHINK fraction and the success rate over training steps into {out}.png and {out}.csv.

Writes {out}.csv (one row per mu) and {out}.png (accuracy vs final-model call fraction, with the
always-final reference). The same runs are available one by one from `londi-cascade cascade.mu=...`.
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

import torch

from londi.cascade.cascade import OnlineCascade
from londi.cascade.deferral import ForcedDeferral
from londi.cascade.levels import GivenLabelsLevel, HashedLinearLevel
from londi.cascade.streams import synthetic_drifting
from londi.lm.usage import ComputeMeter


def run_one(mu: float, args: argparse.Namespace) -> dict[str, float]:
    stream = synthetic_drifting(n=args.n, seed=args.seed, hard_fraction=args.hard_fraction)
    meter = ComputeMeter()
    levels = [
        HashedLinearLevel("lr", stream.num_classes, ngram_range=(1, 1), lr=1.0, meter=meter),
        GivenLabelsLevel("llm", stream.num_classes, simulated_params=7_000_000_000, meter=meter),
    ]
    cascade = OnlineCascade(
        levels, mu=mu, forced=ForcedDeferral(1.0, 0.995), learn_from_answered=args.learn_from_answered,
        audit_rate=args.audit_rate, pseudo_weight=args.pseudo_weight, head_objective=args.head_objective,
        seed=args.seed,
    )
    t0 = time.perf_counter()
    out = cascade.run(stream)
    out["seconds"] = time.perf_counter() - t0
    return out


def plot_router(metrics_csv: Path, out: Path) -> None:
    """DEEPTHINK fraction (per logging window and cumulative) and success over training steps of a run."""
    import matplotlib
    import pandas as pd

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    d = pd.read_csv(metrics_csv)
    train = d.dropna(subset=["switch/deepthink_frac"])
    cols = ["global_step", "switch/deepthink_frac", "cascade/train_deepthink_frac", "charts/success_rate"]
    evals = d.dropna(subset=["eval/success_rate"])[["global_step", "eval/success_rate", "eval/deepthink_frac"]]
    out.parent.mkdir(parents=True, exist_ok=True)
    train[cols].merge(evals, on="global_step", how="outer").to_csv(f"{out}.csv", index=False)
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    ax.plot(train["global_step"], train["switch/deepthink_frac"], lw=0.8, alpha=0.6, label="DEEPTHINK frac (window)")
    ax.plot(train["global_step"], train["cascade/train_deepthink_frac"], lw=1.6, label="DEEPTHINK frac (cumulative)")
    ax.plot(train["global_step"], train["charts/success_rate"], lw=1.0, ls="--", label="success (train episodes)")
    ax.plot(evals["global_step"], evals["eval/deepthink_frac"], "s", label="eval DEEPTHINK frac")
    ax.plot(evals["global_step"], evals["eval/success_rate"], "^", label="eval success")
    ax.set_xlabel("env steps")
    ax.set_ylim(-0.02, 1.05)
    ax.set_title(f"switcher=cascade quick=online_ngram ({metrics_csv.parent.name})", fontsize=9)
    ax.legend(fontsize=7, loc="center right")
    fig.tight_layout()
    fig.savefig(f"{out}.png", dpi=120)
    print(f"wrote {out}.csv and {out}.png")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=10_000)
    p.add_argument("--mus", default="0.1,0.2,0.3,0.35,0.4,0.5")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--hard-fraction", type=float, default=0.25)
    p.add_argument("--learn-from-answered", default="audit", choices=["none", "audit", "pseudo", "both"])
    p.add_argument("--pseudo-weight", type=float, default=0.2)
    p.add_argument("--head-objective", default="error", choices=["error", "cascade"])
    p.add_argument("--audit-rate", type=float, default=0.05)
    p.add_argument("--out", default="results/cascade_sweep")
    p.add_argument("--router-metrics", type=Path, default=None, help="plot a switcher=cascade run's metrics.csv")
    args = p.parse_args()
    if args.router_metrics is not None:
        plot_router(args.router_metrics, Path(args.out))
        return
    torch.set_num_threads(1)
    rows = []
    for mu in (float(m) for m in args.mus.split(",")):
        r = run_one(mu, args)
        rows.append({"mu": mu, **{k: r[k] for k in (
            "cascade/accuracy", "cascade/agreement", "cascade/final_call_frac", "cost/units_per_item",
            "reference/final_accuracy", "cascade/answered_frac/lr", "compute/total_flops", "seconds")}})
        print({k: round(v, 4) for k, v in rows[-1].items()}, flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with Path(f"{out}.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ref = rows[0]["reference/final_accuracy"]
    fig, ax = plt.subplots(figsize=(5, 3.6))
    ax.plot([r["cascade/final_call_frac"] for r in rows], [r["cascade/accuracy"] for r in rows], "o-", label="online cascade")
    for r in rows:
        ax.annotate(f"mu={r['mu']:g}", (r["cascade/final_call_frac"], r["cascade/accuracy"]), fontsize=7)
    ax.plot([1.0], [ref], "s", color="k", label="final model only")
    ax.axhspan(ref - 0.02, ref, color="grey", alpha=0.15, label="within 2 points of final")
    ax.axvline(0.3, ls=":", color="grey")
    ax.set_xlabel("final-model calls / items")
    ax.set_ylabel("accuracy vs gold")
    ax.set_title(f"synthetic drifting stream, n={args.n}, hard={args.hard_fraction}, head={args.head_objective}", fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(Path(f"{out}.png"), dpi=120)
    print(f"wrote {out}.csv and {out}.png")


if __name__ == "__main__":
    main()
