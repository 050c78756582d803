"""`londi-cascade`: the Hydra entry point of online cascade learning over a stream (configs/cascade_app.yaml).

Builds the stream and the levels from the config, runs `OnlineCascade` once over the stream, and writes
into the run folder: `metrics.csv` (curves every `log_every` items), `summary.json` (final figures),
and a W&B run when `wandb.mode` is not `disabled`. `-m cascade.mu=...` sweeps mu, one folder per value.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

import londi.config  # noqa: F401 - registers the schemas before Hydra composes
from londi.cascade.cascade import OnlineCascade
from londi.cascade.deferral import ForcedDeferral
from londi.lm.usage import ComputeMeter
from londi.loggers.base import CSVLogger, MultiLogger, RunLogger
from londi.paths import CONFIG_DIR


def build(cfg: DictConfig) -> tuple[Any, OnlineCascade]:
    """The stream and the cascade described by `cfg` (also usable without Hydra, e.g. from a notebook)."""
    from londi.build import instantiate_node

    stream = instantiate_node(cfg.cascade.stream)
    meter = ComputeMeter()
    chain = cfg.cascade.levels.chain
    levels = [instantiate_node(lv, _partial_=True)(num_classes=stream.num_classes, meter=meter) for lv in chain]
    c = OmegaConf.to_container(cfg.cascade, resolve=True, enum_to_str=True)
    del c["stream"], c["levels"]
    forced = ForcedDeferral(c.pop("forced_p0"), c.pop("forced_decay"))
    return stream, OnlineCascade(levels, forced=forced, seed=int(cfg.seed), **c)


def _loggers(cfg: DictConfig, run_dir: Path) -> RunLogger:
    loggers: list[RunLogger] = [CSVLogger(run_dir)]
    mode = str(getattr(cfg.wandb.mode, "value", cfg.wandb.mode))
    if mode != "disabled":
        from londi.loggers.wandb_logger import WandbLogger

        loggers.append(
            WandbLogger(
                run_dir, config=OmegaConf.to_container(cfg, resolve=True, enum_to_str=True), mode=mode,
                project=cfg.wandb.project, group=cfg.wandb.group, job_type="cascade",
            )
        )
    return MultiLogger(loggers)


def run(cfg: DictConfig) -> dict[str, float]:
    import torch

    torch.set_num_threads(1)
    run_dir = Path(cfg.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    stream, cascade = build(cfg)
    logger = _loggers(cfg, run_dir)
    failed = True
    try:
        summary = cascade.run(stream, logger=logger, log_every=cfg.log_every, window=cfg.window, progress=cfg.progress)
        failed = False
    finally:
        logger.close(failed=failed)
    summary = {**summary, "costs_paper_units": cascade.costs, "levels": [lv.name for lv in cascade.levels]}
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps({k: v for k, v in summary.items() if k.startswith(("cascade/acc", "cascade/agr", "cascade/final", "reference", "cost/"))}))
    return summary


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="cascade_app")
def main(cfg: DictConfig) -> float:
    """Returns final-model agreement (an objective for Hydra sweepers)."""
    return float(run(cfg)["cascade/agreement"])


if __name__ == "__main__":
    main()
