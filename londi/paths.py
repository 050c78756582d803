"""Where the project's Hydra configs live, as an absolute path.

Hydra resolves a relative `config_path` against the calling module's package when the app is started by a
console script (`londi-train`), which fails for the top-level `configs/` folder; an absolute path works
from any working directory, for `londi-train` and `python -m londi.train` alike.
"""

from pathlib import Path

CONFIG_DIR = str(Path(__file__).resolve().parent.parent / "configs")
