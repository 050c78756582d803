"""The one construction path: every object of an experiment is built from its composed config.

`londi-train`, `londi-evaluate`, the scripts, the tests and user code all build switchers, encoders, LM
policies and env factories here, from a config composed by Hydra (`londi.config.compose`), so the same
overrides always give the same objects:

    from londi import build
    parts = build.components(["switcher=londi", "switcher.cost=0.05", "model@deepthink=distilled"])
    sw = build.switcher(["switcher=londi_b", "switcher.budget=2"])      # just one group
    quick = build.model(["model@quick=hf", "quick.path=/models/x"], role="quick")

Each builder takes a composed config or a list of overrides. Group nodes are converted to plain
containers first (choices such as `algo: dqn` arrive as strings), then `hydra.utils.instantiate`d.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from londi.config import compose

Overrides = Sequence[str]


def config(cfg: DictConfig | Overrides = ()) -> DictConfig:
    """`cfg` itself, or `londi-train`'s config composed with these overrides."""
    return cfg if isinstance(cfg, DictConfig) else compose("config", list(cfg))


def instantiate_node(node: Any, **kwargs: Any) -> Any:
    """`hydra.utils.instantiate` on a plain copy of `node` (resolved, choices as strings)."""
    from hydra.errors import InstantiationException

    plain = OmegaConf.to_container(node, resolve=True, enum_to_str=True) if OmegaConf.is_config(node) else node
    try:
        return instantiate(plain, **kwargs)
    except InstantiationException as e:  # the constructor's own error (type and message) is the useful one
        if e.__cause__ is not None:
            raise e.__cause__ from None
        raise


# what a required key means, where its name does not say it
_MISSING_HINTS = {".num_params": " (num_params: the served model's parameter count, e.g. 8e9; its FLOPs are "
                                 "2 x num_params x tokens)"}


# (switcher key, its value, the override prefixes that switcher setting never reads, why): a sweep over them
# would make runs that differ only in their folder names (each value changes the config fingerprint)
_UNREAD_UNDER = (
    ("rule", "pid", ("switcher.lr",), "switcher.lr is the sgd rule's step size; rule=pid reads kp, ki, kd"),
    ("rule", "sgd", ("switcher.kp", "switcher.ki", "switcher.kd"), "kp, ki, kd are the pid rule's gains; rule=sgd "
     "reads lr"),
    ("algo", "dqn", ("switcher.ppo.",), "switcher.ppo.* configures PPO; algo=dqn reads switcher.dqn.*"),
    ("algo", "ppo", ("switcher.dqn.",), "switcher.dqn.* configures DQN; algo=ppo reads switcher.ppo.*"),
)


def check_overrides_read(cfg: DictConfig, overrides: Sequence[str]) -> None:
    """A command-line override of a switcher key that the chosen setting never reads is a ConfigError (a
    sweep over it would give identical runs under different names)."""
    from londi.errors import ConfigError

    sw = cfg.get("switcher")
    if not isinstance(sw, DictConfig):
        return
    from londi.config import override_key

    keys = [override_key(o) for o in overrides]
    for field, value, prefixes, why in _UNREAD_UNDER:
        if str(sw.get(field, "")) != value:
            continue
        unread = [k for k in keys if any(k == p or (p.endswith(".") and k.startswith(p)) for p in prefixes)]
        if unread:
            raise ConfigError(f"{', '.join(unread)} given but never read with switcher.{field}={value}: {why}. "
                              f"Drop the override, or set switcher.{field} to the setting that reads it")


def env_fn(cfg: DictConfig | Overrides = ()) -> Callable[[], Any]:
    """A zero-argument factory of fresh text envs (one per call); each in its own worker process when
    `env_processes` says so (null: ScienceWorld envs when n_envs > 1, so their steps overlap)."""
    c = config(cfg)
    make = instantiate_node(c.env, _partial_=True)
    workers = c.get("env_processes")
    if workers is None:
        workers = int(c.get("n_envs", 1)) > 1 and str(c.env.get("id", "")).startswith("ScienceWorld")
    if not workers:
        return make
    from functools import partial

    from envs.subproc import SubprocTextEnv

    return partial(SubprocTextEnv, make)


def model(cfg: DictConfig | Overrides = (), role: str = "quick") -> Any:
    """The LM policy in `role` (quick | deepthink)."""
    if role not in ("quick", "deepthink"):
        raise ValueError(f"role must be 'quick' or 'deepthink', got {role!r}")
    return instantiate_node(config(cfg)[role])


