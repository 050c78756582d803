"""`londi-train` (also `python -m londi.train`): the Hydra app that trains and evaluates one switcher.

Why a thin app: the run itself is `londi.runner.run` (a Python API); this module only composes the config
(`configs/config.yaml`, checked against `londi.config.LondiConfig`), builds every object with
`hydra.utils.instantiate`, writes the run folder's provenance (resolved config with secrets removed, git
commit, Hydra's choices) and attaches the loggers (CSV from the runner, W&B, progress). Everything goes
under Hydra's output dir (`run_dir`), never the current directory, so multirun jobs on any launcher
(basic, joblib, submitit_local, submitit_slurm) never collide.

    londi-train                                        defaults: print where the run folder is
    londi-train --cfg job                              the composed config
    londi-train env=babyai_text/pickup_local switcher=londi_b switcher.budget=4 seed=1
    londi-train -m switcher=londi_b switcher.budget=1,2,4,8 seed=0,1,2 hydra/launcher=joblib
    londi-train -m seed=0,1 hydra/launcher=submitit_slurm hydra.launcher.partition=gpu

The task function returns the final evaluation's success rate, so Hydra sweepers that optimise (the
optuna sweeper, an optional extra) can maximise it.
"""

from __future__ import annotations

import logging
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

import londi.config  # noqa: F401 - registers the schemas and resolvers before Hydra composes
from londi.errors import USER_ERRORS
from londi.loggers.base import RunLogger
from londi.paths import CONFIG_DIR
from londi.rundir import (
    RUN_INFO,
    check_same_models,
    env_name,
    model_fingerprints,
    model_tag,
    read_run_info,
    resolved_container,
    run_folder_lock,
    run_name,
    settings_fingerprint,
    write_run_files,
)

log = logging.getLogger(__name__)


def hydra_choices() -> dict[str, str]:
    """The group options Hydra picked ({"env": "babyai_text/goto_local", "switcher": "londi", ...})."""
    if not HydraConfig.initialized():
        return {}
    choices = OmegaConf.to_container(HydraConfig.get().runtime.choices)
    return {k: str(v) for k, v in choices.items() if v is not None and not k.startswith("hydra")}


def wandb_identity(cfg: DictConfig, choices: Mapping[str, str], commit: str | None) -> dict[str, Any]:
    """W&B group (env-experiment), name (switcher-budget/cost-seed) and tags, unless the config sets them.

    Group and name leave out most settings (models, relabel, algo, encoder...), so runs of different settings
    can share both; the tags tell them apart: `quick:`/`deepthink:` (the models), `algo:` and `config:<8 hex>`
    (`settings_fingerprint`: equal exactly when the settings are, seeds aside)."""
    wb = cfg.logger.wandb
    env = env_name(cfg, choices.get("env"))
    sw = cfg.get("switcher") or {}
    tags = [f"env:{env}", f"switcher:{choices.get('switcher', 'run')}"]
    for key in ("budget", "cost", "algo"):  # algo: the SB3 switchers' dqn | ppo
        val = sw.get(key) if hasattr(sw, "get") else None
        if val is not None:
            tags.append(f"{key}:{val}")
    for role in ("quick", "deepthink"):
        tags.append(f"{role}:{model_tag(cfg.get(role), choices.get(f'model@{role}'))}")
    tags.append(f"config:{settings_fingerprint(cfg)}")
    if commit:
        tags.append(f"commit:{commit[:10]}")
    return {
        "group": wb.group or f"{env}-{cfg.experiment_name}",
        "name": wb.name or run_name(cfg, choices.get("switcher")),
        "tags": [*tags, *wb.tags],
    }


