"""Does a Lagrangian run's multiplier settle or cycle? Per run folder, over the second half of training.

Reads each londi-train run folder's metrics.csv (switch/lambda, switch/deepthink_frac, the final evaluation)
and episodes.csv (training episodes' DEEPTHINK calls) and prints one row per run: how often lambda sits at 0,
its range, how often the switcher's DEEPTHINK share is low (< 0.1) or high (> 0.35), the training episodes'
mean calls against the target, and the final evaluation.

    .venv/bin/python scripts/lagrangian_cycle.py multirun/results_real_pair_v2_50k/*/lagrangian/*
"""

from __future__ import annotations

import argparse
import csv
import statistics
from pathlib import Path

from omegaconf import OmegaConf


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def cycle_row(run: Path) -> dict[str, float | str]:
    metrics = _read_csv(run / "metrics.csv")
    logged = [r for r in metrics if r.get("switch/lambda")]
    if not logged:
        raise SystemExit(f"{run}: metrics.csv has no switch/lambda column values: not a Lagrangian run")
    late = logged[len(logged) // 2:]
    lam = [float(r["switch/lambda"]) for r in late]
    frac = [float(r["switch/deepthink_frac"]) for r in late if r.get("switch/deepthink_frac")]
    train = [e for e in _read_csv(run / "episodes.csv") if e["phase"] == "train"]
    train = train[len(train) // 2:]
    evals = [r for r in metrics if r.get("eval/success_rate")]
    target = OmegaConf.load(run / "config.yaml").switcher.target_calls
    return {
        "run": "/".join(run.parts[-3:]), "target": float(target), "points": len(late),
        "lambda=0": sum(v == 0 for v in lam) / len(lam), "lambda max": max(lam),
        "share<0.1": sum(f < 0.1 for f in frac) / max(1, len(frac)),
        "share>0.35": sum(f > 0.35 for f in frac) / max(1, len(frac)),
        "train calls/ep": statistics.fmean(float(e["deepthink_calls"]) for e in train) if train else float("nan"),
        "eval calls/ep": float(evals[-1]["eval/deepthink_calls"]) if evals else float("nan"),
        "eval success": float(evals[-1]["eval/success_rate"]) if evals else float("nan"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="londi-train run folders of switcher=lagrangian")
    rows = [cycle_row(run) for run in parser.parse_args().runs if (run / "metrics.csv").exists()]
    if not rows:
        raise SystemExit("no run folder with a metrics.csv among the paths given")
    keys = list(rows[0])
    print("| " + " | ".join(keys) + " |\n|" + "---|" * len(keys))
    for r in rows:
        print("| " + " | ".join(f"{v:.2f}" if isinstance(v, float) else str(v) for v in r.values()) + " |")


if __name__ == "__main__":
    main()
