"""`londi-report dir=<run or multirun dir>`: tables and figures from the runs' CSVs (not from W&B).

Why from the CSVs: they are always written, with or without W&B, so a report can be rebuilt anywhere
from the run folders alone. Each run is one (env, switcher, budget, cost, seed); seeds are aggregated
into a mean and a 95% interval (see `interval`). Outputs, in `out` (default `<dir>/report`):

- `report.md`: per (env, switcher, budget/cost) the training steps, success, return, DEEPTHINK calls,
  DEEPTHINK and total FLOPs and device seconds per episode, and the compute saved against
  always_deepthink; under it how device seconds were measured, and every run left out of the table;
- `summary.csv` (the same, machine-readable) and `runs.csv` (one row per run folder, with its status);
- `pareto.png`: success (or, with `metric=return`, the mean return) vs DEEPTHINK compute per episode, one
  point per switcher/budget/cost, with the Pareto front (the points no other point beats on both);
- `compute_curve.png`: cumulative DEEPTHINK FLOPs and device seconds (the GPU-usage view), and both models'
  together, against env steps per switcher;
- `learning_curve.png`: success and DEEPTHINK calls at each periodic evaluation against training env steps,
  per switcher setting with more than one evaluation, with its data in `learning_curve.csv` and, in report.md,
  the change between each seed's last two evaluations (has the curve gone flat? see `plateau`);
- `budget.png`: success (or return) against the budget for budgeted switchers, when there are several.

Which runs count: finished ones. A run that stopped early (killed, failed, still running) would average its
early evaluation into the others' final one, so it is listed under the table with its last step instead;
`include_unfinished=true` tabulates it too (the `steps` column then shows the mix). A run's status is the
`status` in its run.json when the runner wrote one (running, finished, failed), else its latest checkpoint
(the newest checkpoint's `runner.json` says `finished: true` once the final evaluation and `switcher/`
are saved); a run folder with no checkpoint and no metrics failed before training.

Which episodes count: the final evaluation (rows with phase == "eval" at the run's last evaluation
step, `global_step`), or a run's `eval.csv` from `londi-evaluate` when `source=evaluate` (report.md says on
which split and env). A run whose final episodes had DEEPTHINK fallbacks (QUICK acted instead) or env
restarts did not measure its switcher alone: it is tabulated, flagged in bold above the table and listed
under it with the counts; summary.csv and runs.csv carry both counts.

Which runs are one row: those of one env, switcher, budget, cost and setting whose configs agree in every
key but the seed and BOOKKEEPING_KEYS (with source=evaluate, also eval.json's split and env). Runs that
differ in more are separate rows, the differing `key=value`s appended to their setting and named above the
table (`config_splits`); two runs of one row with the same seed are an error, as one replicate would count twice.
With source=evaluate a run is the config londi-evaluate measured: config.yaml with eval.json's `overrides` set
(`apply_evaluation_overrides`), so its label says the evaluated budget, cost or setting, each override that
changed a value joins its setting with the trained value, and report.md lists the overrides used.
"""

from __future__ import annotations

import copy
import json
import logging
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hydra
import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

import londi.config  # noqa: F401 - registers the schemas and resolvers before Hydra composes
from londi.checkpoints import read_json_record
from londi.config import run_app
from londi.lm.usage import DEVICE_CPU_PROCESS, DEVICE_CPU_THREAD, DEVICE_CUDA, DEVICE_REMOTE, DEVICE_SIMULATED
from londi.paths import CONFIG_DIR
from londi.rundir import RUN_INFO, SETTING_KEYS, load_run_config, run_name_from_parts

log = logging.getLogger(__name__)

EPISODES = "episodes.csv"
METRICS = "metrics.csv"
RUN_JSON = "run.json"  # written by londi.runner.run: total_steps, seeds, and `status` where the runner writes it
EVAL_CSV, EVAL_JSON = "eval.csv", "eval.json"  # written by londi-evaluate
RUN_MARKERS = (RUN_INFO, RUN_JSON, EPISODES)  # a folder holding any of these is a run folder
FINISHED, UNFINISHED, FAILED = "finished", "unfinished", "failed"
GROUP_KEYS = ["env", "switcher", "budget", "cost", "setting"]
# Config keys that do not change what a run measures: runs of one row that differ only in these are seeds of
# one setting; any other difference splits the row (`config_splits`). A key covers every key under it, and
# `seed` is matched at any depth (quick.seed, switcher.seed: `${seed}` copies), while `model_seed` is not.
BOOKKEEPING_KEYS = (
    "seed",  # the replicate itself
    "run_dir", "hydra", "logger",  # where the run wrote and how it logged (W&B names and tags, progress lines)
    "experiment_name",  # names the folder and the W&B group; what a preset changes shows in its other keys
    "threads",  # CPU device seconds depend on it: the device-seconds line warns when runs mix thread counts
    "env_processes",  # whether envs step in worker processes: wall time, not the episodes or metered seconds
    "eval_every", "checkpoint_every",  # when training paused to evaluate or save
    "eval_episodes",  # the final evaluation's size: how precise a seed's mean is, not what it estimates
)
# bookkeeping keys that still split a row when runs of one seed differ in them (threads=1,2 at one seed: two
# rows, each labelled, rather than the same-seed error)
SPLIT_IF_SEEDS_REPEAT = ("threads", "env_processes", "eval_every", "checkpoint_every", "eval_episodes",
                         "experiment_name")
EVAL_WHERE = ("split", "env_id")  # eval.json's keys that say what londi-evaluate measured on (`eval.<key>`)
# per-episode faults in episodes.csv (and eval.csv): a run whose final episodes have any is flagged in report.md
FAULTS = {
    "fallbacks": "DEEPTHINK fallbacks (DEEPTHINK failed and QUICK acted)",
    "env_restarts": "env restarts (the env's backend died; one during a step cut the episode)",
}
DEFAULT_RULES = ("quick_wrong", "pid")  # switcher.rule defaults: oracle, Lagrangian multiplier update
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
# the range each quantity's interval is clipped to (None: unbounded); return's range depends on the env
BOUNDS: dict[str, tuple[float | None, float | None]] = {
    "success": (0.0, 1.0),
    "return": (None, None),
    "deepthink_calls": (0.0, None),
    "quick_calls": (0.0, None),
    "deepthink_flops": (0.0, None),
    "total_flops": (0.0, None),
    "device_seconds": (0.0, None),
}
INTERVAL_NOTE = (
    "95% interval: Student t over the seeds' means (each seed trains its own switcher, so seeds, not "
    "episodes, are the replicates), clipped to what the quantity can be: [0, 1] for success, >= 0 for calls, "
    "FLOPs and seconds; return is not clipped (its range depends on the env); none with one seed"
)
FIGURE_NOTE = "Error bars: 95% Student-t interval over seeds, clipped to [0, 1] for success and to >= 0 for FLOPs"


@dataclass
class RunStatus:
    """Whether a run reached its end, and how far it got (steps are training env steps)."""

    status: str  # finished | unfinished | failed
    told_by: str  # what said so: "run.json", "checkpoint", or what was missing
    step: int | None = None  # the furthest step in its files (metrics, episodes, checkpoint)
    total_steps: int | None = None
    checkpoint_step: int | None = None
    eval_step: int | None = None  # the step of its last evaluation
    meters: dict[str, Any] = field(default_factory=dict)  # role -> {model: usage} at the latest checkpoint
    note: str = ""

    def describe(self) -> str:
        """One line for the list under the table: `status (told by): last step N of M; ...`."""
        of = f" of {self.total_steps}" if self.total_steps is not None else ""
        parts = [f"last step {self.step}{of}" if self.step is not None else "no step logged"]
        parts.append(f"last evaluation at step {self.eval_step}" if self.eval_step is not None else "no evaluation")
        if self.checkpoint_step is not None and self.status != FINISHED:
            parts.append(f"resumes from step {self.checkpoint_step}")
        if self.note:
            parts.append(self.note)
        return f"{self.status} ({self.told_by}): " + "; ".join(parts)


