"""The run directory: names, the resolved config with secrets removed, and the code version.

Why: a run must be reproducible and shareable from its folder alone (config + git commit), and a config
or a W&B page must never carry an API key. Keys are redacted by name (`is_secret_key`); API keys belong
in environment variables (e.g. the openai backend's `api_key_env`), never in a config.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import platform
import re
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from londi.checkpoints import read_json_record, write_text_atomic

REDACTED = "***REDACTED***"
RESOLVED_CONFIG = "config.yaml"  # the resolved, redacted config of the run (what londi-evaluate reloads)
RUN_INFO = "run_info.json"  # git commit, command line, host, start time

_SECRET = re.compile(r"api_?key|secret|passw(or)?d|token", re.IGNORECASE)
# Counts and limits that merely mention tokens are not secrets ("max_prompt_tokens", "prompt_tokens").
_NOT_SECRET = re.compile(r"tokens$|^max_|_env$", re.IGNORECASE)


def is_secret_key(key: str) -> bool:
    """True for keys named like *api_key*, *token*, *secret*, *password* (but not `max_*_tokens`, `*_env`).

    `*_env` keys (e.g. `api_key_env: OPENAI_API_KEY`) name the environment variable that holds the secret,
    which is safe and needed to reload the run.
    """
    return bool(_SECRET.search(key)) and not _NOT_SECRET.search(key)


def redact(obj: Any) -> Any:
    """A copy of a plain container (dicts/lists) with the values of secret-named keys replaced."""
    if isinstance(obj, Mapping):
        return {
            k: (REDACTED if is_secret_key(str(k)) and v is not None else redact(v)) for k, v in obj.items()
        }
    if isinstance(obj, list | tuple):
        return [redact(v) for v in obj]
    return obj


def resolved_container(cfg: DictConfig) -> dict:
    """The config as plain, resolved, redacted dicts (for W&B, config.yaml, and logs)."""
    return redact(OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False, enum_to_str=True))


def _fmt(x: Any) -> str:
    if isinstance(x, float):
        return f"{x:g}"
    if isinstance(x, str):
        try:
            return f"{float(x):g}"
        except ValueError:
            return x
    return str(x)


def _missing(x: Any) -> bool:
    return x is None or (isinstance(x, float) and x != x) or str(x) in ("", "None", "null", "nan")


# the knob that tells runs of one switcher apart when it has no budget or cost (config key, short name):
# random p, Lagrangian target calls d, cascade mu
SETTING_KEYS = (("p", "p"), ("target_calls", "d"), ("mu", "mu"))


def run_name_from_parts(switcher: Any, budget: Any = None, cost: Any = None, seed: Any = None, p: Any = None,
                        target_calls: Any = None, mu: Any = None) -> str:
    """`<switcher>-b<budget>` / `-c<cost>` / `-p<p>` / `-d<target_calls>` / `-mu<mu>`, then `-s<seed>` (W&B
    name, folder): two runs of one switcher at different settings never share a name, so a sweep at a new
    Lagrangian target or random p beside an earlier one makes new run folders instead of clashing with them."""
    name = str(switcher).replace("/", "_")
    knobs = {"p": p, "target_calls": target_calls, "mu": mu}
    if not _missing(budget):
        name += f"-b{_fmt(budget)}"
    elif not _missing(cost):
        name += f"-c{_fmt(cost)}"
    else:
        name += next((f"-{short}{_fmt(knobs[k])}" for k, short in SETTING_KEYS if not _missing(knobs[k])), "")
    if not _missing(seed):
        name += f"-s{seed}"
    return name


def run_name(cfg: DictConfig, switcher_choice: str | None = None) -> str:
    """Name a run from its config: switcher option, budget, cost or setting, and seed."""
    return switcher_run_name(switcher_choice, cfg.get("switcher") or {}, cfg.get("seed"))


def switcher_run_name(switcher_choice: str | None, switcher: Any, seed: Any = None) -> str:
    """The run name from the switcher node itself (the `londi.run_name` resolver behind hydra.run.dir and
    hydra.sweep.subdir), so the keys that tell settings apart are listed once, in SETTING_KEYS."""
    choice = switcher_choice or _target_name(switcher) or "run"
    knobs = {k: _get(switcher, k) for k, _ in SETTING_KEYS}
    return run_name_from_parts(choice, _get(switcher, "budget"), _get(switcher, "cost"), seed, **knobs)


def env_name(cfg: DictConfig, env_choice: str | None = None) -> str:
    """Short env name for W&B groups/tags: the group choice (babyai_text/goto_local) or the env id."""
    if env_choice:
        return env_choice.replace("/", "-")
    env = cfg.get("env") or {}
    return str(env.get("id", "env")) if isinstance(env, Mapping | DictConfig) else "env"


def settings_fingerprint(cfg: DictConfig) -> str:
    """The run folder's config fingerprint (`londi.config.config_fingerprint`) with the seed fixed: the W&B
    `config:` tag. Runs that differ only in seed share it (so seeds of one setting group together); runs that
    differ in any other setting (a model, relabel, algo, encoder...) never do, though they share a name."""
    import copy

    from omegaconf import open_dict, read_write

    from londi.config import config_fingerprint

    fixed = copy.deepcopy(cfg)
    with read_write(fixed), open_dict(fixed):
        fixed.seed = 0  # nested `${seed}` (model seeds) follow it
    return config_fingerprint(fixed)


def model_tag(node: Any, option: str | None = None) -> str:
    """What a role's model is, for a W&B tag: its config option (configs/model/) and the basename of its path
    or served model when it has one (`distilled/babyai_quick`, `hf/flan-t5-large`, `random`)."""
    where = _get(node, "path") or _get(node, "model")
    base = re.split(r"[/:]", str(where).rstrip("/"))[-1] if where else None
    head = option or _target_name(node) or "model"
    return f"{head}/{base}" if base else head


def _get(node: Any, key: str) -> Any:
    try:
        return node.get(key) if hasattr(node, "get") else None
    except Exception:  # a missing/unresolvable value is simply not part of the name
        return None


def _target_name(node: Any) -> str | None:
    target = _get(node, "_target_")
    return str(target).rsplit(".", 1)[-1] if target else None


def git_info(start: str | Path | None = None) -> dict[str, Any]:
    """`{"commit": sha or None, "dirty": bool or None}` of the repository holding the londi package."""
    here = Path(start) if start else Path(__file__).resolve().parent
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
        return {"commit": sha, "dirty": bool(status.strip())}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def write_run_files(cfg: DictConfig, run_dir: str | Path, extra: Mapping[str, Any] | None = None) -> dict:
    """Write `config.yaml` (resolved, redacted) and `run_info.json` (git commit, command, host, hardware) to run_dir.

    Every start of the run (a resume too) is appended to run_info.json's `starts`; the top-level fields
    describe the latest start, and `wandb_id` stays the first start's (a resumed run continues its W&B
    run). Also redacts Hydra's own `.hydra/config.yaml` and `.hydra/overrides.yaml` when present, since a
    secret typed on the command line would otherwise be kept there. Returns the run info.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    container = resolved_container(cfg)
    write_text_atomic(run_dir / RESOLVED_CONFIG, OmegaConf.to_yaml(OmegaConf.create(container)))
    path = run_dir / RUN_INFO
    previous = read_run_info(run_dir)
    start = {
        **git_info(),
        "command": " ".join(sys.argv),
        "host": socket.gethostname(),
        "hardware": hardware(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    info = {
        **start,
        **(dict(extra) if extra else {}),
        "wandb_id": previous.get("wandb_id") or uuid.uuid4().hex[:12],
        "starts": [*previous.get("starts", []), start],
    }
    write_text_atomic(path, json.dumps(info, indent=2, default=str) + "\n")
    _redact_hydra_dir(run_dir / ".hydra")
    return info


def hardware() -> str:
    """The CPU model and core count ("Intel(R) Xeon(R) Processor, 2 cores"): a seeded run repeats itself
    exactly on the same hardware, but float rounding differs between CPU types, so a learned switcher
    trained elsewhere is another draw, not the same run."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores"


def read_run_info(run_dir: str | Path) -> dict:
    """run_info.json of a run folder ({} when the folder holds none yet).

    An unreadable one is an error, not {}: its W&B id and the record of the run's starts would be lost.
    """
    from londi.errors import ConfigError

    return read_json_record(Path(run_dir) / RUN_INFO, "restore it, or delete it to go on with a new W&B run id and "
                            "no record of the earlier starts", ConfigError)


def model_fingerprints(quick: Any, deepthink: Any) -> dict[str, str | None]:
    """The weights' fingerprint of each role (`LMPolicy.fingerprint`), recorded in run_info.json."""
    return {"quick": quick.fingerprint(), "deepthink": deepthink.fingerprint()}


def check_same_models(run_dir: str | Path, models: Mapping[str, str | None]) -> None:
    """Refuse to resume or re-evaluate a run with other weights than it was trained with: a model path
    (e.g. a shipped asset replaced by a newer one) can point at new weights under the same config."""
    from londi.errors import ConfigError

    before = read_run_info(run_dir).get("models") or {}
    for role, now in models.items():
        was = before.get(role)
        if was is not None and now is not None and was != now:
            raise ConfigError(
                f"{run_dir} was made with other {role.upper()} weights (fingerprint {was}, the model at its path "
                f"now gives {now}): point {role}.path at the weights it was made with, or choose another folder")


RUN_LOCK = ".lock"


@contextlib.contextmanager
def run_folder_lock(run_dir: str | Path) -> Iterator[None]:
    """Hold the run folder for this process: a second run started on the same folder (the same sweep launched
    twice, or a resume while the first run is alive) stops at once with the holder's pid, instead of both
    appending to one metrics.csv and overwriting each other's checkpoints. The OS drops the lock when the
    process dies (kill -9 included), so a run cut off is resumed by simply running it again."""
    from londi.errors import ConfigError

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(run_dir / RUN_LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
            raise ConfigError(
                f"{run_dir} is in use by another londi process (pid {holder} on this machine): wait for it to end, "
                "stop it, or choose another folder (hydra.run.dir / hydra.sweep.dir)") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def _redact_hydra_dir(hydra_dir: Path) -> None:
    cfg_file = hydra_dir / "config.yaml"
    if cfg_file.exists():
        raw = OmegaConf.to_container(OmegaConf.load(cfg_file), resolve=False)
        red = redact(raw)
        if red != raw:
            cfg_file.write_text(OmegaConf.to_yaml(OmegaConf.create(red)))
    from londi.config import override_key

    ov_file = hydra_dir / "overrides.yaml"
    if ov_file.exists():
        overrides = OmegaConf.to_container(OmegaConf.load(ov_file))
        if isinstance(overrides, list):
            clean = []
            for o in overrides:
                key = override_key(o)
                clean.append(
                    f"{key}={REDACTED}" if "=" in str(o) and is_secret_key(key.rsplit(".", 1)[-1]) else o
                )
            if clean != overrides:
                ov_file.write_text(OmegaConf.to_yaml(OmegaConf.create(clean)))


def load_run_config(run_dir: str | Path) -> DictConfig:
    """The config a run was made with: our resolved `config.yaml`, else Hydra's `.hydra/config.yaml`."""
    run_dir = Path(run_dir)
    for path in (run_dir / RESOLVED_CONFIG, run_dir / ".hydra" / "config.yaml"):
        if path.exists():
            return OmegaConf.load(path)
    raise FileNotFoundError(
        f"{run_dir} holds no {RESOLVED_CONFIG} or .hydra/config.yaml: pass the directory of a londi-train run "
        "(outputs/<date>/<time>_<name> or multirun/<date>/<time>/<n>_<name>)"
    )
