"""`londi-evaluate run_dir=... episodes=N split=test`: reload a run's switcher and models, evaluate, write
`eval.json` and `eval.csv` in the run folder.

Why from the run folder: its `config.yaml` (resolved, secrets removed) says how QUICK, DEEPTHINK, the
encoder and the switcher were built, and its checkpoint holds the switcher's weights, so an evaluation
needs nothing else. API keys come back from the environment variables the config names.

Splits: `train` evaluates on the run's own env; `test` on its held-out counterpart: BabyAI-Text
MixedTrainLocal -> MixedTestLocal (held-out objects), ScienceWorld `split=test` variations; other levels
have no held-out objects, so `test` uses seeds disjoint from training and periodic evaluation
(`TEST_SEED_OFFSET`); `train` replays the run's own evaluation seeds. `+override.<key>=<value>` sets a key of
the run's config (e.g. `+override.env.id=...`, `+override.device=cuda`); a key the run's config lacks fails.
eval.json records them (`overrides`: {key: the value used}, secrets redacted), and `londi-report
source=evaluate` labels and splits its rows by the config with them set, not by config.yaml alone.

Each episode row (eval.csv) carries the training step of the switcher that played it (`global_step`: its
checkpoint's step) and its own seed (`episode_seed`); eval.json gives the same step, the seed range, the
means per episode, and a 95% Wilson interval for the success rate (episodes of one switcher are the
replicates here, and Wilson stays inside [0, 1]). Torch runs on the run's `threads` (default 1), as in
training, so device seconds compare with the run's own; eval.json records them and how they were measured.

    londi-evaluate run_dir=outputs/2025-01-01/12-00-00_londi_b-b4-s0 episodes=100 split=test
    londi-evaluate --help                                 the keys (a Hydra app: configs/evaluate.yaml)
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import hydra
import pandas as pd
from omegaconf import DictConfig, OmegaConf, open_dict

import londi.config  # noqa: F401 - registers the schemas and resolvers before Hydra composes
from londi.checkpoints import write_text_atomic
from londi.config import run_app
from londi.paths import CONFIG_DIR
from londi.report import read_checkpoint
from londi.rundir import check_same_models, load_run_config, model_fingerprints

SPLITS = ("train", "test")
# Test-split seeds, within the run seed's block (`londi.runner.episode_seed_base`). 9,000,000 and not 2,000,000
# (until 2026-12-08): londi-distill seed 0 plays DAgger round 1 from 2,000,000 (`londi.lm.heldout`), so run seed
# 0's test episodes on a distillation level were the shipped models' training episodes.
TEST_SEED_OFFSET = 9_000_000
MIXED_TRAIN, MIXED_TEST = "MixedTrainLocal", "MixedTestLocal"
EVAL_JSON, EVAL_CSV = "eval.json", "eval.csv"


def split_env_config(env_cfg: DictConfig, split: str) -> tuple[DictConfig, int | None]:
    """The env config for `split`, and the seed offset to add to the run's seed (None: the run's own
    evaluation seeds, for `train`)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, not {split!r}")
    env_cfg = OmegaConf.create(OmegaConf.to_container(env_cfg, resolve=True))
    if split == "train":
        return env_cfg, None
    env_id = str(env_cfg.get("id", ""))
    if MIXED_TRAIN in env_id:
        env_cfg.id = env_id.replace(MIXED_TRAIN, MIXED_TEST)
    elif "split" in env_cfg:
        env_cfg.split = "test"
    return env_cfg, TEST_SEED_OFFSET


# per-episode identifiers, not quantities: never averaged into eval.json
IDENTIFIERS = ("phase", "episode", "global_step", "env_steps", "seed", "episode_seed", "split")


