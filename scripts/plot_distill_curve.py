"""Learning curves of `londi-distill` runs: greedy success per level against training compute.

Reads each run's `curve.jsonl` (written during training: success per eval env every `eval_every` steps and
at each round's end, with the training FLOPs, samples and CPU seconds so far) and draws one panel per
x axis (training FLOPs, CPU-hours), one colour per level, one line style per run. A
fine-tuning run (`init_from`) starts where its initial model's training ended: its x axis adds the earlier
stages' compute, and its first point is the initial model's measured success.

    .venv/bin/python scripts/plot_distill_curve.py outputs/distill/deepthink outputs/distill/quick \\
        --labels DEEPTHINK QUICK --out results/distill_curve.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from londi.lm.distill import LONDI_META, MODEL_DIR, lineage_training  # noqa: E402

STYLES = ["-", "--", ":", "-."]


def short(env_id: str) -> str:
    parts = env_id.split("-")
    return parts[2] if len(parts) >= 4 and parts[1] == "Text" else env_id


def read_curve(run: Path) -> list[dict]:
    path = run / "curve.jsonl"
    if not path.exists():
        raise SystemExit(f"{path} not found: pass the out= folder of a londi-distill run")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def earlier_stages(run: Path) -> tuple[dict[str, float], dict[str, float]]:
    """For a fine-tuning run (`init_from`): the earlier stages' training compute and the initial model's
    measured success per level, so its curve is drawn from where the initial model's training ended."""
    meta_path = run / MODEL_DIR / LONDI_META
    if not meta_path.exists():
        return lineage_training({}), {}
    meta = json.loads(meta_path.read_text())
    init_eval = ((meta.get("init") or {}).get("eval") or {}).get("levels", {})
    return lineage_training(meta), {lv: v["success_rate"] for lv, v in init_eval.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", type=Path, help="londi-distill out= folders")
    ap.add_argument("--labels", nargs="*", default=None, help="one label per run (default: folder names)")
    ap.add_argument("--out", type=Path, default=Path("distill_curve.png"))
    args = ap.parse_args()
    labels = args.labels or [r.name for r in args.runs]
    if len(labels) != len(args.runs):
        raise SystemExit(f"{len(args.runs)} runs but {len(labels)} labels")
    curves = [read_curve(r) for r in args.runs]
    for run, curve in zip(args.runs, curves, strict=True):
        before, start = earlier_stages(run)
        for row in curve:
            row["train_flops"] += before["train_flops"]
            row["cpu_seconds"] += before["cpu_seconds"]
        if start:  # the initial model, as measured (100 episodes per level) when it was made
            curve.insert(0, {"train_flops": before["train_flops"], "cpu_seconds": before["cpu_seconds"],
                             "success": start})
    levels = sorted({k for c in curves for row in c for k in row["success"]}, key=short)
    colours = {lv: plt.get_cmap("tab10")(i) for i, lv in enumerate(levels)}
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
    for (ax, key, scale, xlabel) in ((axes[0], "train_flops", 1.0, "training FLOPs (6 x dense params x tokens)"),
                                      (axes[1], "cpu_seconds", 3600.0, "CPU-hours (1 thread; collection and DAgger "
                                                                       "rollouts included)")):
        for curve, label, style in zip(curves, labels, STYLES * 4, strict=False):
            for lv in levels:
                pts = [(row[key] / scale, row["success"][lv]) for row in curve if lv in row["success"]]
                if pts:
                    xs, ys = zip(*pts, strict=True)
                    ax.plot(xs, ys, style, color=colours[lv], marker="o", ms=3, label=f"{label}: {short(lv)}")
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
    flops = [row["train_flops"] for c in curves for row in c if row["train_flops"] > 0]
    if flops and max(flops) > 10 * min(flops):  # a fine-tuning stage alone spans less than a decade: linear reads better
        axes[0].set_xscale("log")
    axes[0].set_ylabel("greedy success (30 episodes per level and point)")
    axes[1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.suptitle("londi-distill learning curves: success per level against training compute")
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=120, bbox_inches="tight")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
