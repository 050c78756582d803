"""One construction path: the Python API and `londi-train` build the same objects from the same overrides."""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from londi import build

REPO = Path(__file__).resolve().parents[1]
CASES = {  # switcher -> overrides a user would type
    "londi": ["switcher.cost=0.05", "switcher.dqn.train_freq=2"],
    "londi_b": ["switcher.budget=2"],
    "lagrangian": ["switcher.target_calls=3", "switcher.rule=sgd"],
    "always_quick": [],
    "always_deepthink": [],
    "random": ["switcher.p=0.2"],
    "heuristic": ["switcher.stall_steps=5"],
    "oracle": [],
    "cascade": ["switcher.mu=0.4"],
}


def settings(obj) -> dict:
    """An object's plain settings (numbers, strings, flags, lists, dicts), what two builds must agree on."""
    plain = (int, float, str, bool, type(None), list, tuple, dict)
    return {k: v for k, v in vars(obj).items() if isinstance(v, plain) and not k.startswith("_")}


def composed_by_londi_train(overrides: list[str]):
    out = subprocess.run([sys.executable, "-m", "londi.train", *overrides, "--cfg", "job"], cwd=REPO,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return OmegaConf.create(out.stdout)


@pytest.mark.parametrize("name", sorted(CASES))
def test_python_api_and_londi_train_build_the_same_switcher(name):
    overrides = [f"switcher={name}", "seed=4", *CASES[name]]
    api = build.switcher(overrides)
    app = build.switcher(composed_by_londi_train(overrides))
    assert type(api) is type(app)
    assert settings(api) == settings(app)
    assert settings(api) or not inspect.signature(type(api)).parameters  # not vacuous where there are settings
    if CASES[name]:  # the first override reached the object
        key, value = CASES[name][0].split("=")
        assert float(getattr(api, key.split(".")[1])) == float(value)