def _setting(sw: Mapping[str, Any]) -> str | None:
    """The knob of a switcher without budget or cost (see SETTING_KEYS), and its `rule` where that is not the
    default (the oracle's `quick_wrong`, the Lagrangian multiplier's `pid`): runs that differ in either are
    separate rows, never averaged together."""
    knob = next((f"{short}={float(sw[k]):g}" for k, short in SETTING_KEYS if _num(sw.get(k)) is not None), None)
    parts = [knob] if knob else []
    if sw.get("rule") not in (None, *DEFAULT_RULES):
        parts.append(f"rule={sw['rule']}")
    return ", ".join(parts) or None


@dataclass
class RunRecord:
    """One run folder: what it was (env, switcher, budget, cost, seed), its CSVs and its status."""

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
    status: RunStatus = field(default_factory=lambda: RunStatus(FINISHED, "not read"))
    threads: int | None = None  # torch CPU threads the run's device seconds were measured at
    config: dict[str, Any] = field(default_factory=dict)  # with source=evaluate: with eval.json's overrides set
    choices: dict[str, str] = field(default_factory=dict)  # the config groups it was trained with (env, switcher)
    # londi-evaluate's +override.<key>=<value>s ({} none; None: not read, or an eval.json that predates them)
    overrides: dict[str, Any] | None = None
    _evaluation: dict[str, Any] | None = field(default=None, repr=False)  # eval.json, read once (`evaluation`)

    @property
    def evaluation(self) -> dict[str, Any]:
        """The run's eval.json from londi-evaluate ({} when there is none), read at the first use."""
        if self._evaluation is None:
            self._evaluation = _read_json(self.path / EVAL_JSON)
        return self._evaluation

    @property
    def label(self) -> str:
        return _with_setting(run_name_from_parts(self.switcher, self.budget, self.cost), self.setting)


def find_runs(root: str | Path) -> list[Path]:
    """Every run folder under `root` (itself included), sorted: any folder holding run_info.json, run.json
    or episodes.csv, so a run that failed before writing an episode is found too."""
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"londi-report: {root} does not exist (pass dir=<run or multirun dir>)")
    found = set()
    for marker in RUN_MARKERS:
        for p in root.rglob(marker):
            rel = p.parent.relative_to(root).parts
            if any(part in (".hydra", "wandb", "checkpoints") or part.startswith(".") for part in rel):
                continue
            if "report" in p.parent.name:
                continue
            found.add(p.parent)
    return sorted(found)


def _read_json(path: Path) -> dict[str, Any]:
    return read_json_record(path, "restore it, or move its run folder out of the report's folder")


def _choices(run_dir: Path) -> dict[str, str]:
    choices = _read_json(run_dir / RUN_INFO).get("choices") or {}
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


def _read_csv(path: Path) -> pd.DataFrame | None:
    """A CSV, or None when the file is absent; an empty file (a run killed as it began) is an empty frame."""
    if not path.exists():
        return None
    try:
        return pd.read_csv(path)
    except pd.errors.EmptyDataError:
        return pd.DataFrame()


def _max_step(df: pd.DataFrame | None, column: str | None = None) -> int | None:
    if df is None or df.empty:
        return None
    col = column or _step_column(df)
    if col not in df.columns:
        return None
    vals = pd.to_numeric(df[col], errors="coerce").dropna()
    return int(vals.max()) if len(vals) else None


def read_checkpoint(run_dir: str | Path) -> tuple[int | None, dict | None, str]:
    """(step, runner state, problem) of a run's newest readable checkpoint (`checkpoints/step_N/runner.json`,
    verified by `londi.checkpoints`); (None, None, "") when it has none."""
    import warnings

    from londi.checkpoints import CheckpointError, CheckpointStore
    from londi.runner import STATE_FILE

    store = CheckpointStore(Path(run_dir) / "checkpoints")
    if not store.steps():
        return None, None, ""
    try:
        with warnings.catch_warnings():  # a fallback to the previous checkpoint is reported as the problem
            warnings.simplefilter("ignore")
            loaded = store.load(lambda folder: json.loads((folder / STATE_FILE).read_text()))
    except CheckpointError as e:  # an unreadable checkpoint leaves the status unknown: said, not guessed
        return store.steps()[0], None, f"checkpoints unreadable ({e})"
    if loaded is None:
        return None, None, ""
    state, folder = loaded
    step = int((state.get("tracker") or {}).get("steps", folder.name.rsplit("_", 1)[-1]))
    problem = "" if step == store.steps()[0] else f"newest checkpoint unreadable; step {step} read instead"
    return step, state, problem


def run_status(run_dir: str | Path, episodes: pd.DataFrame | None = None, metrics: pd.DataFrame | None = None,
               total_steps: Any = None) -> RunStatus:
    """Whether the run in `run_dir` finished: run.json's `status` when present, else its latest checkpoint.

    Without either, a run that logged steps is unfinished (killed, failed or still running: its files
    cannot tell which) and one that logged nothing failed before training.
    """
    run_dir = Path(run_dir)
    if episodes is None:
        episodes = _read_csv(run_dir / EPISODES)
    if metrics is None:
        metrics = _read_csv(run_dir / METRICS)
    meta = _read_json(run_dir / RUN_JSON)
    total = _num(meta.get("total_steps", total_steps))
    ckpt_step, state, problem = read_checkpoint(run_dir)
    evals = episodes[episodes["phase"] == "eval"] if episodes is not None and "phase" in episodes.columns else None
    steps = [s for s in (_max_step(metrics, "global_step"), _max_step(episodes), ckpt_step) if s is not None]
    st = RunStatus(
        UNFINISHED, "", step=max(steps) if steps else None, total_steps=None if total is None else int(total),
        checkpoint_step=ckpt_step, eval_step=_max_step(evals) if evals is not None else _max_step(episodes),
        meters=dict((state or {}).get("meters") or {}), note=problem,
    )
    explicit = meta.get("status")
    if explicit is not None:
        st.told_by = f"{RUN_JSON} status {explicit!r}"
        st.status = FINISHED if explicit == FINISHED else FAILED if explicit == FAILED else UNFINISHED
    elif state is not None and state.get("finished"):
        st.status, st.told_by = FINISHED, "final checkpoint"
    elif problem:
        st.told_by = "status unknown"
    elif ckpt_step is not None:
        st.told_by = "latest checkpoint not final"
    elif st.step is not None:
        st.told_by = "no checkpoint yet"
    else:
        st.status, st.told_by = FAILED, "no checkpoint, metrics or episodes"
    return st


def load_run(run_dir: str | Path) -> RunRecord:
    """Read one run folder (its config names the switcher, budget, cost and seed; its files its status)."""
    run_dir = Path(run_dir)
    try:
        cfg = OmegaConf.to_container(load_run_config(run_dir), resolve=False)
    except FileNotFoundError:
        cfg = {}
    choices = _choices(run_dir)
    seed = cfg.get("seed", _read_json(run_dir / RUN_JSON).get("seed"))
    episodes = _read_csv(run_dir / EPISODES)
    metrics = _read_csv(run_dir / METRICS)
    threads = cfg.get("threads", _read_json(run_dir / RUN_INFO).get("torch_threads"))
    return RunRecord(
        path=run_dir,
        **_identity(cfg, choices),
        seed=int(seed) if seed is not None else None,
        episodes=episodes if episodes is not None else pd.DataFrame(),
        metrics=metrics,
        simulated=[
            f"{m} ({cfg[m]['simulated_params']:.3g} params)"
            for m in ("quick", "deepthink")
            if isinstance(cfg.get(m), dict) and cfg[m].get("simulated_params")
        ],
        status=run_status(run_dir, episodes, metrics, cfg.get("total_steps")),
        threads=int(threads) if _num(threads) is not None else None,
        config=cfg,
        choices=dict(choices),
    )


