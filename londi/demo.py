"""`londi-demo` (what `make demo` runs): a short LONDI-B run and its baselines on BabyAI-Text, then the report.

Why a multirun of the ordinary app: the demo is exactly what a user would type,
`londi-train -m +experiment=demo switcher=londi_b,always_quick,always_deepthink seed=1,2`, followed by
`londi-report dir=<that sweep>`, so it exercises the real config, launcher, CSV and W&B paths. It runs
the jobs two at a time with the joblib launcher (one per core) and prints where the table, the figures and
the offline W&B runs are. A Hydra app itself (configs/demo.yaml): `londi-demo --help`,
`londi-demo seeds=[1] "overrides=['total_steps=500']"`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import hydra
from omegaconf import DictConfig

import londi.config  # noqa: F401 - registers the schemas and resolvers before Hydra composes
from londi.paths import CONFIG_DIR


def demo_command(sweep_dir: Path, switchers: Sequence[str], seeds: Sequence[int], extra: Sequence[str] = (),
                 n_jobs: int = 2) -> list[str]:
    """The `londi-train -m` command line the demo runs."""
    cmd = [
        sys.executable,
        "-m",
        "londi.train",
        "-m",
        "+experiment=demo",
        f"switcher={','.join(switchers)}",
        f"seed={','.join(str(s) for s in seeds)}",
        f"hydra.sweep.dir={sweep_dir}",
    ]
    if n_jobs > 1:
        cmd += ["hydra/launcher=joblib", f"hydra.launcher.n_jobs={n_jobs}"]
    return cmd + list(extra)


def run_demo(cfg: DictConfig) -> dict[str, Path]:
    """Run the sweep the config describes, then the report; print where everything is."""
    from londi.report import make_report

    sweep_dir = Path(cfg.sweep_dir)
    n_jobs = min(int(cfg.n_jobs), os.cpu_count() or 1)
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
    env.setdefault("WANDB_MODE", "offline")
    env.setdefault("OMP_NUM_THREADS", "1")
    cmd = demo_command(sweep_dir, list(cfg.switchers), list(cfg.seeds), list(cfg.overrides), n_jobs)
    print(f"londi-demo: {', '.join(cfg.switchers)} on BabyAI-Text ({len(cfg.seeds)} seeds)")
    print("  $ " + " ".join(cmd[1:]).replace("-m londi.train", "londi-train", 1), flush=True)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env)
    if proc.returncode != 0:
        raise SystemExit(
            f"londi-demo: the training sweep failed (exit {proc.returncode}); its logs are in {sweep_dir}"
        )
    train_s = time.perf_counter() - t0
    paths = make_report(sweep_dir)
    print()
    print(paths["table"].read_text())
    print(f"londi-demo: done in {time.perf_counter() - t0:.0f} s (training sweep {train_s:.0f} s)")
    print(f"  table:    {paths['table']}")
    for key in ("pareto", "compute_curve", "learning_curve", "budget"):
        if key in paths:
            print(f"  figure:   {paths[key]}")
    print(
        f"  runs:     {sweep_dir}/<n>_<switcher>-...  (config.yaml, episodes.csv, metrics.csv, checkpoints)"
    )
    print(
        f"  W&B:      offline runs in {sweep_dir}/*/wandb; upload with `wandb sync {sweep_dir}/*/wandb/offline-run-*`"
    )
    print(f"  again:    londi-report dir={sweep_dir}")
    return paths


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="demo")
def main(cfg: DictConfig) -> None:
    run_demo(cfg)


if __name__ == "__main__":
    main()
