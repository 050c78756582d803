"""The Python run API: train a switcher, evaluate it on seeded episodes, write the run dir, checkpoint, resume.

    from londi import build
    from londi.runner import Runner
    parts = build.components(["switcher=londi", "total_steps=5000"])
    result = Runner(parts.env_fn, parts.quick, parts.deepthink, parts.switcher, "outputs/my_run",
                    encoder=parts.encoder, seed=0, total_steps=5000, eval_episodes=50, eval_every=1000,
                    checkpoint_every=1000).run()

A `Runner` is one training run in one run dir. `run()` says what a run does: `resume()` from the newest
readable checkpoint, then alternately `train_chunk()` (the switcher learns for some env steps),
`evaluate()` (seeded evaluation episodes, training RNG untouched) and `checkpoint()`, until `total_steps`.
The run dir receives:
- `episodes.csv`: one row per finished episode (`londi.metrics.EPISODE_COLUMNS`);
- `metrics.csv`: every `log_every` training steps the training metrics (`londi.metrics.TRAIN_KEYS` and the
  switcher's), and after each evaluation the `eval/*` metrics (same file, blank where n/a);
- `checkpoints/step_N/` (the newest two, verified by checksum, see `londi.checkpoints`) and `switcher/`
  (final weights, read by `londi-evaluate`); `run.json` (settings and `status`: running | finished | failed).
Loggers (`RunLogger`, e.g. W&B, the progress bar) get the same rows behind one `MultiLogger`;
`callbacks` are called as `fn(step, metrics)` after each metrics row.

Resume: a new `Runner` on the same run dir with the same arguments continues from the newest checkpoint
(switcher weights, optimiser, replay buffer, lambda, counters, RNG states, meters, the mid-episode env
state, and the CSV files truncated to the checkpoint), so a killed run ends with the same metrics as an
uninterrupted one (CPU, same seed; timing columns aside). A finished run returns its stored result.
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from londi.checkpoints import CheckpointError, CheckpointStore, read_json_record, write_text_atomic
from londi.lm.heldout import check_unseen, seen_ranges
from londi.lm.policy import LMPolicy
from londi.loggers.base import CSVLogger, MultiLogger, RunLogger
from londi.metrics import EVAL_KEYS, TRAIN_KEYS, MetricsTracker, episode_row, summarize
from londi.switch.base import Switcher
from londi.switch.encoders import Encoder, NullEncoder
from londi.switch.env import SwitchingEnv
from londi.switch.vec import SwitchingVecEnv

log = logging.getLogger(__name__)

EnvFn = Callable[[], gym.Env]
Callback = Callable[[int, Mapping[str, float]], None]
STATE_FILE = "runner.json"
RUN_FILE = "run.json"
STATE_VERSION = 1


@dataclass
class RunResult:
    """What a run produced: its dir, the final evaluation and every periodic one (`step` included)."""

    run_dir: str
    total_steps: int
    final_eval: dict[str, float]
    evals: list[dict[str, float]] = field(default_factory=list)
    resumed_from: int | None = None


# ------------------------------------------------------------------------------------------------ RNG state
def rng_state() -> dict[str, Any]:
    """Python, numpy and torch RNG states as plain JSON."""
    py = random.getstate()
    np_state = np.random.get_state()
    return {
        "python": [py[0], list(py[1]), py[2]],
        "numpy": [np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]), float(np_state[4])],
        "torch": torch.get_rng_state().tolist(),
    }


def set_rng_state(state: Mapping[str, Any]) -> None:
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(torch.tensor(state["torch"], dtype=torch.uint8))


SEED_BLOCK = 10_000_000
"""Episode seeds of run seed s lie in [s * SEED_BLOCK, (s + 1) * SEED_BLOCK): training episodes from s * SEED_BLOCK,
evaluation from there + EVAL_SEED_OFFSET, `londi-evaluate split=test` from there + its TEST_SEED_OFFSET. Runs
with different seeds never play the same episode, so seeds are independent replicates (with seeds s, s+1, ...
seed 1 replayed seed 0's episodes shifted by one, and a fixed switcher's "3 seeds" were one set of episodes)."""
EVAL_SEED_OFFSET = 1_000_000


def episode_seed_base(seed: int, offset: int = 0) -> int:
    """The first episode seed of run seed `seed`'s stream at `offset` (0 training, EVAL_SEED_OFFSET, ...)."""
    if not 0 <= offset < SEED_BLOCK:
        raise ValueError(f"episode seed offset must be in [0, {SEED_BLOCK}), got {offset}")
    return int(seed) * SEED_BLOCK + int(offset)