def _identity(cfg: Mapping[str, Any], choices: Mapping[str, str]) -> dict[str, Any]:
    """A run's env, switcher, budget, cost and setting: the config group names it was made with, else what its
    config says (`_target_`, `env.id`)."""
    sw = cfg.get("switcher") or {}
    env = cfg.get("env") or {}
    return {
        "env": choices.get("env") or str(env.get("id", "env")),
        "switcher": str(choices.get("switcher") or str(sw.get("_target_", "run")).rsplit(".", 1)[-1]),
        "budget": _num(sw.get("budget")),
        "cost": _num(sw.get("cost")),
        "setting": _setting(sw),
    }


def evaluation_overrides(run: RunRecord) -> dict[str, Any] | None:
    """The `+override.<key>=<value>`s londi-evaluate applied to the run (eval.json `overrides`, {key: value});
    None when its eval.json predates their recording, so it cannot say whether there were any."""
    path = run.path / EVAL_JSON
    recorded = run.evaluation.get("overrides")
    if recorded is not None and not isinstance(recorded, Mapping):
        raise ValueError(f"{path}: `overrides` is {recorded!r}, not a {{key: value}} mapping; run "
                         f"`londi-evaluate run_dir={run.path}` again")
    return None if recorded is None else dict(recorded)


_ABSENT = object()


def _at(cfg: Mapping[str, Any], key: str) -> Any:
    node: Any = cfg
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return _ABSENT
        node = node[part]
    return node


def _put(cfg: dict[str, Any], key: str, value: Any) -> None:
    *parents, last = key.split(".")
    node = cfg
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = copy.deepcopy(value)


def apply_evaluation_overrides(run: RunRecord) -> None:
    """Make `run` the config londi-evaluate measured: its config.yaml with eval.json's overrides set, and its
    env, switcher, budget, cost and setting read from that (a londi_b-b4 run evaluated with
    `+override.switcher.budget=0` is budget 0). Each override that changed a value (bookkeeping keys aside)
    joins the setting with the trained value, `+override.switcher.budget=0 (trained 4)`.

    Why: the numbers were measured with the overrides, so a label from config.yaml alone misnames them, and
    runs evaluated with different overrides (or trained at different values) are not seeds of one row.
    """
    run.overrides = evaluation_overrides(run)
    if not run.overrides:
        return
    cfg = copy.deepcopy(run.config)
    changed: dict[str, str] = {}
    for key, value in sorted(run.overrides.items()):
        trained = _at(cfg, key)
        if trained is _ABSENT and cfg:
            raise ValueError(
                f"{run.path / EVAL_JSON} records +override.{key}, which the run's config.yaml lacks: the two do not "
                f"belong together; run `londi-evaluate run_dir={run.path}` again")
        _put(cfg, key, value)
        if _canon(trained) != _canon(value) and not _bookkeeping(key):
            changed[key] = f"+override.{key}={_show(value)} (trained {_show(trained)})"
    choices = dict(run.choices)
    if "env.id" in changed:
        choices.pop("env", None)  # the env group it was trained on names another env now
    if "switcher._target_" in changed:
        choices.pop("switcher", None)
    ident = _identity(cfg, choices)
    run.config = cfg
    run.env, run.switcher, run.budget, run.cost = ident["env"], ident["switcher"], ident["budget"], ident["cost"]
    run.setting = ", ".join(x for x in (ident["setting"], *changed.values()) if x) or None


def overrides_text(overrides: Mapping[str, Any] | None) -> str:
    """`key=value key=value` (runs.csv's and summary.csv's `eval_overrides`): `none`, or `unrecorded` for an
    eval.json that predates the record."""
    if overrides is None:
        return "unrecorded"
    return " ".join(f"{k}={_show(v)}" for k, v in sorted(overrides.items())) or "none"


def final_episodes(run: RunRecord, source: str = "eval", missing_ok: bool = False) -> pd.DataFrame:
    """The episodes that measure a run: its last evaluation (or eval.csv with source=evaluate); empty when
    it has not been evaluated yet (a missing eval.csv raises unless `missing_ok`)."""
    if source == "evaluate":
        path = run.path / EVAL_CSV
        if not path.exists():
            if missing_ok:
                return pd.DataFrame()
            raise FileNotFoundError(f"{path} missing: run `londi-evaluate run_dir={run.path}` first")
        return pd.read_csv(path)
    ep = run.episodes
    if "phase" in ep.columns:
        ev = ep[ep["phase"] == "eval"]
        if ev.empty:
            return ev
        at = _step_column(ev)
        return ev[ev[at] == ev[at].max()]
    return ep  # episodes.csv without phases (not written by londi.runner): every episode it has


def _step_column(df: pd.DataFrame) -> str:
    """The training-step column of episodes.csv: `global_step` (the runner's), else `env_steps`."""
    return "global_step" if "global_step" in df.columns else "env_steps"


def run_table(runs: Sequence[RunRecord], source: str = "eval") -> pd.DataFrame:
    """One row per run: the mean of each per-episode quantity over its final episodes, the training step
    they were measured at (`steps`), and the run's status."""
    rows = []
    for r in runs:
        ep = final_episodes(r, source, missing_ok=r.status.status != FINISHED)
        row = {"env": r.env, "switcher": r.switcher, "budget": r.budget, "cost": r.cost, "setting": r.setting,
               "seed": r.seed, "status": r.status.status}
        row["steps"] = _max_step(ep, "global_step") if source == "evaluate" else _max_step(ep)
        row["last_step"], row["total_steps"] = r.status.step, r.status.total_steps
        row["episodes"] = len(ep)
        for col, name in EPISODE_STATS.items():
            row[name] = (
                float(pd.to_numeric(ep[col], errors="coerce").mean())
                if col in ep.columns and len(ep)
                else math.nan
            )
        row.update(episode_faults(ep))
        if source == "evaluate":
            row.update({f"eval_{k}": v for k, v in evaluated_on(r).items()})
            row["eval_overrides"] = overrides_text(r.overrides)
        row["path"] = str(r.path)
        rows.append(row)
    return pd.DataFrame(rows)


def episode_faults(ep: pd.DataFrame) -> dict[str, float]:
    """The totals of each FAULTS column over `ep`; NaN where episodes.csv has no such column (a run made
    before it was logged: unknown, not 0)."""
    return {
        col: float(pd.to_numeric(ep[col], errors="coerce").fillna(0).sum()) if col in ep.columns else math.nan
        for col in FAULTS
    }


def _fault_text(ep: pd.DataFrame) -> str:
    """`N DEEPTHINK fallbacks (...) in k of n episodes; ...`, or "" when the episodes have none."""
    parts = []
    for col, what in FAULTS.items():
        if col in ep.columns:
            per_episode = pd.to_numeric(ep[col], errors="coerce").fillna(0)
            if per_episode.sum() > 0:
                parts.append(f"{per_episode.sum():.0f} {what} in {int((per_episode > 0).sum())} of {len(ep)} episodes")
    return "; ".join(parts)


def evaluated_on(run: RunRecord) -> dict[str, str]:
    """What londi-evaluate measured the run on (EVAL_WHERE, from eval.json): "unset" where it does not say."""
    info = run.evaluation
    return {k: str(info[k]) if info.get(k) is not None else "unset" for k in EVAL_WHERE}


