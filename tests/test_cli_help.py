"""Every console script answers `--help` with the keys it takes (each is a Hydra app)."""

import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
# A key each app's help must show (from its primary config).
KEYS = {"londi-train": "total_steps", "londi-evaluate": "episodes", "londi-report": "metric",
        "londi-distill": "history_chunk", "londi-cascade": "log_every", "londi-demo": "switchers"}


def test_every_console_script_is_covered():
    assert set(SCRIPTS) == set(KEYS)


@pytest.mark.parametrize("script", sorted(KEYS))
def test_help_lists_the_keys(script):
    module = SCRIPTS[script].split(":")[0]
    out = subprocess.run([sys.executable, "-m", module, "--help"], cwd=REPO, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert KEYS[script] in out.stdout
    assert "Traceback" not in out.stdout + out.stderr