def _env_id(vec: SwitchingVecEnv) -> str | None:
    spec = getattr(vec.envs[0].text_env, "spec", None)
    return getattr(spec, "id", None)


def _check_evaluation_unseen(policies: Sequence[LMPolicy], vec: SwitchingVecEnv, first: int, count: int) -> None:
    """No evaluation on a model's distillation episodes: reset seeds first..first+count-1 of `vec`'s env."""
    env_id = _env_id(vec)
    if env_id is not None and count:
        check_unseen(policies, env_id, first, count, "evaluation")


def _warn_training_seen(policies: Sequence[LMPolicy], vec: SwitchingVecEnv, seed: int) -> None:
    """A switcher training on a model's distillation episodes is said (a warning), not refused."""
    env_id = _env_id(vec)
    train = episode_seed_base(seed)
    for line in seen_ranges(policies, env_id, train, train + EVAL_SEED_OFFSET) if env_id is not None else ():
        log.warning("run seed %d's training episodes start at reset seed %d: %s, so the switcher partly trains "
                    "on episodes where that model acts as on its own training data (the evaluation does not)",
                    seed, train, line)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# ------------------------------------------------------------------------------------------------ helpers
def make_switching_env(env_fn: EnvFn, quick: LMPolicy, deepthink: LMPolicy, switcher: Switcher, encoder: Encoder,
                       seed: int, train: bool, n_envs: int = 1, history_steps: int = 2) -> SwitchingVecEnv:
    """The `n_envs` switching envs a switcher trains (train=True) or is evaluated (train=False) in.

    A switcher that never reads the encoded state gets a `NullEncoder`, so it pays for no QUICK-first call
    that only the encoder wanted.
    """
    if n_envs < 1:
        raise ValueError(f"n_envs must be >= 1, got {n_envs}")
    if not switcher.reads_obs:
        encoder = NullEncoder()
    envs = [SwitchingEnv(env_fn(), quick, deepthink, encoder=encoder, history_steps=history_steps,
                         **switcher.env_options(train)) for _ in range(n_envs)]
    return SwitchingVecEnv(envs, seed=seed)


def run_episodes(env: SwitchingVecEnv, switcher: Switcher, episodes: int, seed: int) -> list[dict[str, Any]]:
    """Play the episodes of seeds seed .. seed+episodes-1 with `switcher.decide`, spread over the envs of
    `env` (env i plays seed+i, seed+i+N, ...); their summaries in seed order."""
    n = env.num_envs
    share = [len(range(i, episodes, n)) for i in range(n)]
    env.rebase(seed)
    env.paused = {i for i in range(n) if share[i] == 0}
    out: list[dict[str, Any]] = []
    try:
        env.reset()
        while len(env.paused) < n:
            obs, ctxs = env.current_obs(), env.contexts()
            decisions = np.array([int(switcher.decide(o, c)) if i not in env.paused else 0
                                  for i, (o, c) in enumerate(zip(obs, ctxs, strict=True))])
            _, _, dones, infos = env.step(decisions)
            for i in np.flatnonzero(dones):
                out.append(infos[i]["switch"]["episode"])
                share[i] -= 1
                if share[i] == 0:
                    env.paused.add(int(i))
    finally:
        env.paused = set()
    return sorted(out, key=lambda e: e["episode_seed"])