def encoder(cfg: DictConfig | Overrides = ()) -> Any:
    c = config(cfg)
    return instantiate_node(c.encoder) if c.get("encoder") is not None else None


def switcher(cfg: DictConfig | Overrides = ()) -> Any:
    return instantiate_node(config(cfg).switcher)


@dataclass
class Components:
    """Everything one run needs, built from one config."""

    cfg: DictConfig
    env_fn: Callable[[], Any]
    quick: Any
    deepthink: Any
    encoder: Any
    switcher: Any


def components(cfg: DictConfig | Overrides = ()) -> Components:
    c = config(cfg)
    return Components(cfg=c, env_fn=env_fn(c), quick=model(c, "quick"), deepthink=model(c, "deepthink"),
                      encoder=encoder(c), switcher=switcher(c))


_HYDRA_KEYS = frozenset({"_target_", "_convert_", "_partial_", "_recursive_", "_args_"})


def _missing_keys(node: Any, where: str = "") -> list[str]:
    """Dotted keys whose value is `???`, found without resolving any interpolation."""
    from omegaconf import ListConfig

    out: list[str] = []
    keys = range(len(node)) if isinstance(node, ListConfig) else [k for k in node if k != "hydra"]
    for k in keys:
        child = node._get_node(k)
        path = f"{where}.{k}" if where else str(k)
        if isinstance(child, (DictConfig, ListConfig)):
            if child._is_missing():
                out.append(path)
            elif not child._is_none():
                out += _missing_keys(child, path)
        elif child is not None and child._is_missing():
            out.append(path)
    return out


def validate(cfg: DictConfig) -> None:
    """Fail with one clear `ConfigError` on what composition lets through: a value left `???`, a key that
    the `_target_` it configures does not take (`+switcher.cots=1`), a run length that is not positive.
    Cheap; call it before creating anything."""
    import inspect

    from hydra.utils import get_method

    from londi.errors import ConfigError

    for key, how in (("quick", "model@quick=<option>"), ("deepthink", "model@deepthink=<option>"),
                     ("switcher", "switcher=<option>"), ("env", "env=<option>")):
        node = cfg._get_node(key) if key in cfg else None
        if node is not None and not isinstance(node, DictConfig):
            raise ConfigError(f"{key} is {node._value()!r}, not a config: choose it with {how} "
                              f"(the options are in configs/{'model' if key in ('quick', 'deepthink') else key}/)")
    missing = sorted(_missing_keys(cfg))
    if missing:
        hint = next((h for suffix, h in _MISSING_HINTS.items() for k in missing if k.endswith(suffix)), "")
        raise ConfigError(f"no value for {', '.join(missing)}: set {'it' if len(missing) == 1 else 'them'} on the "
                         f"command line, e.g. {missing[0]}=...{hint}")

    def check(node: Any, where: str) -> None:
        if isinstance(node, DictConfig) and not node._is_none():  # a dict-typed key may be null
            target = node.get("_target_")
            if target is not None:
                try:
                    fn = get_method(str(target))
                except Exception as e:
                    raise ConfigError(f"{where}._target_={target!r} cannot be imported: {e}") from None
                params = inspect.signature(fn).parameters
                if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
                    unknown = sorted(k for k in node if k not in params and k not in _HYDRA_KEYS)
                    if unknown:
                        valid = sorted(k for k in params if k not in ("self", "meter"))
                        raise ConfigError(f"{where} has no key {', '.join(unknown)} ({target} takes: "
                                         f"{', '.join(valid)})")
            for k in node:
                if k != "hydra":
                    check(node._get_node(k), f"{where}.{k}" if where else str(k))

    check(cfg, "")
    env_id = cfg.get("env", {}).get("id") if isinstance(cfg.get("env"), DictConfig) else None
    if env_id is not None:
        import envs

        envs.check_id(str(env_id))
        try:
            envs.with_step_limit(str(env_id), {k: cfg.env[k] for k in cfg.env if k != "_target_"})
        except ValueError as e:
            raise ConfigError(f"env: {e}") from None
    positive = {"total_steps": 1, "eval_episodes": 0, "eval_every": 0, "checkpoint_every": 0, "threads": 1, "n_envs": 1}
    for key, low in positive.items():
        value = cfg.get(key)
        if value is not None and int(value) < low:
            raise ConfigError(f"{key}={value} is out of range: it must be >= {low}")
