"""Accuracy vs cost of the online cascade over a mu sweep on the synthetic drifting stream (CPU, ~30 s/run).

    .venv/bin/python scripts/cascade_sweep.py --n 10000 --mus 0.6,0.8,0.9,1.0,1.1,1.2 --out results/cascade_sweep

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
        audit_rate=args.audit_rate, seed=args.seed,
    )
    t0 = time.perf_counter()
    out = cascade.run(stream)
    out["seconds"] = time.perf_counter() - t0
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=10_000)
    p.add_argument("--mus", default="0.6,0.8,0.9,1.0,1.1,1.2")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--hard-fraction", type=float, default=0.25)
    p.add_argument("--learn-from-answered", default="audit", choices=["none", "audit", "pseudo"])
    p.add_argument("--audit-rate", type=float, default=0.05)
    p.add_argument("--out", default="results/cascade_sweep")
    args = p.parse_args()
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
    ax.set_title(f"synthetic drifting stream, n={args.n}, hard={args.hard_fraction}", fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(Path(f"{out}.png"), dpi=120)
    print(f"wrote {out}.csv and {out}.png")


if __name__ == "__main__":
    main()