def build_loggers(
    cfg: DictConfig, run_dir: Path, choices: Mapping[str, str], info: Mapping[str, Any]
) -> list[RunLogger]:
    """W&B (unless disabled; a resumed run continues its W&B run: same id) and the progress display; the
    runner adds the CSV logger itself."""
    from londi.loggers.progress import ProgressLogger

    loggers: list[RunLogger] = []
    wb = cfg.logger.wandb
    mode = str(getattr(wb.mode, "value", wb.mode))
    if mode != "disabled":
        from londi.loggers.wandb_logger import WandbLogger

        loggers.append(
            WandbLogger(
                run_dir,
                config={**resolved_container(cfg), "config_fingerprint": settings_fingerprint(cfg),
                        "run_fingerprint": info.get("fingerprint"), "model_fingerprints": info.get("models")},
                mode=mode,
                project=wb.project,
                entity=wb.entity,
                job_type=wb.job_type,
                notes=wb.notes,
                run_id=info["wandb_id"],
                **wandb_identity(cfg, choices, info.get("commit")),
            )
        )
    pmode = str(getattr(cfg.logger.progress.mode, "value", cfg.logger.progress.mode))
    if pmode != "off":
        loggers.append(
            ProgressLogger(
                cfg.total_steps,
                mode=pmode,
                every_seconds=cfg.logger.progress.every_seconds,
                desc=run_dir.name,
            )
        )
    return loggers


def train(cfg: DictConfig) -> float:
    """Run one job: check and build everything, then provenance, loggers and the `Runner`.

    Nothing is built into the run folder before the config is checked and every object is built: a bad
    env id, a missing model or an unknown key fails with one line, and a run folder this call created
    is removed again (one with checkpoints is never touched). The run folder is held (`run_folder_lock`) for
    the whole job, so the same folder cannot be trained by two processes at once.
    """
    run_dir = Path(cfg.run_dir)
    with run_folder_lock(run_dir):
        return _train_locked(cfg, run_dir)


def _train_locked(cfg: DictConfig, run_dir: Path) -> float:
    from londi import build
    from londi.runner import Runner

    choices = hydra_choices()
    had_run = (run_dir / "checkpoints").exists() or (run_dir / RUN_INFO).exists()
    try:
        build.validate(cfg)
        build.check_overrides_read(cfg, HydraConfig.get().overrides.task if HydraConfig.initialized() else [])
        check_same_run(cfg, run_dir)
        apply_threads(int(cfg.threads))
        parts = build.components(cfg)
        models = model_fingerprints(parts.quick, parts.deepthink)
        check_same_models(run_dir, models)
    except Exception:
        if not had_run:
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
    import torch

    from londi.config import config_fingerprint

    info = write_run_files(cfg, run_dir, extra={"choices": choices, "torch_threads": torch.get_num_threads(),
                                                "fingerprint": config_fingerprint(cfg), "models": models})
    loggers = build_loggers(cfg, run_dir, choices, info)
    result = Runner(
        parts.env_fn, parts.quick, parts.deepthink, parts.switcher, run_dir,
        encoder=parts.encoder, seed=cfg.seed, total_steps=cfg.total_steps, eval_episodes=cfg.eval_episodes,
        eval_every=cfg.eval_every, checkpoint_every=cfg.checkpoint_every, n_envs=cfg.n_envs, loggers=loggers,
    ).run()
    success = _final_success(result)
    log.info("run folder: %s (final success %.3f)", run_dir, success)
    print(f"londi-train: run folder {run_dir}  final success {success:.3f}")
    return success


def check_same_run(cfg: DictConfig, run_dir: Path) -> None:
    """Refuse to continue a run folder that holds a run of other settings (e.g. a sweep folder reused with
    new values): its checkpoints would be resumed under the new config."""
    from londi.config import config_fingerprint
    from londi.errors import ConfigError

    before = read_run_info(run_dir).get("fingerprint")
    now = config_fingerprint(cfg)
    if before is not None and before != now:
        raise ConfigError(f"{run_dir} holds a run made with other settings (config fingerprint {before}, now {now}): "
                          "rerun with its settings to resume it (its config.yaml), or choose another folder")


def apply_threads(threads: int) -> None:
    """Pin torch's CPU threads (the device seconds measured on CPU depend on it)."""
    import torch

    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    torch.set_num_threads(threads)


def _final_success(result: Any) -> float:
    """The final evaluation's success rate from a `londi.runner.RunResult`."""
    final = getattr(result, "final_eval", None) or {}
    return float(final.get("eval/success_rate", float("nan")))


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="config")
def main(cfg: DictConfig) -> float:
    try:
        return train(cfg)
    except USER_ERRORS as e:  # a mistake in the command or the files: one line, no traceback
        log.error("%s", e)
        sys.exit(f"londi-train: error: {e}")


if __name__ == "__main__":
    main()