def _flat(node: Any, prefix: str = "") -> dict[str, Any]:
    """A nested config as {dotted key: leaf}; lists and empty mappings are leaves."""
    if isinstance(node, Mapping) and node:
        return {k: v for key, val in node.items() for k, v in _flat(val, f"{prefix}{key}.").items()}
    return {prefix[:-1]: node}


def _bookkeeping(key: str) -> bool:
    return key.rsplit(".", 1)[-1] == "seed" or any(key == b or key.startswith(f"{b}.") for b in BOOKKEEPING_KEYS)


def _canon(v: Any) -> Any:
    """A comparable form of a config value: 4 and 4.0 are one number, lists and mappings compare by content."""
    if isinstance(v, bool) or v is None or v is _ABSENT:
        return v
    if isinstance(v, int | float):
        return float(v)
    if isinstance(v, Mapping):
        return tuple(sorted((str(k), _canon(x)) for k, x in v.items()))
    if isinstance(v, list | tuple):
        return tuple(_canon(x) for x in v)
    return str(v)


def _show(v: Any) -> str:
    if v is _ABSENT:
        return "unset"
    return f"{v:g}" if isinstance(v, float) else str(v)


def measured_config(run: RunRecord, source: str = "eval") -> dict[str, Any]:
    """The run's config as {dotted key: value} without the BOOKKEEPING_KEYS: what must agree for two runs to
    be seeds of one row; with source=evaluate also where londi-evaluate measured it (`eval.split`, ...)."""
    flat = {k: v for k, v in _flat(run.config).items() if not _bookkeeping(k)} if run.config else {}
    if source == "evaluate":
        flat.update({f"eval.{k}": v for k, v in evaluated_on(run).items()})
    return flat


def config_splits(runs: Sequence[RunRecord], source: str = "eval") -> tuple[dict[Path, str], list[str]]:
    """({run folder: "key=value, ..."}, notes): for runs that share env, switcher, budget, cost and setting
    but whose `measured_config`s differ, the keys that differ and each run's values of them.

    Why: averaging two models, training lengths or env settings into one row reports a mix no run measured,
    and the seed interval would treat them as replicates. The values go into the row's setting, so each
    config is a row of its own; a run without a config beside runs with one is `config unknown`.
    """
    groups: dict[tuple, list[RunRecord]] = {}
    for r in runs:
        groups.setdefault((r.env, r.switcher, r.budget, r.cost, r.setting), []).append(r)
    extras: dict[Path, str] = {}
    notes: list[str] = []
    for grp in groups.values():
        flats = {r.path: measured_config(r, source) for r in grp}
        known = [f for f in flats.values() if f]
        keys = sorted({k for f in known for k in f})
        differ = [k for k in keys if len({_canon(f.get(k, _ABSENT)) for f in known}) > 1]
        rows_seeds = [(tuple(_canon(flats[r.path].get(k, _ABSENT)) for k in differ), r.seed) for r in grp]
        if len(set(rows_seeds)) < len(rows_seeds):  # one seed twice in a row: split by the settings that differ
            aux = {r.path: {k: v for k, v in _flat(r.config or {}).items() if k in SPLIT_IF_SEEDS_REPEAT} for r in grp}
            more = [k for k in sorted({k for a in aux.values() for k in a})
                    if len({_canon(a.get(k, _ABSENT)) for a in aux.values()}) > 1]
            for path in flats:
                flats[path].update({k: aux[path][k] for k in more if k in aux[path]})
            known = [f for f in flats.values() if f]
            differ += more
        unknown = len(known) < len(flats) and bool(known)
        if not differ and not unknown:
            continue
        for path, f in flats.items():
            extra = ", ".join(f"{k}={_show(f.get(k, _ABSENT))}" for k in differ) if f else "config unknown"
            if extra:
                extras[path] = extra
        rows = sorted({extras.get(r.path, "its setting alone") for r in grp})
        why = ([", ".join(f"`{k}`" for k in differ)] if differ else []) + (["a run without config.yaml"] if unknown else [])
        notes.append(f"- {grp[0].env} {grp[0].label}: split by {' and '.join(why)} into {len(rows)} rows: "
                     + "; ".join(f"`{x}`" for x in rows) + "\n")
    return extras, notes


def interval(values: Sequence[float], low: float | None = None, high: float | None = None,
             level: float = 0.95) -> tuple[float, float, float]:
    """(mean, lower, upper): the Student-t interval of the mean over `values` (one per seed), clipped to
    [low, high], the range the quantity can take. Bounds are NaN for fewer than 2 values.

    Why t over seeds and not a Wilson interval over the pooled episodes: each seed trains its own switcher,
    and a run's episodes all share it, so pooling would count correlated episodes as independent and hide
    the seed-to-seed spread. Why clipped: a symmetric interval around a rate near 0 or 1 (or a count near
    0) crosses bounds no seed can cross; the clipped interval keeps the t coverage and claims nothing
    impossible.
    """
    from scipy import stats

    x = np.asarray([v for v in values if v == v], dtype=float)
    if len(x) == 0:
        return math.nan, math.nan, math.nan
    mean = float(x.mean())
    if len(x) < 2:
        return mean, math.nan, math.nan
    sem = float(stats.sem(x))
    lo, hi = (mean, mean) if sem == 0 else stats.t.interval(level, len(x) - 1, loc=mean, scale=sem)
    lo = float(lo) if low is None else max(float(lo), low)
    hi = float(hi) if high is None else min(float(hi), high)
    return mean, lo, hi


PER_SEED = ("success", "return")  # kept seed by seed too (`<name>_per_seed`): a mean of 3 hides a collapsed seed


def aggregate(per_run: pd.DataFrame) -> pd.DataFrame:
    """Mean and clipped 95% interval over seeds per (env, switcher, budget, cost, setting) (`<name>_lo`,
    `<name>_hi`), success and return seed by seed in seed order (`<name>_per_seed`, "0.95 / 0.91 / 0.93"),
    the training steps they were measured at (`steps_min`, `steps_max`), the compute saved against
    always_deepthink (none in an env with several always_deepthink rows), and the FAULTS counted over the
    row's runs. Raises when two runs of one row have the same seed."""
    out = []
    if per_run.empty:
        return pd.DataFrame()
    keyed = per_run.assign(
        **{k: per_run[k].astype(object).where(per_run[k].notna(), None) for k in ("budget", "cost", "setting")}
    )
    for key, grp in keyed.groupby(GROUP_KEYS, dropna=False, sort=True):
        row = dict(zip(GROUP_KEYS, key, strict=True))
        _check_seeds_once(grp, row)
        row["seeds"] = int(grp["seed"].nunique()) if grp["seed"].notna().any() else len(grp)
        row["runs"] = len(grp)
        row["unfinished"] = int((grp["status"] != FINISHED).sum()) if "status" in grp.columns else 0
        steps = pd.to_numeric(grp["steps"], errors="coerce") if "steps" in grp.columns else pd.Series(dtype=float)
        row["steps_min"] = steps.min() if steps.notna().any() else math.nan
        row["steps_max"] = steps.max() if steps.notna().any() else math.nan
        row["episodes"] = int(grp["episodes"].sum())
        for name in EPISODE_STATS.values():
            m, lo, hi = interval(grp[name].tolist(), *BOUNDS[name])
            row[name], row[f"{name}_lo"], row[f"{name}_hi"] = m, lo, hi
        by_seed = grp.sort_values("seed", kind="stable")
        for name in PER_SEED:
            row[f"{name}_per_seed"] = " / ".join(f"{v:.2f}" for v in by_seed[name])
        for col in (c for c in grp.columns if c.startswith("eval_")):  # londi-evaluate's split and env
            row[col] = ", ".join(sorted(set(grp[col].astype(str))))
        for col in FAULTS:  # totals over the row's runs; NaN where none of them logged the column
            row[col] = grp[col].sum(min_count=1) if col in grp.columns else math.nan
        out.append(row)
    agg = pd.DataFrame(out)
    agg["compute_saved"] = math.nan
    for _env, grp in agg.groupby("env"):
        ref = grp[grp["switcher"] == "always_deepthink"]
        if len(ref) == 1 and ref["total_flops"].iloc[0] > 0:  # several (split by config): no one reference
            base = float(ref["total_flops"].iloc[0])
            agg.loc[grp.index, "compute_saved"] = 1.0 - grp["total_flops"] / base
    return agg[[c for c in agg.columns if c not in FAULTS] + list(FAULTS)]  # last: older columns keep their place


