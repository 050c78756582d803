"""`londi-evaluate run_dir=... episodes=N split=test`: reload a run's switcher and models, evaluate, write
`eval.json` and `eval.csv` in the run folder.

Why from the run folder: its `config.yaml` (resolved, secrets removed) says how QUICK, DEEPTHINK, the
encoder and the switcher were built, and its checkpoint holds the switcher's weights, so an evaluation
needs nothing else. API keys come back from the environment variables the config names.

Splits: `train` evaluates on the run's own env; `test` on its held-out counterpart: BabyAI-Text
MixedTrainLocal -> MixedTestLocal (held-out objects), ScienceWorld `split=test` variations; other levels
have no held-out objects, so `test` uses seeds disjoint from training and periodic evaluation
(`TEST_SEED_OFFSET`); `train` replays the run's own evaluation seeds. Any other `key=value` overrides the run's config (e.g. `env.id=...`, `deepthink=...`
keys, `device=cuda`).

    londi-evaluate run_dir=outputs/2025-01-01/12-00-00_londi_b-b4-s0 episodes=100 split=test
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from omegaconf import DictConfig, OmegaConf, open_dict

from londi.rundir import load_run_config

SPLITS = ("train", "test")
TEST_SEED_OFFSET = (
    2_000_000  # test-split seeds (training uses seed+0.., periodic evaluation seed+1_000_000..)
)
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


def summarize(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """eval.json's numbers: success, return and calls/compute per model, as means per episode."""
    df = pd.DataFrame(list(rows))
    out: dict[str, Any] = {"episodes": len(df)}
    for col in df.columns:
        if col in ("phase", "episode", "env_steps", "seed"):
            continue
        vals = pd.to_numeric(df[col], errors="coerce")
        if vals.notna().any():
            out[col] = float(vals.mean())
    if "success" in df.columns and len(df) > 1:
        p = float(pd.to_numeric(df["success"], errors="coerce").mean())
        out["success_ci95"] = 1.96 * math.sqrt(max(p * (1 - p), 0.0) / len(df))  # normal approximation
    return out


def evaluate_run(
    run_dir: str | Path, episodes: int = 100, split: str = "test", overrides: Sequence[str] = ()
) -> dict:
    """Evaluate a run folder's switcher; writes and returns the summary (also in `eval.json`)."""
    from londi import runner

    run_dir = Path(run_dir)
    cfg = load_run_config(run_dir)
    if overrides:
        with open_dict(cfg):
            cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist(list(overrides)))
    env_cfg, offset = split_env_config(cfg.env, split)
    from londi import build

    result = runner.evaluate(
        run_dir=run_dir,
        env_fn=build.instantiate_node(env_cfg, _partial_=True),
        quick=build.instantiate_node(cfg.quick),
        deepthink=build.instantiate_node(cfg.deepthink),
        encoder=build.instantiate_node(cfg.encoder),
        switcher=build.instantiate_node(cfg.switcher),
        episodes=episodes,
        seed=None if offset is None else int(cfg.seed) + offset,
    )
    rows = _episode_rows(result)
    for r in rows:
        r.setdefault("split", split)
    pd.DataFrame(rows).to_csv(run_dir / EVAL_CSV, index=False)
    summary = {
        "run_dir": str(run_dir),
        "split": split,
        "env_id": str(env_cfg.get("id", "")),
        "seed_offset": offset,
        **summarize(rows),
    }
    (run_dir / EVAL_JSON).write_text(json.dumps(summary, indent=2) + "\n")
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


def main(argv: Sequence[str] | None = None) -> None:
    """`londi-evaluate run_dir=DIR [episodes=N] [split=train|test] [any.config.key=value ...]`."""
    args = list(sys.argv[1:] if argv is None else argv)
    own, overrides = {}, []
    for a in args:
        key = a.split("=", 1)[0]
        if "=" not in a:
            raise SystemExit(f"londi-evaluate: expected key=value, got {a!r}")
        if key in ("run_dir", "episodes", "split"):
            own[key] = a.split("=", 1)[1]
        else:
            overrides.append(a)
    if "run_dir" not in own:
        raise SystemExit(
            "usage: londi-evaluate run_dir=<a londi-train run folder> [episodes=N] [split=train|test] [key=value ...]"
        )
    summary = evaluate_run(own["run_dir"], int(own.get("episodes", 100)), own.get("split", "test"), overrides)
    print(json.dumps(summary, indent=2))
    print(f"londi-evaluate: wrote {Path(own['run_dir']) / EVAL_JSON} and {EVAL_CSV}")


if __name__ == "__main__":
    main()
