"""`londi-report dir=<run or multirun dir>`: tables and figures from the runs' CSVs (not from W&B).

Why from the CSVs: they are always written, with or without W&B, so a report can be rebuilt anywhere
from the run folders alone. Each run is one (env, switcher, budget, cost, seed); seeds are aggregated
into a mean and a 95% confidence interval (Student t). Outputs, in `out` (default `<dir>/report`):

- `report.md`: per (env, switcher, budget/cost) success, return, DEEPTHINK calls, DEEPTHINK and total
  FLOPs and device seconds per episode, and the compute saved against always_deepthink;
- `summary.csv` (the same, machine-readable) and `runs.csv` (one row per run);
- `pareto.png`: success (or, with `metric=return`, the mean return) vs DEEPTHINK compute per episode, one
  point per switcher/budget/cost, with the Pareto front (the points no other point beats on both);
- `compute_curve.png`: cumulative compute (FLOPs, and device seconds) against env steps per switcher;
- `budget.png`: success (or return) against the budget for budgeted switchers, when there are several.

Which episodes count: the final evaluation (rows with phase == "eval" at the run's last evaluation
step, `global_step`), or a run's `eval.csv` from `londi-evaluate` when `source=evaluate`.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import OmegaConf

from londi.rundir import RUN_INFO, load_run_config, run_name_from_parts

EPISODES = "episodes.csv"
METRICS = "metrics.csv"
GROUP_KEYS = ["env", "switcher", "budget", "cost", "setting"]
# the knob that tells runs of one switcher apart when it has no budget or cost (random p, Lagrangian d, cascade mu)
SETTING_KEYS = (("p", "p"), ("target_calls", "d"), ("mu", "mu"))
# per-episode quantity in episodes.csv -> column name in the report
EPISODE_STATS = {
    "success": "success",
    "return": "return",
    "deepthink_calls": "deepthink_calls",
    "quick_calls": "quick_calls",
    "deepthink_flops": "deepthink_flops",
    "total_flops": "total_flops",
    "device_seconds": "device_seconds",
}


@dataclass
class RunRecord:
    """One run folder: what it was (env, switcher, budget, cost, seed) and its CSVs."""

    path: Path
    env: str
    switcher: str
    budget: float | None
    cost: float | None
    seed: int | None
    episodes: pd.DataFrame
    metrics: pd.DataFrame | None
    simulated: list[str] = field(default_factory=list)  # models charged a configured size they do not run
    setting: str | None = None  # e.g. "p=0.1" (see SETTING_KEYS)

    @property
    def label(self) -> str:
        return _with_setting(run_name_from_parts(self.switcher, self.budget, self.cost), self.setting)


def find_runs(root: str | Path) -> list[Path]:
    """Every folder under `root` (itself included) that holds an episodes.csv, sorted."""
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"londi-report: {root} does not exist (pass dir=<run or multirun dir>)")
    return sorted({p.parent for p in root.rglob(EPISODES) if "report" not in p.parent.name})


def _choices(run_dir: Path) -> dict[str, str]:
    info = run_dir / RUN_INFO
    if info.exists():
        choices = json.loads(info.read_text()).get("choices") or {}
        if choices:
            return choices
    hydra_yaml = run_dir / ".hydra" / "hydra.yaml"
    if hydra_yaml.exists():
        node = OmegaConf.load(hydra_yaml)
        return dict(OmegaConf.to_container(node.hydra.runtime.choices))
    return {}


def _num(x) -> float | None:
    try:
        return None if x is None else float(x)
    except (TypeError, ValueError):
        return None


def load_run(run_dir: str | Path) -> RunRecord:
    """Read one run folder (its config names the switcher, budget, cost and seed)."""
    run_dir = Path(run_dir)
    try:
        cfg = OmegaConf.to_container(load_run_config(run_dir), resolve=False)
    except FileNotFoundError:
        cfg = {}
    choices = _choices(run_dir)
    sw = cfg.get("switcher") or {}
    env = cfg.get("env") or {}
    switcher = choices.get("switcher") or str(sw.get("_target_", "run")).rsplit(".", 1)[-1]
    env_name = choices.get("env") or str(env.get("id", "env"))
    seed = cfg.get("seed")
    episodes = pd.read_csv(run_dir / EPISODES)
    metrics = pd.read_csv(run_dir / METRICS) if (run_dir / METRICS).exists() else None
    return RunRecord(
        path=run_dir,
        env=env_name,
        switcher=str(switcher),
        budget=_num(sw.get("budget")),
        cost=_num(sw.get("cost")),
        setting=next((f"{short}={float(sw[k]):g}" for k, short in SETTING_KEYS if _num(sw.get(k)) is not None), None),
        seed=int(seed) if seed is not None else None,
        episodes=episodes,
        metrics=metrics,
        simulated=[
            f"{m} ({cfg[m]['simulated_params']:.3g} params)"
            for m in ("quick", "deepthink")
            if isinstance(cfg.get(m), dict) and cfg[m].get("simulated_params")
        ],
    )


def final_episodes(run: RunRecord, source: str = "eval") -> pd.DataFrame:
    """The episodes that measure a run: its last evaluation (or eval.csv with source=evaluate)."""
    if source == "evaluate":
        path = run.path / "eval.csv"
        if not path.exists():
            raise FileNotFoundError(f"{path} missing: run `londi-evaluate run_dir={run.path}` first")
        return pd.read_csv(path)
    ep = run.episodes
    if "phase" in ep.columns and (ep["phase"] == "eval").any():
        ev = ep[ep["phase"] == "eval"]
        at = _step_column(ev)
        return ev[ev[at] == ev[at].max()]
    return ep  # a run with no evaluation: every episode it has


def _step_column(df: pd.DataFrame) -> str:
    """The training-step column of episodes.csv: `global_step` (the runner's), else `env_steps`."""
    return "global_step" if "global_step" in df.columns else "env_steps"


def run_table(runs: Sequence[RunRecord], source: str = "eval") -> pd.DataFrame:
    """One row per run: the mean of each per-episode quantity over its final episodes."""
    rows = []
    for r in runs:
        ep = final_episodes(r, source)
        row = {"env": r.env, "switcher": r.switcher, "budget": r.budget, "cost": r.cost, "setting": r.setting,
               "seed": r.seed}
        row["episodes"] = len(ep)
        for col, name in EPISODE_STATS.items():
            row[name] = (
                float(pd.to_numeric(ep[col], errors="coerce").mean())
                if col in ep.columns and len(ep)
                else math.nan
            )
        row["path"] = str(r.path)
        rows.append(row)
    return pd.DataFrame(rows)


def ci95(values: Sequence[float]) -> tuple[float, float]:
    """(mean, half-width of the 95% Student-t interval); the half-width is NaN for fewer than 2 values."""
    x = np.asarray([v for v in values if v == v], dtype=float)
    if len(x) == 0:
        return math.nan, math.nan
    if len(x) < 2:
        return float(x.mean()), math.nan
    from scipy import stats

    half = stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x))
    return float(x.mean()), float(half)