def _check_seeds_once(grp: pd.DataFrame, row: Mapping[str, Any]) -> None:
    """Raise when two runs of one row have the same seed: one replicate would count twice."""
    seeds = grp["seed"]
    dup = grp[seeds.notna() & seeds.duplicated(keep=False)]
    if dup.empty:
        return
    first = dup[dup["seed"] == dup["seed"].iloc[0]]
    a, b = (first["path"].iloc[:2] if "path" in first.columns else ("?", "?"))
    raise ValueError(
        f"londi-report: {a} and {b} are both seed {int(first['seed'].iloc[0])} of {row['env']} {_label(row)} "
        "with the same config: one seed would count as two replicates. Report them separately (move one out "
        "of the folder you report on) or remove one"
    )


def _errors(agg: pd.DataFrame, name: str) -> np.ndarray:
    """Asymmetric error-bar lengths (2, n) from the clipped interval; 0 where there is none."""
    m = agg[name].to_numpy(float)
    lo, hi = agg[f"{name}_lo"].to_numpy(float), agg[f"{name}_hi"].to_numpy(float)
    return np.nan_to_num(np.vstack([m - lo, hi - m]))


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


def _fmt(m: float, lo: float, hi: float, digits: int = 2, sci: bool = False) -> str:
    """`mean [lower, upper]`, or the mean alone where there is no interval (one seed)."""
    if m != m:
        return "-"
    f = (lambda v: f"{v:.{digits}e}") if sci else (lambda v: f"{v:.{digits}f}")
    return f"{f(m)} [{f(lo)}, {f(hi)}]" if lo == lo and hi == hi else f(m)


def _steps(r: Mapping[str, Any]) -> str:
    lo, hi = r.get("steps_min", math.nan), r.get("steps_max", math.nan)
    if lo != lo:
        return "-"
    return f"{lo:.0f}" if lo == hi else f"{lo:.0f}-{hi:.0f}"


def markdown_table(agg: pd.DataFrame, metric: str = "success") -> str:
    """The summary as a markdown table: mean [95% interval] over seeds (see `interval`), and `metric` seed
    by seed."""
    head = (
        f"| env | switcher | budget | cost | setting | seeds | steps | success | return | {metric} per seed "
        "| DEEPTHINK calls/ep | DEEPTHINK FLOPs/ep | total FLOPs/ep | device s/ep | compute saved vs always_deepthink |"
    )
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for _, r in agg.iterrows():
        saved = r.get("compute_saved", math.nan)

        def cell(name: str, digits: int = 2, sci: bool = False, r=r) -> str:
            return _fmt(r[name], r[f"{name}_lo"], r[f"{name}_hi"], digits, sci)

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
                    _steps(r),
                    cell("success"),
                    cell("return"),
                    str(r.get(f"{metric}_per_seed", "-")),
                    cell("deepthink_calls", 1),
                    cell("deepthink_flops", 2, sci=True),
                    cell("total_flops", 2, sci=True),
                    cell("device_seconds", 3),
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
        xerr, yerr = _errors(g, "deepthink_flops"), _errors(g, metric)
        for i, r in g.iterrows():
            color, marker = _style(plt, i)
            ax.errorbar(x[i], y[i], xerr=xerr[:, i : i + 1], yerr=yerr[:, i : i + 1], fmt=marker, color=color,
                        capsize=3, label=_label(r))
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
    _caption(fig, FIGURE_NOTE + ("" if metric == "success" else "; return is not clipped") + ".")
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _caption(fig: Any, text: str) -> None:
    """The figure's caption under the axes (says which interval the error bars are)."""
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    fig.text(0.01, 0.01, text, fontsize=7, ha="left", va="bottom")