def summarize(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """eval.json's numbers: success (with its 95% Wilson interval), return and calls/compute per model, as
    means per episode, and the range of the episodes' seeds."""
    from scipy import stats

    df = pd.DataFrame(list(rows))
    out: dict[str, Any] = {"episodes": len(df)}
    for col in df.columns:
        if col in IDENTIFIERS:
            continue
        vals = pd.to_numeric(df[col], errors="coerce")
        if vals.notna().any():
            out[col] = float(vals.mean())
    if "episode_seed" in df.columns and df["episode_seed"].notna().any():
        out["episode_seed_min"], out["episode_seed_max"] = int(df["episode_seed"].min()), int(df["episode_seed"].max())
    if "success" in df.columns and len(df):
        wins = int(pd.to_numeric(df["success"], errors="coerce").fillna(0).astype(bool).sum())
        ci = stats.binomtest(wins, len(df)).proportion_ci(0.95, method="wilson")
        out["success_ci95_low"], out["success_ci95_high"] = float(ci.low), float(ci.high)
        out["success_interval"] = "95% Wilson score interval over the episodes"
    return out


def _check_overrides(cfg: Any, override: Mapping[str, Any], prefix: str = "") -> None:
    """Every overridden key must exist in the run's config: a misspelt one would change nothing, silently."""
    for key, val in override.items():
        if not (isinstance(cfg, Mapping | DictConfig) and key in cfg):
            raise ValueError(f"override.{prefix}{key}: the run's config has no key {prefix}{key!s}")
        if isinstance(val, Mapping) and isinstance(cfg[key], Mapping | DictConfig):
            _check_overrides(cfg[key], val, f"{prefix}{key}.")


def recorded_overrides(cfg: DictConfig, override: Mapping[str, Any]) -> dict[str, Any]:
    """eval.json's `overrides`: {dotted key: the value the evaluation used}, read from the merged config
    `cfg` (so resolved), with secret-named keys redacted as in config.yaml (`londi.rundir.redact`).

    Why recorded: the run's config.yaml says how it was trained, not how it was evaluated; londi-report
    (source=evaluate) labels and splits rows by the config with these set.
    """
    from londi.rundir import REDACTED, is_secret_key, redact

    out: dict[str, Any] = {}

    def walk(node: Mapping[str, Any], prefix: str) -> None:
        for key, val in node.items():
            dotted = f"{prefix}{key}"
            if isinstance(val, Mapping):
                walk(val, f"{dotted}.")  # an empty mapping merges nothing: nothing to record
                continue
            used = OmegaConf.select(cfg, dotted)
            used = OmegaConf.to_container(used, resolve=True) if OmegaConf.is_config(used) else used
            out[dotted] = REDACTED if is_secret_key(str(key)) and used is not None else redact(used)

    walk(override, "")
    return out


def evaluate_run(
    run_dir: str | Path, episodes: int = 100, split: str = "test",
    overrides: Sequence[str] | Mapping[str, Any] = (),
) -> dict:
    """Evaluate a run folder's switcher; writes and returns the summary (also in `eval.json`).

    `overrides` set keys of the run's config: a mapping (`{"device": "cuda"}`) or dotted `key=value`s.
    The run folder is held while it is evaluated: not while its run still trains (its checkpoints change).
    """
    from londi.rundir import run_folder_lock

    run_dir = Path(run_dir)
    cfg = load_run_config(run_dir)  # first: a folder that is not a run fails here, before anything is written
    with run_folder_lock(run_dir):
        return _evaluate_run(run_dir, cfg, episodes, split, overrides)


def _evaluate_run(run_dir: Path, cfg: Any, episodes: int, split: str,
                  overrides: Sequence[str] | Mapping[str, Any]) -> dict:
    import torch

    from londi import runner

    applied: dict[str, Any] = {}
    if overrides:
        extra = (OmegaConf.create(dict(overrides)) if isinstance(overrides, Mapping)
                 else OmegaConf.from_dotlist(list(overrides)))
        _check_overrides(cfg, OmegaConf.to_container(extra))
        with open_dict(cfg):
            cfg = OmegaConf.merge(cfg, extra)
        applied = recorded_overrides(cfg, OmegaConf.to_container(extra))
    threads = int(cfg.get("threads", 1))  # runs made before `threads` existed: the default, 1
    torch.set_num_threads(threads)
    env_cfg, offset = split_env_config(cfg.env, split)
    from londi import build

    quick, deepthink = build.instantiate_node(cfg.quick), build.instantiate_node(cfg.deepthink)
    check_same_models(run_dir, model_fingerprints(quick, deepthink))
    result = runner.evaluate(
        run_dir=run_dir,
        env_fn=build.instantiate_node(env_cfg, _partial_=True),
        quick=quick,
        deepthink=deepthink,
        encoder=build.instantiate_node(cfg.encoder),
        switcher=build.instantiate_node(cfg.switcher),
        episodes=episodes,
        seed=None if offset is None else runner.episode_seed_base(int(cfg.seed), offset),
        n_envs=int(cfg.get("n_envs", 1)),  # runs made before n_envs existed: one env
    )
    step = read_checkpoint(run_dir)[0]  # the step of the weights runner.evaluate loaded (switcher/ = the final one)
    rows = _episode_rows(result)
    for r in rows:
        r["global_step"] = "" if step is None else step
        r.setdefault("split", split)
    pd.DataFrame(rows).to_csv(run_dir / EVAL_CSV, index=False)
    summary = {
        "run_dir": str(run_dir),
        "split": split,
        "env_id": str(env_cfg.get("id", "")),
        "seed_offset": offset,
        "global_step": step,
        "threads": threads,
        "device_kinds": {
            role: sorted({u.device_kind for u in pol.meter.totals.values() if u.calls})
            for role, pol in (("quick", quick), ("deepthink", deepthink))
        },
        "overrides": applied,
        **summarize(rows),
    }
    write_text_atomic(run_dir / EVAL_JSON, json.dumps(summary, indent=2) + "\n")
    return summary


def _episode_rows(result: Any) -> list[dict[str, Any]]:
    """Episode rows from whatever `runner.evaluate` returns (a list of rows, or an object holding them)."""
    if isinstance(result, Sequence) and not isinstance(result, str):
        return [dict(r) for r in result]
    for key in ("episodes", "rows"):
        val = result.get(key) if isinstance(result, Mapping) else getattr(result, key, None)
        if val is not None:
            return [dict(r) for r in (val.to_dict("records") if hasattr(val, "to_dict") else val)]
    raise TypeError(f"runner.evaluate returned {type(result).__name__}, which holds no episode rows")


def evaluate(cfg: DictConfig) -> dict:
    """The Hydra task: evaluate from the composed `EvaluateConfig` and print the summary."""
    split = str(getattr(cfg.split, "value", cfg.split))
    summary = evaluate_run(cfg.run_dir, cfg.episodes, split, OmegaConf.to_container(cfg.override))
    print(json.dumps(summary, indent=2))
    print(f"londi-evaluate: wrote {Path(cfg.run_dir) / EVAL_JSON} and {EVAL_CSV}")
    return summary


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="evaluate")
def _app(cfg: DictConfig) -> None:
    from londi.errors import USER_ERRORS

    try:
        evaluate(cfg)
    except USER_ERRORS as e:  # a mistake in the command or the files: one line, no traceback
        sys.exit(f"londi-evaluate: error: {e}")


def main(argv: Sequence[str] | None = None) -> None:
    """`londi-evaluate run_dir=DIR [episodes=N] [split=train|test] [+override.<key>=<value> ...]` (a Hydra
    app: `--help`, `--cfg job`). `argv` replaces the command line."""
    run_app(_app, "londi-evaluate", argv)


if __name__ == "__main__":
    main()