def aggregate(per_run: pd.DataFrame) -> pd.DataFrame:
    """Mean and 95% CI over seeds per (env, switcher, budget, cost); adds compute saved vs always_deepthink."""
    out = []
    keyed = per_run.assign(
        **{k: per_run[k].astype(object).where(per_run[k].notna(), None) for k in ("budget", "cost", "setting")}
    )
    for key, grp in keyed.groupby(GROUP_KEYS, dropna=False, sort=True):
        row = dict(zip(GROUP_KEYS, key, strict=True))
        row["seeds"] = int(grp["seed"].nunique()) if grp["seed"].notna().any() else len(grp)
        row["episodes"] = int(grp["episodes"].sum())
        for name in EPISODE_STATS.values():
            m, h = ci95(grp[name].tolist())
            row[name], row[f"{name}_ci95"] = m, h
        out.append(row)
    agg = pd.DataFrame(out)
    if agg.empty:
        return agg
    agg["compute_saved"] = math.nan
    for _env, grp in agg.groupby("env"):
        ref = grp[grp["switcher"] == "always_deepthink"]
        if len(ref) and ref["total_flops"].iloc[0] > 0:
            base = float(ref["total_flops"].iloc[0])
            agg.loc[grp.index, "compute_saved"] = 1.0 - grp["total_flops"] / base
    return agg