def _style(plt: Any, i: int) -> tuple[Any, str]:
    """A distinct (color, marker) for the i-th series: 20 colors, then a new marker (the default cycle has 10)."""
    return plt.get_cmap("tab20")(i % 20), "osD^v<>ph*"[i // 20 % 10]


CURVE_COLUMNS = {  # compute_curves column -> (metrics.csv column, axis label)
    "deepthink_flops": ("compute/deepthink_flops", "cumulative DEEPTHINK FLOPs"),
    "deepthink_seconds": ("compute/deepthink_seconds", "cumulative DEEPTHINK device seconds"),
    "flops": ("compute/total_flops", "cumulative FLOPs (QUICK + DEEPTHINK)"),
    "seconds": ("compute/gpu_seconds", "cumulative device seconds (QUICK + DEEPTHINK)"),
}


def compute_curves(runs: Sequence[RunRecord]) -> pd.DataFrame:
    """Cumulative compute vs training env steps per run: DEEPTHINK's FLOPs and device seconds (the GPU-usage
    view) and both models' together. From metrics.csv, else the cumsum of training episodes (which have no
    DEEPTHINK seconds)."""
    rows = []
    for r in runs:
        m = r.metrics
        if m is not None and "compute/total_flops" in m.columns and "global_step" in m.columns:
            d = m[["global_step"]].loc[m["compute/total_flops"].notna()].rename(columns={"global_step": "env_steps"})
            for col, (src, _) in CURVE_COLUMNS.items():
                d[col] = m[src].loc[d.index] if src in m.columns else np.nan
        else:
            ep = r.episodes
            ep = ep[ep["phase"] == "train"] if "phase" in ep.columns else ep
            d = pd.DataFrame(
                {
                    "env_steps": ep[_step_column(ep)],
                    "deepthink_flops": ep["deepthink_flops"].cumsum() if "deepthink_flops" in ep.columns else np.nan,
                    "deepthink_seconds": np.nan,
                    "flops": ep["total_flops"].cumsum(),
                    "seconds": ep["device_seconds"].cumsum() if "device_seconds" in ep.columns else np.nan,
                }
            )
        d = d.assign(env=r.env, label=r.label, seed=r.seed)
        rows.append(d)
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()


def plot_compute_curves(curves: pd.DataFrame, path: Path, seconds_note: str = "") -> Path:
    """Cumulative DEEPTHINK FLOPs and device seconds (top) and both models' (bottom) against env steps, mean
    over seeds per switcher."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, grid_axes = plt.subplots(2, 2, figsize=(14, 9))
    axes = dict(zip(CURVE_COLUMNS, grid_axes.ravel(), strict=True))
    for k, ((env, label), g) in enumerate(curves.groupby(["env", "label"], sort=True)):
        color, _ = _style(plt, k)
        grid = np.sort(g["env_steps"].unique())
        for col, ax in axes.items():
            per_seed = []
            for _, s in g.groupby("seed", dropna=False):
                s = s.sort_values("env_steps")
                if s[col].notna().any():  # NaN past a seed's last step: a shorter run is not held flat
                    per_seed.append(np.interp(grid, s["env_steps"], s[col].ffill().fillna(0), right=np.nan))
            if per_seed:
                arr = np.vstack(per_seed)
                n = (~np.isnan(arr)).sum(axis=0)
                mean = np.where(n > 0, np.nansum(arr, axis=0) / np.maximum(n, 1), np.nan)
                name = label if curves["env"].nunique() == 1 else f"{env} {label}"
                ax.plot(grid, mean, label=name if col == "deepthink_seconds" else None, color=color,
                        ls=("-", "--", ":")[k // 20 % 3])
    for col, ax in axes.items():
        ax.set_ylabel(CURVE_COLUMNS[col][1])
        ax.set_xlabel("env steps (training)")
        ax.grid(alpha=0.3)
    axes["deepthink_seconds"].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.suptitle("Compute used against env steps, per switcher (mean over seeds): DEEPTHINK alone (top), "
                 "QUICK + DEEPTHINK (bottom)")
    if seconds_note:
        _caption(fig, seconds_note)
    else:
        fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def learning_curves(runs: Sequence[RunRecord]) -> pd.DataFrame:
    """Per run with more than one periodic evaluation: success and DEEPTHINK calls per episode at each one,
    against the training env steps it was made at (whether a learned switcher's curve has gone flat)."""
    rows = []
    for r in runs:
        ep = r.episodes
        if ep.empty or "phase" not in ep.columns:
            continue
        ev = ep[ep["phase"] == "eval"]
        stats = {k: (k, "mean") for k in ("success", "return", "deepthink_calls") if k in ev.columns}
        g = ev.groupby(_step_column(ev)).agg(**stats)
        if len(g) < 2:
            continue
        rows.append(g.reset_index(names="env_steps").assign(env=r.env, label=r.label, seed=r.seed))
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()


def plateau(curves: pd.DataFrame, metric: str = "success") -> pd.DataFrame:
    """Per learned switcher setting: `metric` and DEEPTHINK calls at each seed's last two periodic evaluations,
    and the change between them as a 95% t interval over seeds (`change_lo`, `change_hi`).

    Why: "trained until the curve is flat" is a claim about the end of the curve; a change whose interval
    excludes 0 says the switcher was still learning (`rising`) or degrading (`falling`) when training stopped.
    With 3 seeds the interval is wide, so `no clear change` is weaker evidence than a flat curve in the figure.
    """
    rows = []
    if curves.empty:
        return pd.DataFrame()
    for (env, label), g in curves.groupby(["env", "label"], sort=True):
        ends = []
        for _seed, s in g.groupby("seed", dropna=False):
            s = s.sort_values("env_steps")
            if len(s) >= 2:
                ends.append((s.iloc[-2], s.iloc[-1]))
        if not ends:
            continue
        change = [b[metric] - a[metric] for a, b in ends]
        mean, lo, hi = interval(change)
        verdict = ("one seed" if lo != lo else "rising" if lo > 0 else "falling" if hi < 0 else "no clear change")
        steps = sorted({(int(a["env_steps"]), int(b["env_steps"])) for a, b in ends})
        rows.append({
            "env": env, "label": label, "seeds": len(ends),
            "steps": ", ".join(f"{a} -> {b}" for a, b in steps),
            f"{metric}_prev": float(np.mean([a[metric] for a, _ in ends])),
            f"{metric}_last": float(np.mean([b[metric] for _, b in ends])),
            "change": mean, "change_lo": lo, "change_hi": hi,
            "calls_prev": float(np.mean([a["deepthink_calls"] for a, _ in ends])),
            "calls_last": float(np.mean([b["deepthink_calls"] for _, b in ends])),
            "verdict": verdict,
        })
    return pd.DataFrame(rows)


def _signed(m: float, lo: float, hi: float) -> str:
    return f"{m:+.2f} [{lo:+.2f}, {hi:+.2f}]" if lo == lo and hi == hi else f"{m:+.2f}"


def plateau_table(flat: pd.DataFrame, metric: str = "success") -> str:
    """`plateau` as a markdown section for report.md."""
    lines = [
        "## Has training gone flat?",
        "",
        f"Mean {metric} and DEEPTHINK calls per episode at each seed's last two periodic evaluations; the change "
        "is a 95% t interval over seeds (rising / falling where it excludes 0).",
        "",
        f"| env | switcher | seeds | evaluations at | {metric} | change | DEEPTHINK calls/ep | verdict |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for _, r in flat.iterrows():
        lines.append(
            f"| {r['env']} | {r['label']} | {r['seeds']} | {r['steps']} | {r[f'{metric}_prev']:.2f} -> "
            f"{r[f'{metric}_last']:.2f} | {_signed(r['change'], r['change_lo'], r['change_hi'])} | "
            f"{r['calls_prev']:.1f} -> {r['calls_last']:.1f} | {r['verdict']} |"
        )
    return "\n".join(lines) + "\n\n"


def plot_learning_curves(curves: pd.DataFrame, path: Path) -> Path:
    """Success (left) and DEEPTHINK calls per episode (right) at each periodic evaluation, mean over seeds
    with the seeds' range shaded, per learned switcher setting."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(14, 4.5))
    for k, ((env, label), g) in enumerate(curves.groupby(["env", "label"], sort=True)):
        color, marker = _style(plt, k)
        by_step = g.groupby("env_steps")
        for ax, col in zip(axes, ("success", "deepthink_calls"), strict=True):
            name = label if curves["env"].nunique() == 1 else f"{env} {label}"
            stats = by_step[col].agg(["mean", "min", "max"])
            ax.plot(stats.index, stats["mean"], marker=marker, color=color, label=name if col == "success" else None)
            ax.fill_between(stats.index, stats["min"], stats["max"], color=color, alpha=0.12)
    axes[0].set_ylabel("success (periodic evaluation)")
    axes[1].set_ylabel("DEEPTHINK calls per episode")
    for ax in axes:
        ax.set_xlabel("env steps (training)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, loc="best")
    fig.suptitle("Learning curves: mean over seeds, shaded between the lowest and highest seed")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_budget(agg: pd.DataFrame, path: Path, metric: str = "success") -> Path | None:
    """`metric` against budget for switchers run at several budgets (None when there are none)."""
    b = agg[agg["budget"].notna()]
    lines = ["env", "switcher", "setting"]  # a setting (or a config split, see config_splits) is a line of its own
    if b.empty or b.groupby(lines, dropna=False)["budget"].nunique().max() < 2:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for (env, sw, setting), g in b.groupby(lines, dropna=False):
        g = g.sort_values("budget")
        ax.errorbar(
            g["budget"].astype(float),
            g[metric],
            yerr=_errors(g, metric),
            marker="o",
            capsize=3,
            label=_with_setting(f"{env} {sw}", setting),
        )
    ax.set_xscale("log", base=2)
    ax.set_xlabel("DEEPTHINK budget (calls per episode)")
    ax.set_ylabel(METRICS_Y[metric])
    if metric == "success":
        ax.set_ylim(-0.05, 1.05)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    _caption(fig, "Error bars: 95% Student-t interval over seeds" + (
        ", clipped to [0, 1]." if metric == "success" else " (return: not clipped)."))
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


ROLES = {"quick": "QUICK", "deepthink": "DEEPTHINK"}


def _seconds_how(kind: str, threads: int | None, cfg: Mapping[str, Any]) -> str:
    """How one model's device seconds were measured, in words."""
    at = f"{threads} torch thread{'s' if threads != 1 else ''}" if threads is not None else "unrecorded torch threads"
    if kind == DEVICE_CUDA:
        return "CUDA event time on the GPU"
    if kind == DEVICE_CPU_THREAD:
        return f"calling-thread CPU time at {at}"
    if kind == DEVICE_CPU_PROCESS:
        return f"whole-process CPU time at {at} (measured before the meter counted the calling thread only)"
    if kind == DEVICE_SIMULATED:
        params = cfg.get("simulated_params")
        return f"simulated ({float(params):.3g}-parameter model)" if params else "simulated"
    if kind == DEVICE_REMOTE:
        return ("served remotely: each request's latency at the client, summed over requests (network and "
                "queueing included; the server's GPU time is not observable here, so compare served runs by FLOPs)")
    return kind


def device_seconds_method(run: RunRecord, source: str = "eval") -> tuple[str, int | None]:
    """(how the run's device seconds were measured, per model role; the CPU torch threads, None if no CPU
    model ran). From the meters in its latest checkpoint (or eval.json with source=evaluate)."""
    threads = run.threads
    if source == "evaluate":
        info = run.evaluation
        kinds = {role: list(k) for role, k in (info.get("device_kinds") or {}).items()}
        threads = info.get("threads", None)
    else:
        kinds = {
            role: sorted({u.get("device_kind", "?") for u in models.values() if u.get("calls")})
            for role, models in run.status.meters.items()
        }
    if not kinds:
        return "not recorded (no meters in the run's checkpoint or eval.json)", None
    parts, cpu = [], False
    for role, title in ROLES.items():
        ks = kinds.get(role)
        cfg = run.config.get(role) if isinstance(run.config.get(role), dict) else {}
        how = ", ".join(_seconds_how(k, threads, cfg) for k in ks) if ks else "not called"
        cpu = cpu or any(k.startswith("cpu") for k in ks or ())
        parts.append(f"{title}: {how}")
    return "; ".join(parts), (threads if cpu else None)


def _device_note(runs: Sequence[RunRecord], source: str) -> str:
    """The lines under the table on how device seconds were measured (and a warning when not comparable)."""
    methods = [device_seconds_method(r, source) for r in runs]
    counts = Counter(m for m, _ in methods)
    if len(counts) == 1:
        text = f"Device seconds: {next(iter(counts))}.\n"
    else:
        text = "Device seconds were measured in several ways:\n" + "".join(
            f"- {m} ({n} run{'s' if n != 1 else ''})\n" for m, n in counts.most_common()
        )
    threads = sorted({t for _, t in methods if t is not None})
    if len(threads) > 1:
        text += (
            f"\n**Not comparable**: CPU device seconds here were measured at different torch thread counts "
            f"({', '.join(map(str, threads))}); CPU time per call depends on it.\n"
        )
    return text


def _rel(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root)) if path != root else str(path)
    except ValueError:
        return str(path)


def _left_out(runs: Sequence[RunRecord], root: Path, tabled: set[Path], reasons: Mapping[Path, str],
              include_unfinished: bool, faults: Mapping[Path, str]) -> str:
    """The list under the table: every run not finished (tabulated or not) and every run left out, with why
    (finished runs with faults are listed by `_faulty`)."""
    lines = []
    for r in runs:
        if r.status.status == FINISHED and (r.path in tabled or r.path in faults):  # faulty: their own section
            continue
        where = "in the table (include_unfinished=true)" if r.path in tabled else "not in the table"
        why = f"; {reasons[r.path]}" if r.path in reasons else ""
        lines.append(f"- `{_rel(r.path, root)}` ({r.label}, seed {r.seed}): {r.status.describe()}; {where}{why}\n")
    if not lines:
        return ""
    hint = "" if include_unfinished else " (`include_unfinished=true` tabulates those with an evaluation)"
    return f"## Unfinished and failed runs{hint}\n\n" + "".join(lines) + "\n"


def _faulty(runs: Sequence[RunRecord], root: Path, tabled: set[Path], faults: Mapping[Path, str],
            include_unfinished: bool) -> tuple[str, str]:
    """(the bold line above the table, the list under it) for runs whose final episodes had FAULTS."""
    listed = [r for r in runs if r.path in faults]
    if not listed:
        return "", ""
    n_in = sum(r.path in tabled for r in listed)
    lines = [
        f"- `{_rel(r.path, root)}` ({r.label}, seed {r.seed}): {faults[r.path]}; "
        + ("in the table" if r.path in tabled else "not in the table") + "\n"
        for r in listed
    ]
    section = (
        "## Runs whose final evaluation had DEEPTHINK fallbacks or env restarts\n\n"
        "Their success is not the switcher's: where DEEPTHINK failed QUICK acted instead, and a restart during a "
        "step cut the episode. Measure them again once DEEPTHINK's endpoint and the env are sound "
        "(`londi-evaluate run_dir=<run> split=train`, then `source=evaluate`).\n\n"
        + "".join(lines) + "\n"
    )
    banner = []
    if len(listed) > n_in:
        banner.append(f"**{_runs(len(listed) - n_in)} left out of the table: the final evaluation had DEEPTHINK "
                      "fallbacks or env restarts** (listed under the table).")
    if n_in:
        banner.append(f"**{_runs(n_in)} in the table had DEEPTHINK fallbacks or env restarts in the final "
                      "evaluation**: their rows are not the switchers' alone "
                      "(`fallbacks`, `env_restarts` in summary.csv; listed under the table).")
    return "\n".join(banner) + "\n\n", section


def _runs(n: int) -> str:
    return f"{n} run{'s' if n != 1 else ''}"


def _evaluation_note(runs: Sequence[RunRecord]) -> str:
    """Where londi-evaluate measured the tabulated runs (split and env), loudly when they differ, and with
    which overrides."""
    where = Counter(", ".join(f"{k} `{v}`" for k, v in evaluated_on(r).items()) for r in runs)
    if len(where) == 1:
        text = f"Evaluation episodes (londi-evaluate) on {next(iter(where))} for every run.\n\n"
    else:
        text = (
            "**Evaluated on different splits or envs**: rows whose runs differ are split (`eval.split`, "
            "`eval.env_id` in the setting), and rows on different splits or envs are not comparable:\n\n"
            + "".join(f"- {w}: {_runs(n)}\n" for w, n in sorted(where.items())) + "\n"
        )
    return text + _overrides_note(runs)


def _overrides_note(runs: Sequence[RunRecord]) -> str:
    """Which `+override`s londi-evaluate used (eval.json), and a bold line for eval.jsons that cannot say."""
    used = Counter(overrides_text(r.overrides) for r in runs if r.overrides is not None)
    unrecorded = sum(r.overrides is None for r in runs)
    text = ""
    if set(used) == {"none"}:
        text = "londi-evaluate overrides (`+override.<key>=<value>`): none.\n\n"
    elif used:
        text = (
            "**Evaluated with overrides** (londi-evaluate `+override.<key>=<value>`, from eval.json): each row is "
            "labelled by the config it was evaluated with, and an override that changed a value is in its setting "
            "with the trained value:\n\n"
            + "".join(f"- `{w}`: {_runs(n)}\n" if w != "none" else f"- none: {_runs(n)}\n"
                      for w, n in sorted(used.items())) + "\n"
        )
    if unrecorded:
        text += (
            f"**The eval.json of {_runs(unrecorded)} predates the record of overrides**: if londi-evaluate ran it with "
            "`+override`, their rows are labelled by the training config, not by what was evaluated "
            "(`eval_overrides` `unrecorded` in runs.csv); run londi-evaluate on them again.\n\n"
        )
    return text


def _split_note(notes: Sequence[str]) -> str:
    if not notes:
        return ""
    return (
        "**Rows split by config**: these runs share env, switcher and budget, cost or setting, but their "
        "configs differ in more than the seed and the bookkeeping keys (`londi.report.BOOKKEEPING_KEYS`), so "
        "each config is a row of its own (its values in the setting column), never averaged with the others:\n\n"
        + "".join(notes) + "\n"
    )


def _reference_note(agg: pd.DataFrame) -> str:
    """A line for each env whose compute saved is left blank because it has several always_deepthink rows."""
    refs = agg[agg["switcher"] == "always_deepthink"].groupby("env").size() if not agg.empty else pd.Series()
    return "".join(
        f"**Compute saved left blank on {env}**: it has {n} always_deepthink rows (split by config), so no one "
        "reference; report each config separately to compare it against its own always_deepthink.\n\n"
        for env, n in refs[refs > 1].items()
    )


def make_report(root: str | Path, out: str | Path | None = None, source: str = "eval",
                metric: str = "success", include_unfinished: bool = False) -> dict[str, Path]:
    """Build the report for the finished runs under `root` (all runs with an evaluation when
    `include_unfinished`); returns the paths written.

    `metric` is the figures' y axis: success, or return for envs scored in steps (ScienceWorld: score gained / 100).
    """
    if metric not in METRICS_Y:
        raise ValueError(f"londi-report: metric must be one of {', '.join(METRICS_Y)}, not {metric!r}")
    if source not in ("eval", "evaluate"):
        raise ValueError(f"londi-report: source must be eval or evaluate, not {source!r}")
    root = Path(root)
    run_dirs = find_runs(root)
    if not run_dirs:
        raise FileNotFoundError(
            f"londi-report: no run folder ({', '.join(RUN_MARKERS)}) under {root}; pass a londi-train run or "
            "multirun dir"
        )
    out = Path(out) if out else root / "report"
    out.mkdir(parents=True, exist_ok=True)
    runs = [load_run(d) for d in run_dirs]
    if source == "evaluate":  # rows are what londi-evaluate measured: the config with its overrides set
        for r in runs:
            apply_evaluation_overrides(r)
    tabled: list[RunRecord] = []
    reasons: dict[Path, str] = {}
    faults: dict[Path, str] = {}
    for r in runs:
        if r.status.status != FINISHED and not include_unfinished:
            continue
        if r.status.status != FINISHED and source == "evaluate" and not (r.path / EVAL_CSV).exists():
            reasons[r.path] = f"no {EVAL_CSV}"
            continue
        ep = final_episodes(r, source)  # a finished run without eval.csv raises here: loud
        if ep.empty:
            reasons[r.path] = "no evaluation episodes"
            continue
        if fault := _fault_text(ep):
            faults[r.path] = fault  # tabulated, and flagged above and under the table
        tabled.append(r)
    extras, split_notes = config_splits(tabled, source)
    for r in tabled:  # each config its own row: the differing keys' values join the row's setting
        if r.path in extras:
            r.setting = ", ".join(x for x in (r.setting, extras[r.path]) if x)
    if split_notes:
        log.warning("runs of one setting with different configs are separate rows:\n%s", "".join(split_notes))
    if any(r.path in faults for r in tabled):
        log.warning("runs in the table had DEEPTHINK fallbacks or env restarts in their final evaluation")
    per_run = run_table(runs, source)
    per_run["in_table"] = per_run["path"].isin({str(r.path) for r in tabled})
    agg = aggregate(per_run[per_run["in_table"]])
    paths = {"runs": out / "runs.csv", "summary": out / "summary.csv", "table": out / "report.md"}
    per_run.to_csv(paths["runs"], index=False)
    agg.to_csv(paths["summary"], index=False)
    device_note = _device_note(tabled, source) if tabled else ""
    captions = {}
    flat_md = ""
    if not agg.empty:
        paths["pareto"] = plot_pareto(agg, out / "pareto.png", metric)
        captions["pareto"] = f"{METRICS_Y[metric]} against DEEPTHINK FLOPs per episode. {FIGURE_NOTE}."
        curves = compute_curves(tabled)
        if not curves.empty:
            lines = device_note.strip().splitlines()
            note = lines[0] if len(lines) == 1 else "Device seconds were measured in several ways (see report.md)."
            paths["compute_curve"] = plot_compute_curves(curves, out / "compute_curve.png", note)
            captions["compute_curve"] = f"Cumulative compute against training env steps, mean over seeds. {note}"
        learning = learning_curves(tabled)
        if not learning.empty:
            paths["learning_curve_csv"] = out / "learning_curve.csv"
            learning.to_csv(paths["learning_curve_csv"], index=False)
            flat = plateau(learning, metric)
            flat_md = plateau_table(flat, metric) if not flat.empty else ""
            paths["learning_curve"] = plot_learning_curves(learning, out / "learning_curve.png")
            captions["learning_curve"] = ("Success and DEEPTHINK calls per episode at each periodic evaluation "
                                          "during training, mean over seeds (shaded: the seeds' range).")
        budget = plot_budget(agg, out / "budget.png", metric)
        if budget is not None:
            paths["budget"] = budget
            captions["budget"] = f"{METRICS_Y[metric]} against the DEEPTHINK budget. Error bars: 95% Student-t " \
                "interval over seeds" + (", clipped to [0, 1]." if metric == "success" else ".")
    simulated = sorted({s for r in tabled for s in r.simulated})
    note = (
        f"Simulated cost: {', '.join(simulated)} is the env's expert charged the FLOPs and device seconds of a "
        "model of that size (londi.lm.baselines.ExpertPolicy), not a model that ran.\n\n"
        if simulated
        else ""
    )
    figs = "".join(f"![{k}]({p.name})\n\n*{captions[k]}*\n\n" for k, p in paths.items() if p.suffix == ".png")
    n_unfinished = sum(r.status.status != FINISHED for r in tabled)
    which = "finished runs" + (f" and {n_unfinished} unfinished ones (`steps` says where each stopped)"
                               if n_unfinished else "")
    what = "londi-evaluate episodes" if source == "evaluate" else "final evaluation"
    table = markdown_table(agg, metric) if not agg.empty else "No run to tabulate.\n"
    fault_banner, fault_section = _faulty(runs, root, {r.path for r in tabled}, faults, include_unfinished)
    warnings = (fault_banner + (_evaluation_note(tabled) if source == "evaluate" and tabled else "")
                + _split_note(split_notes) + _reference_note(agg))
    command = " ".join([f"londi-report dir={root}", *([f"out={out}"] if out != root / "report" else []),
                        *([f"source={source}"] if source != "eval" else []),
                        *([f"metric={metric}"] if metric != "success" else []),
                        *(["include_unfinished=true"] if include_unfinished else [])])
    paths["table"].write_text(
        f"# londi report: {root}\n\n{len(tabled)} of {len(runs)} runs in the table ({which}); success and costs "
        f"per episode over the {what} at training step `steps`, mean [95% interval] over seeds.\n"
        f"{INTERVAL_NOTE}.\nMade by `{command}`.\n\n" + note + warnings + table + "\n" + device_note
        + "\n" + flat_md + _left_out(runs, root, {r.path for r in tabled}, reasons, include_unfinished, faults)
        + fault_section + figs
    )
    left = [r for r in runs if r.path not in {t.path for t in tabled}]
    if left:
        log.warning("%d of %d runs are not in the table (listed in %s)", len(left), len(runs), paths["table"])
    return paths


def report(cfg: DictConfig) -> dict[str, Path]:
    """The Hydra task: build the report from the composed `ReportConfig` and print it."""
    paths = make_report(cfg.dir, cfg.out, _value(cfg.source), _value(cfg.metric), cfg.include_unfinished)
    print(paths["table"].read_text())
    for k, p in paths.items():
        print(f"{k:>14}: {p}")
    return paths


def _value(x: Any) -> str:
    return str(getattr(x, "value", x))


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="report")
def _app(cfg: DictConfig) -> None:
    report(cfg)


def main(argv: Sequence[str] | None = None) -> None:
    """`londi-report dir=<run or multirun dir> [out=DIR] [source=eval|evaluate] [metric=success|return]
    [include_unfinished=true]` (a Hydra app: `--help`, `--cfg job`). `argv` replaces the command line."""
    run_app(_app, "londi-report", argv)


if __name__ == "__main__":
    main()