class RunFiles:
    """The run dir's CSV files (truncatable to a checkpoint) and `run.json` (settings + status)."""

    def __init__(self, run_dir: Path):
        self.dir = run_dir
        self.csv = CSVLogger(run_dir)

    @property
    def paths(self) -> tuple[Path, Path]:
        return self.csv.metrics_path, self.csv.episodes_path

    def sizes(self) -> dict[str, int]:
        return {p.name: (p.stat().st_size if p.exists() else 0) for p in self.paths}

    def truncate(self, sizes: Mapping[str, int]) -> None:
        """Cut the CSVs back to `sizes` (a checkpoint's), or empty them ({}) when starting from scratch."""
        for p in self.paths:
            if p.exists():
                with p.open("r+b") as f:
                    f.truncate(int(sizes.get(p.name, 0)))

    def read_run(self) -> dict[str, Any]:
        """run.json ({} before the first write); an unreadable one is an error, since rewriting it from {}
        would drop the run's evaluation seed and the record of its resumes."""
        return read_json_record(self.dir / RUN_FILE, "restore it, or delete it to resume with a new record of the "
                                "run's settings and resumes", CheckpointError)

    def write_run(self, **fields: Any) -> None:
        data = {**self.read_run(), **fields}
        write_text_atomic(self.dir / RUN_FILE, json.dumps(data, indent=2, default=str))


