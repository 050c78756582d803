"""The Python run API: train a switcher, evaluate it on seeded episodes, write the run dir, checkpoint, resume.

    from londi.runner import run, evaluate
    result = run(env_fn, quick, deepthink, switcher, run_dir, seed=0, total_steps=20_000, eval_episodes=50,
                 eval_every=5_000, encoder=None, loggers=[wandb_logger], callbacks=[fn])
    scores = evaluate(run_dir, env_fn, quick, deepthink, switcher, episodes=100, seed=0)

`env_fn()` builds a fresh text env (one for training, one for evaluation); `quick`/`deepthink` are
`LMPolicy`s; `switcher` is any `londi.switch.Switcher` (its `env_options` set cost/budget of the
`SwitchingEnv`). The run dir receives:
- `episodes.csv`: one row per finished episode (phase train|eval, episode, global_step, env_steps, return,
  success, quick_calls, deepthink_calls, deepthink_flops, total_flops, device_seconds, budget, ...);
- `metrics.csv`: every `log_every` training steps the DESIGN.md metrics (charts/*, switch/*, budget/*,
  compute/*, losses/*), and after each evaluation the `eval/*` metrics (same file, blank where n/a);
- `checkpoints/step_N/` (latest only) and `switcher/` (final weights, read by `evaluate`); `run.json`.
Extra `loggers` (`RunLogger`, e.g. W&B) get the same rows with only the keys that apply;
`callbacks` are called as `fn(step, metrics)` after each metrics row.

Resume: calling `run` again with the same arguments on the same run dir continues from the latest
checkpoint (switcher weights, optimiser, replay buffer, lambda, counters, RNG states, meters, the
mid-episode env state, and the CSV files truncated to the checkpoint), so a killed run ends with the
same metrics as an uninterrupted one (CPU, same seed; timing columns aside). A finished run returns its
stored result. Evaluations run between training chunks and leave training RNG untouched.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import random
import shutil
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from londi.lm.policy import LMPolicy
from londi.loggers.base import CSVLogger, RunLogger
from londi.switch.base import Switcher
from londi.switch.encoders import Encoder, HashedNgramEncoder, NullEncoder
from londi.switch.env import SwitchingEnv

EnvFn = Callable[[], gym.Env]
Callback = Callable[[int, Mapping[str, float]], None]

EPISODE_COLUMNS = (
    "phase", "episode", "global_step", "env_steps", "return", "success", "quick_calls", "deepthink_calls",
    "deepthink_flops", "total_flops", "device_seconds", "budget", "blocked", "fallbacks", "episode_seed",
)
TRAIN_KEYS = (
    "charts/episodic_return", "charts/success_rate", "charts/SPS", "switch/deepthink_frac", "switch/lambda",
    "budget/remaining", "budget/violations", "budget/blocked", "switch/fallbacks",
    *(f"compute/{m}_{k}" for m in ("quick", "deepthink") for k in ("calls", "tokens", "flops", "seconds")),
    "compute/gpu_seconds", "compute/total_flops",
)
EVAL_KEYS = ("eval/success_rate", "eval/episodic_return", "eval/deepthink_calls", "eval/quick_calls",
             "eval/deepthink_frac", "eval/total_flops", "eval/episodes")


@dataclass
class RunResult:
    """What a run produced: its dir, the final evaluation and every periodic one (`step` included)."""

    run_dir: str
    total_steps: int
    final_eval: dict[str, float]
    evals: list[dict[str, float]] = field(default_factory=list)
    resumed_from: int | None = None


class _Tracker:
    """Turns per-step `info["switch"]` records into episode rows and cumulative training metrics."""

    def __init__(self, window: int = 20):
        self.steps = 0
        self.episodes = 0
        self.window = window
        self.recent: deque[tuple[float, float]] = deque(maxlen=window)
        self.totals = {f"{m}_{k}": 0.0 for m in ("quick", "deepthink") for k in ("calls", "tokens", "flops", "seconds")}
        self.violations = self.blocked = self.fallbacks = 0
        self.interval_steps = self.interval_deepthink = 0
        self.budget_remaining = float("nan")
        self.pending_rows: list[dict[str, Any]] = []

    def on_step(self, info: Mapping[str, Any]) -> None:
        sw = info["switch"]
        self.steps += 1
        self.interval_steps += 1
        self.interval_deepthink += sw["decision"]
        self.blocked += int(sw["blocked"])
        self.fallbacks += int(sw["fallback"])
        for m in ("quick", "deepthink"):
            u = sw["usage"][m]
            self.totals[f"{m}_calls"] += u["calls"]
            self.totals[f"{m}_tokens"] += u["tokens"]
            self.totals[f"{m}_flops"] += u["flops"]
            self.totals[f"{m}_seconds"] += u["device_seconds"]
        rem = sw.get("budget_remaining")
        self.budget_remaining = float("nan") if rem is None else float(rem)
        ep = sw.get("episode")
        if ep is not None:
            self.episodes += 1
            if ep["budget"] is not None and ep["deepthink_calls"] > ep["budget"]:
                self.violations += 1
            self.recent.append((float(ep["return"]), float(ep["success"])))
            self.pending_rows.append(_episode_row("train", self.episodes, self.steps, ep))

    def metrics(self, env: SwitchingEnv, switcher: Switcher, sps: float) -> dict[str, float]:
        nan = float("nan")
        ret = float(np.mean([r for r, _ in self.recent])) if self.recent else nan
        suc = float(np.mean([s for _, s in self.recent])) if self.recent else nan
        out = {
            "charts/episodic_return": ret, "charts/success_rate": suc, "charts/SPS": sps,
            "switch/deepthink_frac": self.interval_deepthink / max(1, self.interval_steps),
            "switch/lambda": float(env.cost), "budget/remaining": self.budget_remaining,
            "budget/violations": float(self.violations), "budget/blocked": float(self.blocked),
            "switch/fallbacks": float(self.fallbacks),
            **{f"compute/{k}": float(v) for k, v in self.totals.items()},
            "compute/gpu_seconds": self.totals["quick_seconds"] + self.totals["deepthink_seconds"],
            "compute/total_flops": self.totals["quick_flops"] + self.totals["deepthink_flops"],
        }
        out.update(switcher.metrics())
        self.interval_steps = self.interval_deepthink = 0
        return out

    def state_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["recent"] = list(self.recent)
        return d

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.__dict__.update({k: v for k, v in state.items() if k != "recent"})
        self.recent = deque(state["recent"], maxlen=self.window)


def _episode_row(phase: str, episode: int, global_step: int, ep: Mapping[str, Any]) -> dict[str, Any]:
    row = {"phase": phase, "episode": episode, "global_step": global_step}
    for k in EPISODE_COLUMNS[3:]:
        row[k] = ep["budget"] if k == "budget" and ep["budget"] is None else ep.get(k)
    row["success"] = int(bool(ep["success"]))
    row["budget"] = "" if ep["budget"] is None else ep["budget"]
    return row


def _rng_state() -> dict[str, Any]:
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}


def _set_rng_state(state: Mapping[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def make_switching_env(env_fn: EnvFn, quick: LMPolicy, deepthink: LMPolicy, switcher: Switcher, encoder: Encoder,
                       seed: int, train: bool, history_steps: int = 2) -> SwitchingEnv:
    """The `SwitchingEnv` a switcher trains (train=True) or is evaluated (train=False) in.

    A switcher that never reads the encoded state gets a `NullEncoder`, so it pays for no QUICK-first call
    that only the encoder wanted.
    """
    if not switcher.reads_obs:
        encoder = NullEncoder()
    return SwitchingEnv(env_fn(), quick, deepthink, encoder=encoder, seed=seed, history_steps=history_steps,
                        **switcher.env_options(train))


def run_episodes(env: SwitchingEnv, switcher: Switcher, episodes: int, seed: int) -> list[dict[str, Any]]:
    """Play `episodes` episodes with `switcher.decide` from seed `seed` upward; return their summaries."""
    out = []
    env.reset(seed=seed)
    for _ in range(episodes):
        while True:
            obs, ctx = env.current_obs(), env.context()
            _, _, terminated, truncated, info = env.step(int(switcher.decide(obs, ctx)))
            if terminated or truncated:
                out.append(info["switch"]["episode"])
                break
        env.reset()
    return out


def summarize(episodes: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """eval/* metrics of a list of episode summaries."""
    steps = sum(e["env_steps"] for e in episodes)
    dt = sum(e["deepthink_calls"] for e in episodes)
    n = max(1, len(episodes))
    return {
        "eval/success_rate": sum(bool(e["success"]) for e in episodes) / n,
        "eval/episodic_return": sum(e["return"] for e in episodes) / n,
        "eval/deepthink_calls": dt / n,
        "eval/quick_calls": sum(e["quick_calls"] for e in episodes) / n,
        "eval/deepthink_frac": dt / max(1, steps),
        "eval/total_flops": sum(e["total_flops"] for e in episodes) / n,
        "eval/episodes": float(len(episodes)),
    }


class _RunFiles:
    """The run dir's CSVs (with truncation to a checkpoint) and checkpoint folders."""

    def __init__(self, run_dir: Path):
        self.dir = run_dir
        self.ckpt_dir = run_dir / "checkpoints"
        self.csv = CSVLogger(run_dir)

    def sizes(self) -> dict[str, int]:
        return {p.name: (p.stat().st_size if p.exists() else 0) for p in (self.csv.metrics_path, self.csv.episodes_path)}

    def truncate(self, sizes: Mapping[str, int]) -> None:
        for p in (self.csv.metrics_path, self.csv.episodes_path):
            if p.exists():
                with p.open("r+b") as f:
                    f.truncate(int(sizes.get(p.name, 0)))

    def latest(self) -> Path | None:
        pointer = self.ckpt_dir / "latest"
        if not pointer.exists():
            return None
        path = self.ckpt_dir / pointer.read_text().strip()
        return path if (path / "runner.pkl").exists() else None

    def save(self, step: int, write: Callable[[Path], None]) -> None:
        final, tmp = self.ckpt_dir / f"step_{step}", self.ckpt_dir / f"step_{step}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        write(tmp)
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        pointer_tmp = self.ckpt_dir / "latest.tmp"
        pointer_tmp.write_text(final.name)
        os.replace(pointer_tmp, self.ckpt_dir / "latest")
        for old in self.ckpt_dir.glob("step_*"):
            if old != final:
                shutil.rmtree(old, ignore_errors=True)


def run(
    env_fn: EnvFn,
    quick: LMPolicy,
    deepthink: LMPolicy,
    switcher: Switcher,
    run_dir: str | Path,
    seed: int = 0,
    total_steps: int = 10_000,
    eval_episodes: int = 20,
    eval_every: int | None = None,
    loggers: Sequence[RunLogger] = (),
    callbacks: Sequence[Callback] = (),
    encoder: Encoder | None = None,
    log_every: int | None = None,
    checkpoint_every: int | None = None,
    history_steps: int = 2,
    eval_seed_offset: int = 1_000_000,
    window: int = 20,
    stop_after_steps: int | None = None,
) -> RunResult:
    """Train `switcher` for `total_steps` env steps, evaluating and checkpointing along the way (see module doc).

    `eval_every`/`checkpoint_every` default to total_steps // 5; `log_every` to total_steps // 50. Training
    episodes use seeds seed, seed+1, ...; evaluations always replay seeds seed+eval_seed_offset+0..N-1.
    `stop_after_steps` stops (after checkpointing) once that many steps are done: a deterministic "kill"
    for tests and for splitting a run over several jobs.
    """
    if total_steps <= 0:
        raise ValueError(f"total_steps must be > 0, got {total_steps}")
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    encoder = encoder if encoder is not None else HashedNgramEncoder()
    eval_every = eval_every or max(1, total_steps // 5)
    checkpoint_every = checkpoint_every or eval_every
    log_every = log_every or max(1, total_steps // 50)
    eval_seed = seed + eval_seed_offset

    _seed_everything(seed)
    train_env = make_switching_env(env_fn, quick, deepthink, switcher, encoder, seed, True, history_steps)
    eval_env = make_switching_env(env_fn, quick, deepthink, switcher, encoder, eval_seed, False, history_steps)
    switcher.setup(train_env, seed, total_steps)
    files = _RunFiles(run_dir)
    tracker = _Tracker(window)
    evals: list[dict[str, float]] = []
    resumed_from: int | None = None
    eval_episode_count = 0
    (run_dir / "run.json").write_text(json.dumps({
        "switcher": switcher.name, "seed": seed, "total_steps": total_steps, "eval_episodes": eval_episodes,
        "eval_every": eval_every, "eval_seed": eval_seed, "quick": quick.name, "deepthink": deepthink.name,
    }, indent=2))

    ckpt = files.latest()
    if ckpt is not None:
        with (ckpt / "runner.pkl").open("rb") as f:
            state = pickle.load(f)
        if state.get("finished"):
            return RunResult(**state["result"])
        files.truncate(state["csv_sizes"])
        train_env.load_state_dict(state["env"])
        switcher.load(ckpt / "switcher")
        tracker.load_state_dict(state["tracker"])
        quick.meter.load_state_dict(state["meters"]["quick"])
        deepthink.meter.load_state_dict(state["meters"]["deepthink"])
        evals, eval_episode_count = state["evals"], state["eval_episode_count"]
        _set_rng_state(state["rng"])
        resumed_from = tracker.steps

    extra = list(loggers)
    t_start, steps_at_start = time.perf_counter(), tracker.steps
    csv_keys: list[str] | None = None

    def emit(step: int, metrics: Mapping[str, float]) -> None:
        nonlocal csv_keys
        if csv_keys is None:
            csv_keys = [*TRAIN_KEYS, *sorted(k for k in switcher.metrics() if k not in TRAIN_KEYS), *EVAL_KEYS]
        files.csv.log_metrics(step, {k: metrics.get(k, "") for k in csv_keys})
        present = {k: v for k, v in metrics.items() if not (isinstance(v, float) and math.isnan(v))}
        for lg in extra:
            lg.log_metrics(step, present)
        for cb in callbacks:
            cb(step, metrics)

    def flush_rows() -> None:
        for row in tracker.pending_rows:
            files.csv.log_episode(row)
            for lg in extra:
                lg.log_episode(row)
        tracker.pending_rows.clear()

    def on_step(info: Mapping[str, Any]) -> None:
        tracker.on_step(info)
        flush_rows()
        if tracker.steps % log_every == 0:
            sps = (tracker.steps - steps_at_start) / max(1e-9, time.perf_counter() - t_start)
            emit(tracker.steps, tracker.metrics(train_env, switcher, sps))

    def do_eval() -> dict[str, float]:
        nonlocal eval_episode_count
        rng = _rng_state()
        eps = run_episodes(eval_env, switcher, eval_episodes, eval_seed)
        _set_rng_state(rng)
        for ep in eps:
            eval_episode_count += 1
            row = _episode_row("eval", eval_episode_count, tracker.steps, ep)
            files.csv.log_episode(row)
            for lg in extra:
                lg.log_episode(row)
        summary = summarize(eps)
        emit(tracker.steps, summary)
        return {"step": float(tracker.steps), **summary}

    def checkpoint(finished: bool, result: RunResult | None = None) -> None:
        def write(path: Path) -> None:
            switcher.save(path / "switcher")
            state = {
                "env": train_env.state_dict(), "tracker": tracker.state_dict(), "evals": evals,
                "eval_episode_count": eval_episode_count, "rng": _rng_state(), "csv_sizes": files.sizes(),
                "meters": {"quick": quick.meter.state_dict(), "deepthink": deepthink.meter.state_dict()},
                "finished": finished, "result": asdict(result) if result is not None else None,
            }
            with (path / "runner.pkl").open("wb") as f:
                pickle.dump(state, f)

        files.save(tracker.steps, write)

    quantum = max(1, int(switcher.step_quantum))
    failed = True
    try:
        while tracker.steps < total_steps:
            nxt = min((tracker.steps // eval_every + 1) * eval_every, (tracker.steps // checkpoint_every + 1) * checkpoint_every,
                      total_steps)
            if stop_after_steps is not None:
                nxt = min(nxt, max(stop_after_steps, tracker.steps + 1))
            chunk = max(1, nxt - tracker.steps)
            chunk = -(-chunk // quantum) * quantum
            switcher.learn(train_env, chunk, on_step)
            if tracker.steps >= total_steps:
                break
            if tracker.steps // eval_every > (int(evals[-1]["step"]) // eval_every if evals else 0):
                evals.append(do_eval())
            checkpoint(False)
            if stop_after_steps is not None and tracker.steps >= stop_after_steps:
                failed = False
                return RunResult(str(run_dir), tracker.steps, evals[-1] if evals else {}, evals, resumed_from)
        if not evals or evals[-1]["step"] != tracker.steps:
            evals.append(do_eval())
        result = RunResult(str(run_dir), tracker.steps, evals[-1], evals, resumed_from)
        switcher.save(run_dir / "switcher")
        checkpoint(True, result)
        failed = False
        return result
    finally:
        files.csv.close()
        for lg in extra:
            lg.close(failed=failed)


def evaluate(
    run_dir: str | Path,
    env_fn: EnvFn,
    quick: LMPolicy,
    deepthink: LMPolicy,
    switcher: Switcher,
    episodes: int = 100,
    seed: int | None = None,
    encoder: Encoder | None = None,
    history_steps: int = 2,
) -> dict[str, Any]:
    """Reload a run dir's switcher (final weights, else the latest checkpoint) and evaluate it.

    `switcher` must be constructed like the trained one (same class and options: the config of the run).
    Seeds default to the run's evaluation seeds. Returns the eval/* summary plus the per-episode rows.
    """
    run_dir = Path(run_dir)
    meta = json.loads((run_dir / "run.json").read_text()) if (run_dir / "run.json").exists() else {}
    eval_seed = seed if seed is not None else int(meta.get("eval_seed", 1_000_000))
    encoder = encoder if encoder is not None else HashedNgramEncoder()
    env = make_switching_env(env_fn, quick, deepthink, switcher, encoder, eval_seed, False, history_steps)
    switcher.setup(env, int(meta.get("seed", 0)), meta.get("total_steps"))
    if switcher.learns or (run_dir / "switcher").exists():
        src = run_dir / "switcher"
        if not src.exists():
            latest = _RunFiles(run_dir).latest()
            if latest is None:
                raise FileNotFoundError(f"{run_dir} holds no trained switcher (no switcher/ and no checkpoints/latest)")
            src = latest / "switcher"
        switcher.load(src)
    eps = run_episodes(env, switcher, episodes, eval_seed)
    return {**summarize(eps), "episodes": [_episode_row("eval", i + 1, 0, e) for i, e in enumerate(eps)]}