def pareto_front(x: Sequence[float], y: Sequence[float]) -> list[int]:
    """Indices of points not dominated (a point dominates if it has <= compute and >= success, one strictly)."""
    pts = list(zip(x, y, strict=True))
    front = []
    for i, (xi, yi) in enumerate(pts):
        if xi != xi or yi != yi:
            continue
        dominated = any(
            (xj <= xi and yj >= yi) and (xj < xi or yj > yi)
            for j, (xj, yj) in enumerate(pts)
            if j != i and xj == xj and yj == yj
        )
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda i: pts[i][0])


def _fmt(m: float, h: float, digits: int = 2, sci: bool = False) -> str:
    if m != m:
        return "-"
    f = (lambda v: f"{v:.{digits}e}") if sci else (lambda v: f"{v:.{digits}f}")
    return f"{f(m)} ± {f(h)}" if h == h else f(m)


def markdown_table(agg: pd.DataFrame) -> str:
    """The summary as a markdown table (mean ± 95% CI half-width over seeds)."""
    head = (
        "| env | switcher | budget | cost | setting | seeds | success | return | DEEPTHINK calls/ep | DEEPTHINK FLOPs/ep "
        "| total FLOPs/ep | device s/ep | compute saved vs always_deepthink |"
    )
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for _, r in agg.iterrows():
        saved = r.get("compute_saved", math.nan)
        lines.append(
            "| "
            + " | ".join(
                [
                    str(r["env"]),
                    str(r["switcher"]),
                    "-" if r["budget"] is None or r["budget"] != r["budget"] else f"{r['budget']:g}",
                    "-" if r["cost"] is None or r["cost"] != r["cost"] else f"{r['cost']:g}",
                    r["setting"] if isinstance(r.get("setting"), str) else "-",
                    str(r["seeds"]),
                    _fmt(r["success"], r["success_ci95"]),
                    _fmt(r["return"], r["return_ci95"]),
                    _fmt(r["deepthink_calls"], r["deepthink_calls_ci95"], 1),
                    _fmt(r["deepthink_flops"], r["deepthink_flops_ci95"], 2, sci=True),
                    _fmt(r["total_flops"], r["total_flops_ci95"], 2, sci=True),
                    _fmt(r["device_seconds"], r["device_seconds_ci95"], 3),
                    "-" if saved != saved else f"{100 * saved:.0f}%",
                ]
            )
            + " |"
        )
    return "\n".join(lines) + "\n"


def _label(r) -> str:
    return _with_setting(run_name_from_parts(r["switcher"], r["budget"], r["cost"]), r.get("setting"))


def _with_setting(name: str, setting: Any) -> str:
    return f"{name} ({setting})" if isinstance(setting, str) else name


METRICS_Y = {"success": "success rate", "return": "mean episode return"}