# ------------------------------------------------------------------------------------------------ the runner
class Runner:
    """One training run of `switcher` in `run_dir` (see the module doc).

    `eval_every`/`checkpoint_every` default to total_steps // 5 (0: only at the end); `log_every` to
    total_steps // 50. Training
    episodes use seeds b, b+1, ... with b = `episode_seed_base(seed)`; evaluations always replay seeds
    b+eval_seed_offset+0..N-1 (`SEED_BLOCK`: runs with different seeds share no episode).
    `stop_after_steps` stops (after checkpointing) once that many steps are done: a deterministic "kill"
    for tests and for splitting a run over several jobs.
    """

    def __init__(
        self,
        env_fn: EnvFn,
        quick: LMPolicy,
        deepthink: LMPolicy,
        switcher: Switcher,
        run_dir: str | Path,
        *,
        encoder: Encoder,
        seed: int,
        total_steps: int,
        eval_episodes: int,
        eval_every: int | None = None,
        checkpoint_every: int | None = None,
        log_every: int | None = None,
        n_envs: int = 1,
        loggers: Sequence[RunLogger] = (),
        callbacks: Sequence[Callback] = (),
        history_steps: int = 2,
        eval_seed_offset: int = EVAL_SEED_OFFSET,
        window: int = 20,
        keep_checkpoints: int = 2,
        stop_after_steps: int | None = None,
    ):
        if total_steps <= 0:
            raise ValueError(f"total_steps must be > 0 env steps, got {total_steps}")
        if eval_episodes < 0:
            raise ValueError(f"eval_episodes must be >= 0, got {eval_episodes}")
        self.quick, self.deepthink, self.switcher = quick, deepthink, switcher
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.seed, self.total_steps, self.eval_episodes = int(seed), int(total_steps), int(eval_episodes)
        # None: a fifth of the run; 0: only at the end
        self.eval_every = total_steps if eval_every == 0 else (eval_every or max(1, total_steps // 5))
        self.checkpoint_every = total_steps if checkpoint_every == 0 else (checkpoint_every or self.eval_every)
        self.log_every = log_every or max(1, total_steps // 50)
        self.eval_seed = episode_seed_base(self.seed, eval_seed_offset)
        self.stop_after_steps = stop_after_steps
        self.callbacks = list(callbacks)

        self.n_envs = int(n_envs)
        seed_everything(self.seed)
        self.train_env = make_switching_env(env_fn, quick, deepthink, switcher, encoder, episode_seed_base(self.seed),
                                            True, self.n_envs, history_steps)
        self.eval_env = make_switching_env(env_fn, quick, deepthink, switcher, encoder, self.eval_seed, False,
                                           max(1, min(self.n_envs, self.eval_episodes)), history_steps)
        _check_evaluation_unseen((quick, deepthink), self.eval_env, self.eval_seed, self.eval_episodes)
        _warn_training_seen((quick, deepthink), self.train_env, self.seed)
        switcher.setup(self.train_env, self.seed, self.total_steps)
        self.files = RunFiles(self.run_dir)
        self.logger = MultiLogger(list(loggers))
        self.store = CheckpointStore(self.run_dir / "checkpoints", keep=keep_checkpoints)
        self.tracker = MetricsTracker(window)
        self.evals: list[dict[str, float]] = []
        self.eval_episode_count = 0
        self.resumed_from: int | None = None
        self._csv_keys: list[str] | None = None
        self._t_start = time.perf_counter()
        self._steps_at_start = 0

    # -- what a run does --------------------------------------------------------------------------------
    def run(self) -> RunResult:
        """Resume, then train chunk by chunk with evaluations and checkpoints in between; the final result."""
        try:
            stored = self.resume()
        except BaseException:
            self.files.csv.close()
            self.logger.close(failed=True)  # every logger opened for this run ends (a W&B run is finished)
            raise
        if stored is not None:  # a finished run: nothing to train, but its loggers were opened and must end
            self.files.csv.close()
            self.logger.close(failed=False)
            return stored
        self.files.write_run(status="running", **self.settings())
        failed = True
        try:
            while self.tracker.steps < self.total_steps:
                self.train_chunk(self._next_chunk())
                if self.tracker.steps >= self.total_steps:
                    break
                if self._evaluation_due():
                    self.evals.append(self.evaluate())
                self.checkpoint()
                if self.stop_after_steps is not None and self.tracker.steps >= self.stop_after_steps:
                    failed = False
                    self.files.write_run(status="stopped", step=self.tracker.steps)
                    return self.result()
            if not self.evals or self.evals[-1]["step"] != self.tracker.steps:
                self.evals.append(self.evaluate())
            result = self.result()
            self.switcher.save(self.run_dir / "switcher")
            self.checkpoint(finished=True, result=result)
            self.files.write_run(status="finished", step=self.tracker.steps)
            failed = False
            return result
        finally:
            if failed:
                self.files.write_run(status="failed", step=self.tracker.steps)
            self.files.csv.close()
            self.logger.close(failed=failed)

    def settings(self) -> dict[str, Any]:
        return {"switcher": self.switcher.name, "seed": self.seed, "total_steps": self.total_steps,
                "eval_episodes": self.eval_episodes, "eval_every": self.eval_every, "eval_seed": self.eval_seed,
                "n_envs": self.n_envs, "quick": self.quick.name, "deepthink": self.deepthink.name}

    def resume(self) -> RunResult | None:
        """Load the newest readable checkpoint (None if there is none: a fresh start empties the CSVs).

        Returns the stored result when that checkpoint marks the run finished.
        """
        loaded = self.store.load(self._read_checkpoint)
        if loaded is None:
            self.files.truncate({})  # rows of a run killed before its first checkpoint
            return None
        state, folder = loaded
        if state["finished"]:
            msg = f"run already finished at step {state['tracker']['steps']} ({self.run_dir})"
            log.info(msg)
            print(f"londi: {msg}")
            return RunResult(**state["result"])
        self.resumed_from = self.tracker.steps
        self._steps_at_start = self.tracker.steps
        self.logger.on_resume(self.files.csv.episodes_path)  # loggers that keep rows restart from the cut CSV
        run_info = self.files.read_run()
        recorded = int(run_info.get("eval_seed", self.eval_seed))  # a run evaluates on one set of episodes
        if recorded != self.eval_seed:  # an older run's episodes: they too must be none of a model's training ones
            self.eval_seed = recorded
            _check_evaluation_unseen((self.quick, self.deepthink), self.eval_env, recorded, self.eval_episodes)
        resumes = run_info.get("resumes", [])
        self.files.write_run(resumes=[*resumes, {"step": self.tracker.steps, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                                                 "checkpoint": folder.name}])
        msg = f"resumed from step {self.tracker.steps} ({folder})"
        log.info(msg)
        print(f"londi: {msg}")
        return None

    def _read_checkpoint(self, folder: Path) -> dict[str, Any]:
        state = json.loads((folder / STATE_FILE).read_text())
        if state.get("version") != STATE_VERSION:
            raise CheckpointError(f"{folder / STATE_FILE} has version {state.get('version')}, not {STATE_VERSION}")
        if state["finished"]:
            return state
        self.files.truncate(state["csv_sizes"])
        self.train_env.load_state_dict(state["env"])
        self.switcher.load(folder / "switcher")
        self.tracker.load_state_dict(state["tracker"])
        self.quick.meter.load_state_dict(state["meters"]["quick"])
        self.deepthink.meter.load_state_dict(state["meters"]["deepthink"])
        self.evals, self.eval_episode_count = state["evals"], state["eval_episode_count"]
        set_rng_state(state["rng"])
        return state

    def train_chunk(self, steps: int) -> None:
        """Let the switcher learn for `steps` env steps (metrics and episode rows logged along the way)."""
        self.switcher.learn(self.train_env, steps, self._on_step)

    def evaluate(self) -> dict[str, float]:
        """Seeded evaluation episodes (the same seeds every time); the training RNG is left untouched."""
        rng = rng_state()
        eps = run_episodes(self.eval_env, self.switcher, self.eval_episodes, self.eval_seed)
        set_rng_state(rng)
        for ep in eps:
            self.eval_episode_count += 1
            self._log_episode(episode_row("eval", self.eval_episode_count, self.tracker.steps, ep))
        summary = summarize(eps)
        self._emit(self.tracker.steps, summary)
        return {"step": float(self.tracker.steps), **summary}

    def checkpoint(self, finished: bool = False, result: RunResult | None = None) -> Path:
        """Write the full training state (see the module doc) as `checkpoints/step_<N>/`."""

        def write(path: Path) -> None:
            self.switcher.save(path / "switcher")
            state = {
                "version": STATE_VERSION, "env": self.train_env.state_dict(), "tracker": self.tracker.state_dict(),
                "evals": self.evals, "eval_episode_count": self.eval_episode_count, "rng": rng_state(),
                "csv_sizes": self.files.sizes(),
                "meters": {"quick": self.quick.meter.state_dict(), "deepthink": self.deepthink.meter.state_dict()},
                "finished": finished, "result": asdict(result) if result is not None else None,
            }
            (path / STATE_FILE).write_text(json.dumps(state))

        folder = self.store.save(self.tracker.steps, write)
        self.files.write_run(step=self.tracker.steps)
        return folder

    def result(self) -> RunResult:
        return RunResult(str(self.run_dir), self.tracker.steps, self.evals[-1] if self.evals else {}, list(self.evals),
                         self.resumed_from)

    # -- internals --------------------------------------------------------------------------------------
    def _next_chunk(self) -> int:
        """Steps to the next evaluation, checkpoint, stop or the end, rounded up to the switcher's quantum
        (a whole number of vector steps: `n_envs` env steps each)."""
        s = self.tracker.steps
        nxt = min((s // self.eval_every + 1) * self.eval_every, (s // self.checkpoint_every + 1) * self.checkpoint_every,
                  self.total_steps)
        if self.stop_after_steps is not None:
            nxt = min(nxt, max(self.stop_after_steps, s + 1))
        quantum = max(1, int(self.switcher.step_quantum))
        quantum = -(-quantum // self.n_envs) * self.n_envs
        return -(-max(1, nxt - s) // quantum) * quantum

    def _evaluation_due(self) -> bool:
        last = int(self.evals[-1]["step"]) // self.eval_every if self.evals else 0
        return self.tracker.steps // self.eval_every > last

    def _on_step(self, info: Mapping[str, Any]) -> None:
        self.tracker.on_step(info)
        for row in self.tracker.pending_rows:
            self._log_episode(row)
        self.tracker.pending_rows.clear()
        if self.tracker.steps % self.log_every == 0:
            sps = (self.tracker.steps - self._steps_at_start) / max(1e-9, time.perf_counter() - self._t_start)
            metrics = self.tracker.metrics(self.train_env.cost, sps)
            metrics.update(self.switcher.metrics())
            self._emit(self.tracker.steps, metrics)

    def _log_episode(self, row: Mapping[str, Any]) -> None:
        self.files.csv.log_episode(row)
        self.logger.log_episode(row)

    def _emit(self, step: int, metrics: Mapping[str, float]) -> None:
        if self._csv_keys is None:
            extra = sorted(k for k in self.switcher.metrics() if k not in TRAIN_KEYS)
            self._csv_keys = [*TRAIN_KEYS, *extra, *EVAL_KEYS]
        late = sorted(set(metrics) - set(self._csv_keys))
        if late:  # metrics.csv's columns are fixed by its first row: a later key would reach W&B only
            raise RuntimeError(f"metrics {late} appeared after metrics.csv's columns were fixed: a switcher must "
                               "return every key of `metrics()` from its first call (NaN until it has a value)")
        self.files.csv.log_metrics(step, {k: metrics.get(k, "") for k in self._csv_keys})
        present = {k: v for k, v in metrics.items() if not (isinstance(v, float) and math.isnan(v))}
        self.logger.log_metrics(step, present)
        for cb in self.callbacks:
            cb(step, metrics)


def run(env_fn: EnvFn, quick: LMPolicy, deepthink: LMPolicy, switcher: Switcher, run_dir: str | Path,
        **kwargs: Any) -> RunResult:
    """`Runner(...).run()` in one call (the keyword arguments are `Runner`'s)."""
    return Runner(env_fn, quick, deepthink, switcher, run_dir, **kwargs).run()


def trained_step(run_dir: str | Path) -> int:
    """The training step of a run's saved switcher (from run.json; 0 if the run never trained)."""
    return int(RunFiles(Path(run_dir)).read_run().get("step", 0) or 0)


def evaluate(
    run_dir: str | Path,
    env_fn: EnvFn,
    quick: LMPolicy,
    deepthink: LMPolicy,
    switcher: Switcher,
    *,
    encoder: Encoder,
    episodes: int,
    seed: int | None = None,
    n_envs: int = 1,
    history_steps: int = 2,
) -> dict[str, Any]:
    """Reload a run dir's switcher (final weights, else the newest readable checkpoint) and evaluate it.

    `switcher` must be built like the trained one (the run's config). Seeds default to the run's evaluation
    seeds. Returns the eval/* summary plus the per-episode rows (global_step = the switcher's training step).
    """
    run_dir = Path(run_dir)
    meta = RunFiles(run_dir).read_run()
    eval_seed = seed if seed is not None else int(meta.get("eval_seed", EVAL_SEED_OFFSET))
    env = make_switching_env(env_fn, quick, deepthink, switcher, encoder, eval_seed, False,
                             max(1, min(n_envs, episodes)), history_steps)
    _check_evaluation_unseen((quick, deepthink), env, eval_seed, episodes)
    switcher.setup(env, int(meta.get("seed", 0)), meta.get("total_steps"))
    if switcher.learns or (run_dir / "switcher").exists():
        src = run_dir / "switcher"
        if not src.exists():
            loaded = CheckpointStore(run_dir / "checkpoints").load(lambda folder: folder)
            if loaded is None:
                raise FileNotFoundError(f"{run_dir} holds no trained switcher (no switcher/ and no checkpoints/)")
            src = loaded[1] / "switcher"
        switcher.load(src)
    eps = run_episodes(env, switcher, episodes, eval_seed)
    step = trained_step(run_dir)
    return {**summarize(eps), "episodes": [episode_row("eval", i + 1, step, e) for i, e in enumerate(eps)]}
