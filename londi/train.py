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
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

import londi.config  # noqa: F401 - registers the schemas and resolvers before Hydra composes
from londi.loggers.base import RunLogger
from londi.paths import CONFIG_DIR
from londi.rundir import env_name, resolved_container, run_name, write_run_files

log = logging.getLogger(__name__)


def hydra_choices() -> dict[str, str]:
    """The group options Hydra picked ({"env": "babyai_text/goto_local", "switcher": "londi", ...})."""
    if not HydraConfig.initialized():
        return {}
    choices = OmegaConf.to_container(HydraConfig.get().runtime.choices)
    return {k: str(v) for k, v in choices.items() if v is not None and not k.startswith("hydra")}


def wandb_identity(cfg: DictConfig, choices: Mapping[str, str], commit: str | None) -> dict[str, Any]:
    """W&B group (env-experiment), name (switcher-budget/cost-seed) and tags, unless the config sets them."""
    wb = cfg.logger.wandb
    env = env_name(cfg, choices.get("env"))
    sw = cfg.get("switcher") or {}
    tags = [f"env:{env}", f"switcher:{choices.get('switcher', 'run')}"]
    for key in ("budget", "cost"):
        val = sw.get(key) if hasattr(sw, "get") else None
        if val is not None:
            tags.append(f"{key}:{val}")
    if commit:
        tags.append(f"commit:{commit[:10]}")
    return {
        "group": wb.group or f"{env}-{cfg.experiment_name}",
        "name": wb.name or run_name(cfg, choices.get("switcher")),
        "tags": [*tags, *wb.tags],
    }


def build_loggers(
    cfg: DictConfig, run_dir: Path, choices: Mapping[str, str], commit: str | None
) -> list[RunLogger]:
    """W&B (unless disabled) and the progress display; the runner adds the CSV logger itself."""
    from londi.loggers.progress import ProgressLogger

    loggers: list[RunLogger] = []
    wb = cfg.logger.wandb
    mode = str(getattr(wb.mode, "value", wb.mode))
    if mode != "disabled":
        from londi.loggers.wandb_logger import WandbLogger

        loggers.append(
            WandbLogger(
                run_dir,
                config=resolved_container(cfg),
                mode=mode,
                project=wb.project,
                entity=wb.entity,
                job_type=wb.job_type,
                notes=wb.notes,
                **wandb_identity(cfg, choices, commit),
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


def build_components(cfg: DictConfig) -> dict[str, Any]:
    """Instantiate env factory, QUICK, DEEPTHINK, encoder and switcher from their `_target_` nodes."""
    return {
        "env_fn": instantiate(cfg.env, _partial_=True),
        "quick": instantiate(cfg.quick),
        "deepthink": instantiate(cfg.deepthink),
        "encoder": instantiate(cfg.encoder) if cfg.get("encoder") is not None else None,
        "switcher": instantiate(cfg.switcher),
    }


def train(cfg: DictConfig) -> float:
    """Run one job: provenance, loggers, components, `londi.runner.run`; returns the final success rate."""
    import torch

    from londi import runner

    choices = hydra_choices()
    run_dir = Path(cfg.run_dir)
    torch.set_num_threads(cfg.threads)  # CPU device seconds depend on it: pinned, and recorded below
    info = write_run_files(cfg, run_dir, extra={"choices": choices, "torch_threads": torch.get_num_threads()})
    loggers = build_loggers(cfg, run_dir, choices, info.get("commit"))
    failed = True
    try:
        parts = build_components(cfg)
        result = runner.run(
            **parts,
            run_dir=run_dir,
            seed=cfg.seed,
            total_steps=cfg.total_steps,
            eval_episodes=cfg.eval_episodes,
            eval_every=cfg.eval_every,
            checkpoint_every=cfg.checkpoint_every,
            loggers=loggers,
        )
        failed = False
    finally:
        for lg in loggers:
            try:
                lg.close(failed=failed)
            except Exception:  # a logger failing to close must not hide the run's own error
                log.exception("closing %s failed", type(lg).__name__)
    success = _final_success(result)
    log.info("run folder: %s (final success %.3f)", run_dir, success)
    print(f"londi-train: run folder {run_dir}  final success {success:.3f}")
    return success


def _final_success(result: Any) -> float:
    """The final evaluation's success rate from a `londi.runner.RunResult`."""
    final = getattr(result, "final_eval", None) or {}
    return float(final.get("eval/success_rate", float("nan")))


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="config")
def main(cfg: DictConfig) -> float:
    return train(cfg)


if __name__ == "__main__":
    main()