def plot_pareto(agg: pd.DataFrame, path: Path, metric: str = "success") -> Path:
    """`metric` (success or return) vs DEEPTHINK FLOPs per episode, one point per switcher/budget/cost, Pareto front."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    envs = list(agg["env"].unique())
    fig, axes = plt.subplots(1, len(envs), figsize=(8.5 * len(envs), 4.8), squeeze=False)
    for ax, env in zip(axes[0], envs, strict=True):
        g = agg[agg["env"] == env].reset_index(drop=True)
        x, y = g["deepthink_flops"].to_numpy(float), g[metric].to_numpy(float)
        xerr = np.nan_to_num(g["deepthink_flops_ci95"].to_numpy(float))
        yerr = np.nan_to_num(g[f"{metric}_ci95"].to_numpy(float))
        for i, r in g.iterrows():
            color, marker = _style(plt, i)
            ax.errorbar(x[i], y[i], xerr=xerr[i], yerr=yerr[i], fmt=marker, color=color, capsize=3, label=_label(r))
        front = pareto_front(x, y)
        if len(front) > 1:
            ax.step(x[front], y[front], where="post", color="k", ls="--", lw=1, label="Pareto front")
        ax.set_xlabel("DEEPTHINK FLOPs per episode (final evaluation)")
        ax.set_ylabel(METRICS_Y[metric])
        ax.set_title(f"{env}: {metric} vs DEEPTHINK compute")
        if np.nanmax(x, initial=0) > 0 and np.nanmin(x[x > 0], initial=np.inf) < np.nanmax(x) / 100:
            ax.set_xscale("symlog", linthresh=float(np.nanmin(x[x > 0])))
        if metric == "success":
            ax.set_ylim(-0.05, 1.05)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _style(plt: Any, i: int) -> tuple[Any, str]:
    """A distinct (color, marker) for the i-th series: 20 colors, then a new marker (the default cycle has 10)."""
    return plt.get_cmap("tab20")(i % 20), "osD^v<>ph*"[i // 20 % 10]


def compute_curves(runs: Sequence[RunRecord]) -> pd.DataFrame:
    """Cumulative compute vs env steps per run (from metrics.csv, else the cumsum of training episodes)."""
    rows = []
    for r in runs:
        m = r.metrics
        if m is not None and "compute/total_flops" in m.columns and "global_step" in m.columns:
            d = m[["global_step", "compute/total_flops"]].dropna()
            secs = (
                m["compute/gpu_seconds"]
                if "compute/gpu_seconds" in m.columns
                else pd.Series(np.nan, index=m.index)
            )
            d = d.assign(seconds=secs.loc[d.index]).rename(
                columns={"global_step": "env_steps", "compute/total_flops": "flops"}
            )
        else:
            ep = r.episodes
            ep = ep[ep["phase"] == "train"] if "phase" in ep.columns else ep
            d = pd.DataFrame(
                {
                    "env_steps": ep[_step_column(ep)],
                    "flops": ep["total_flops"].cumsum(),
                    "seconds": ep["device_seconds"].cumsum() if "device_seconds" in ep.columns else np.nan,
                }
            )
        d = d.assign(env=r.env, label=r.label, seed=r.seed)
        rows.append(d)
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()


def plot_compute_curves(curves: pd.DataFrame, path: Path) -> Path:
    """Cumulative FLOPs (left) and device seconds (right) against env steps, mean over seeds per switcher."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(14, 4.5))
    for k, ((env, label), g) in enumerate(curves.groupby(["env", "label"], sort=True)):
        color, _ = _style(plt, k)
        grid = np.sort(g["env_steps"].unique())
        for ax, col in zip(axes, ("flops", "seconds"), strict=True):
            per_seed = []
            for _, s in g.groupby("seed", dropna=False):
                s = s.sort_values("env_steps")
                if s[col].notna().any():
                    per_seed.append(np.interp(grid, s["env_steps"], s[col].ffill().fillna(0)))
            if per_seed:
                name = label if curves["env"].nunique() == 1 else f"{env} {label}"
                ax.plot(grid, np.mean(per_seed, axis=0), label=name, color=color, ls=("-", "--", ":")[k // 20 % 3])
    axes[0].set_ylabel("cumulative FLOPs (QUICK + DEEPTHINK)")
    axes[1].set_ylabel("cumulative device seconds (QUICK + DEEPTHINK)")
    for ax in axes:
        ax.set_xlabel("env steps (training)")
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.suptitle("Compute used against env steps, per switcher (mean over seeds)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_budget(agg: pd.DataFrame, path: Path, metric: str = "success") -> Path | None:
    """`metric` against budget for switchers run at several budgets (None when there are none)."""
    b = agg[agg["budget"].notna()]
    if b.empty or b.groupby(["env", "switcher"])["budget"].nunique().max() < 2:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for (env, sw), g in b.groupby(["env", "switcher"]):
        g = g.sort_values("budget")
        ax.errorbar(
            g["budget"].astype(float),
            g[metric],
            yerr=np.nan_to_num(g[f"{metric}_ci95"]),
            marker="o",
            capsize=3,
            label=f"{env} {sw}",
        )
    ax.set_xscale("log", base=2)
    ax.set_xlabel("DEEPTHINK budget (calls per episode)")
    ax.set_ylabel(METRICS_Y[metric])
    if metric == "success":
        ax.set_ylim(-0.05, 1.05)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def make_report(root: str | Path, out: str | Path | None = None, source: str = "eval",
                metric: str = "success") -> dict[str, Path]:
    """Build the report for every run under `root`; returns the paths written.

    `metric` is the figures' y axis: success, or return for envs scored in steps (ScienceWorld: score gained / 100).
    """
    if metric not in METRICS_Y:
        raise ValueError(f"londi-report: metric must be one of {', '.join(METRICS_Y)}, not {metric!r}")
    root = Path(root)
    run_dirs = find_runs(root)
    if not run_dirs:
        raise FileNotFoundError(
            f"londi-report: no {EPISODES} under {root}; pass a londi-train run or multirun dir"
        )
    out = Path(out) if out else root / "report"
    out.mkdir(parents=True, exist_ok=True)
    runs = [load_run(d) for d in run_dirs]
    per_run = run_table(runs, source)
    agg = aggregate(per_run)
    paths = {"runs": out / "runs.csv", "summary": out / "summary.csv", "table": out / "report.md"}
    per_run.to_csv(paths["runs"], index=False)
    agg.to_csv(paths["summary"], index=False)
    paths["pareto"] = plot_pareto(agg, out / "pareto.png", metric)
    curves = compute_curves(runs)
    if not curves.empty:
        paths["compute_curve"] = plot_compute_curves(curves, out / "compute_curve.png")
    budget = plot_budget(agg, out / "budget.png", metric)
    if budget is not None:
        paths["budget"] = budget
    simulated = sorted({s for r in runs for s in r.simulated})
    note = (
        f"Simulated cost: {', '.join(simulated)} is the env's expert charged the FLOPs and device seconds of a "
        "model of that size (londi.lm.baselines.ExpertPolicy), not a model that ran.\n\n"
        if simulated
        else ""
    )
    figs = "".join(f"![{k}]({p.name})\n" for k, p in paths.items() if p.suffix == ".png")
    paths["table"].write_text(
        f"# londi report: {root}\n\n{len(runs)} runs; success and costs per episode over the "
        f"{'londi-evaluate episodes' if source == 'evaluate' else 'final evaluation'}, mean ± 95% CI over seeds.\n"
        f"Made by `londi-report dir={root}`.\n\n" + note + markdown_table(agg) + "\n" + figs
    )
    return paths


def main(argv: Sequence[str] | None = None) -> None:
    """`londi-report dir=<run or multirun dir> [out=<dir>] [source=eval|evaluate] [metric=success|return]`."""
    args = OmegaConf.from_cli(list(sys.argv[1:] if argv is None else argv))
    unknown = set(args.keys()) - {"dir", "out", "source", "metric"}
    if unknown or "dir" not in args:
        raise SystemExit(
            f"usage: londi-report dir=<run or multirun dir> [out=DIR] [source=eval|evaluate] [metric=success|return]"
            f"{' (unknown keys: ' + ', '.join(sorted(unknown)) + ')' if unknown else ''}"
        )
    source = str(args.get("source", "eval"))
    if source not in ("eval", "evaluate"):
        raise SystemExit(f"londi-report: source must be eval or evaluate, not {source!r}")
    metric = str(args.get("metric", "success"))
    if metric not in METRICS_Y:
        raise SystemExit(f"londi-report: metric must be success or return, not {metric!r}")
    paths = make_report(args.dir, args.get("out"), source, metric)
    print(paths["table"].read_text())
    for k, p in paths.items():
        print(f"{k:>14}: {p}")


if __name__ == "__main__":
    main()
