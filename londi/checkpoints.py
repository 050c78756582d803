"""Checkpoint folders of a run: written atomically, verified before they are read, the previous one kept.

Why: a checkpoint that is corrupt (a disk full mid-write, a file overwritten by hand) must never make a
run silently start over or load half a state. Each checkpoint is a folder `step_<N>/` whose files are
listed with their SHA-256 in `manifest.json` (written last, so a folder without a valid manifest is
incomplete); `latest` names the newest. Loading verifies the manifest, falls back to the previous
checkpoint with a warning when the newest is unreadable, and otherwise fails with one line that names the
folder and what to do.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
LATEST = "latest"
_STEP_DIR = re.compile(r"^step_(\d+)$")
T = TypeVar("T")


class CheckpointError(RuntimeError):
    """No checkpoint of a run can be read; the message names the folder and the way out."""


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write `text` to a sibling temporary file, then rename it over `path`: a kill mid-write leaves the
    old file or the new one, never half of one (a half-written run record would lose the run's W&B id)."""
    path = Path(path)
    tmp = path.with_name(f"{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def read_json_record(path: str | Path, fix: str, error: type[Exception] = ValueError) -> dict:
    """A run's JSON record, {} when it is absent; an unreadable one raises `error` naming the file and `fix`
    (read as {}, the next write would replace it and silently drop what it held)."""
    path = Path(path)
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as e:
        raise error(f"{path} is not readable JSON ({e}): {fix}") from e


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def verify(folder: Path) -> None:
    """Raise `CheckpointError` unless every file listed in the folder's manifest has its recorded hash."""
    manifest = folder / MANIFEST
    try:
        files = json.loads(manifest.read_text())["files"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f"{manifest} is missing or unreadable ({type(e).__name__})") from None
    for rel, digest in files.items():
        path = folder / rel
        if not path.is_file():
            raise CheckpointError(f"{path} is missing")
        if _sha256(path) != digest:
            raise CheckpointError(f"{path} does not match its checksum (corrupt or modified)")


class CheckpointStore:
    """The `checkpoints/` folder of a run: `save(step, write)` and `load(read)` (newest readable first)."""

    def __init__(self, directory: str | Path, keep: int = 2):
        if keep < 1:
            raise ValueError(f"keep must be >= 1 checkpoints, got {keep}")
        self.dir = Path(directory)
        self.keep = keep

    def steps(self) -> list[int]:
        """Steps of the checkpoint folders present, newest first (complete or not)."""
        if not self.dir.is_dir():
            return []
        found = (_STEP_DIR.match(p.name) for p in self.dir.iterdir() if p.is_dir())
        return sorted((int(m.group(1)) for m in found if m), reverse=True)

    def save(self, step: int, write: Callable[[Path], None]) -> Path:
        """Write a checkpoint with `write(folder)`, then its manifest, then move it into place atomically."""
        final, tmp = self.dir / f"step_{step}", self.dir / f"step_{step}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        write(tmp)
        files = {str(p.relative_to(tmp)): _sha256(p) for p in sorted(tmp.rglob("*")) if p.is_file()}
        (tmp / MANIFEST).write_text(json.dumps({"step": step, "files": files}, indent=1))
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        write_text_atomic(self.dir / LATEST, final.name)
        for old in self.steps()[self.keep :]:
            shutil.rmtree(self.dir / f"step_{old}", ignore_errors=True)
        return final

    def _candidates(self) -> list[Path]:
        """The folder `latest` names (if it names one), then every step folder, newest first."""
        out: list[Path] = []
        pointer = self.dir / LATEST
        if pointer.exists():
            try:
                name = pointer.read_text(errors="strict").strip()
            except (OSError, UnicodeDecodeError):
                name = ""
            if _STEP_DIR.match(name) and (self.dir / name).is_dir():
                out.append(self.dir / name)
            else:
                warnings.warn(f"{pointer} does not name a checkpoint folder; looking for the newest valid one",
                              stacklevel=2)
        out += [self.dir / f"step_{s}" for s in self.steps() if self.dir / f"step_{s}" not in out]
        return out

    def load(self, read: Callable[[Path], T]) -> tuple[T, Path] | None:
        """`read(folder)` on the newest checkpoint that verifies and reads; None when there is none at all.

        A newer checkpoint that fails is reported with a warning before the previous one is tried; if every
        one fails, `CheckpointError` says which and what to do.
        """
        candidates = self._candidates()
        errors: list[str] = []
        for folder in candidates:
            try:
                verify(folder)
                return read(folder), folder
            except Exception as e:  # any failure to read a checkpoint: try the previous one
                reason = str(e) if isinstance(e, CheckpointError) else f"{type(e).__name__}: {e}"
                errors.append(f"{folder.name}: {reason}")
                msg = f"checkpoint {folder} is unreadable ({reason})"
                if folder is not candidates[-1]:
                    msg += "; falling back to the previous checkpoint"
                warnings.warn(msg, stacklevel=2)
                log.warning(msg)
        if candidates:
            raise CheckpointError(
                f"no readable checkpoint in {self.dir} ({'; '.join(errors)}): delete {self.dir.parent} to start "
                "this run over, or restore its checkpoints")
        return None
