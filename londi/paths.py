"""Where the project's Hydra configs live, as an absolute path.

The repository keeps them in the top-level `configs/`; an installed package has them as the package data
`londi/configs` (pyproject.toml maps one onto the other). Hydra resolves a relative `config_path` against
the calling module's package when the app is started by a console script, so the apps take this absolute
path instead: it works from any working directory, for `londi-train` and `python -m londi.train` alike.
"""

from pathlib import Path

_HERE = Path(__file__).resolve().parent
CONFIG_DIR = str(_HERE / "configs" if (_HERE / "configs" / "config.yaml").is_file() else _HERE.parent / "configs")
