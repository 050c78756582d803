"""Test-wide settings: offline, single-threaded torch, markers that skip what the machine lacks."""

import os
import shutil

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402


def pytest_configure(config):
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover
        pass


def pytest_collection_modifyitems(config, items):
    no_java = shutil.which("java") is None
    try:
        import torch

        no_gpu = not torch.cuda.is_available()
    except ImportError:  # pragma: no cover
        no_gpu = True
    for item in items:
        if no_java and "scienceworld" in item.keywords:
            item.add_marker(pytest.mark.skip(reason="ScienceWorld needs Java 17 (apt-get install openjdk-17-jre-headless)"))
        if no_gpu and "gpu" in item.keywords:
            item.add_marker(pytest.mark.skip(reason="needs a CUDA device"))


@pytest.fixture(autouse=True)
def _own_wandb_service(monkeypatch):
    """A test that runs W&B in-process sets WANDB_SERVICE; subprocesses started later would inherit it and
    share pytest's W&B service, which keeps a kill -9'd run's id "in use" and refuses its resume."""
    monkeypatch.delenv("WANDB_SERVICE", raising=False)


@pytest.fixture(scope="session")
def londi_train():
    """Run `python -m londi.train ARGS` offline from the repository root; returns the CompletedProcess."""
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]

    def run(*args: str, timeout: int = 240) -> subprocess.CompletedProcess:
        env = {**os.environ, "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
        return subprocess.run(
            [sys.executable, "-m", "londi.train", *args],
            cwd=repo,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    return run
