"""Every config in configs/ composes, every `_target_` imports, and typos fail at composition."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException, MissingConfigException
from hydra.utils import get_object
from omegaconf import OmegaConf

import londi.config  # noqa: F401 - registers schemas
from londi.errors import ConfigError

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
MAIN_GROUPS = ("env", "switcher", "encoder", "logger")  # and `model`, in two roles (tests/test_lm_configs.py)


def _options(group: str) -> list[str]:
    root = CONFIGS / group
    return sorted(str(p.relative_to(root).with_suffix("")) for p in root.rglob("*.yaml"))


def _targets(node, path=""):
    if OmegaConf.is_dict(node) and not node._is_none():  # a dict-typed key may be null (e.g. prompt_options)
        for k, v in node.items_ex(resolve=False):
            if k == "_target_":
                yield path, v
            else:
                yield from _targets(v, f"{path}.{k}" if path else str(k))


def _compose(overrides=(), name="config"):
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        return compose(name, overrides=list(overrides))


def _check_targets(cfg):
    for path, target in _targets(cfg):
        assert callable(get_object(target)), f"{path}._target_ {target} is not callable"


def test_default_config_composes_and_targets_import():
    cfg = _compose()
    assert {*MAIN_GROUPS, "quick", "deepthink"} <= set(cfg.keys())
    assert cfg.env.id.startswith("BabyAI-Text-")
    _check_targets(cfg)


GROUP_OPTIONS = [
    (g, o) for g in MAIN_GROUPS if (CONFIGS / g).is_dir() for o in _options(g) if not o.endswith("base")
]
EXPERIMENTS = _options("experiment") if (CONFIGS / "experiment").is_dir() else []


@pytest.mark.parametrize("group,option", GROUP_OPTIONS, ids=[f"{g}={o}" for g, o in GROUP_OPTIONS])
def test_every_group_option_composes(group, option):
    cfg = _compose([f"{group}={option}"])
    assert cfg[group] is not None
    _check_targets(cfg[group])


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_experiment_preset_composes(name):
    cfg = _compose([f"+experiment={name}"])
    assert cfg.experiment_name == name
    _check_targets(cfg)


def test_other_yaml_files_load():
    """Files outside the londi-train groups (e.g. londi-distill's presets) are at least valid YAML."""
    main = set(MAIN_GROUPS) | {"experiment", "model"}
    for path in CONFIGS.rglob("*.yaml"):
        rel = path.relative_to(CONFIGS)
        if rel.parts[0] not in main:
            assert OmegaConf.load(path) is not None, rel


@pytest.mark.parametrize(
    "override,message",
    [
        ("total_step=5", "total_step"),  # misspelt top-level key
        ("seed=abc", "seed"),  # wrong type
        ("env.idd=x", "idd"),  # misspelt key in a schema-checked group
        ("logger.wandb.mode=onlin", "onlin"),  # not one of online|offline|disabled
        ("logger.wandb.projet=x", "projet"),
        ("switcher.cots=0.1", "cots"),  # key the switcher node does not have (struct mode)
    ],
)
def test_typos_fail_at_composition(override, message):
    with pytest.raises(ConfigCompositionException, match=message):
        _compose([override])


def test_unknown_group_option_fails():
    with pytest.raises(MissingConfigException, match="env/babyai_text/gotolocal"):
        _compose(["env=babyai_text/gotolocal"])


def test_env_configs_choose_default_models_and_the_command_line_wins():
    """The shipped DEEPTHINK is the default only on the levels where it met its bar (their env configs choose it);
    elsewhere the expert stays, and an explicit choice on the command line overrides either."""
    hf, expert = "londi.lm.hf.HFPolicy", "londi.lm.baselines.ExpertPolicy"
    assert _compose().deepthink._target_ == hf  # the default env, GoToLocal: 0.90
    for level in ("goto_local", "pickup_local", "mixed_train_local", "mixed_test_local"):
        cfg = _compose([f"env=babyai_text/{level}"])
        assert cfg.deepthink._target_ == hf and cfg.deepthink.path == "londi-assets:models/babyai_deepthink", level
        assert cfg.quick._target_ == hf and cfg.quick.path == "londi-assets:models/babyai_quick", level
    for level in ("put_next_local", "boss_level"):  # PutNextLocal: 0.58 < 0.60
        assert _compose([f"env=babyai_text/{level}"]).deepthink._target_ == expert, level
    assert _compose(["env=babyai_text/pickup_local", "model@deepthink=random"]).deepthink._target_.endswith("RandomPolicy")
    assert _compose(["env=babyai_text/put_next_local", "model@deepthink=distilled"]).deepthink._target_ == hf
    assert _compose(["env=babyai_text/goto_local", "model@deepthink=expert"]).deepthink._target_ == expert
    assert _compose(["env=scienceworld/boil"]).deepthink._target_ == expert


def test_scienceworld_env_schema():
    cfg = _compose(["env=scienceworld/boil"])
    assert cfg.env.id == "ScienceWorld-v0" and cfg.env.task == "boil" and cfg.env.step_limit == 100
    with pytest.raises(ConfigCompositionException, match="step_limt"):
        _compose(["env=scienceworld/boil", "env.step_limt=3"])


def test_max_episode_steps_is_each_envs_own_step_limit():
    """BabyAI-Text: `env.max_episode_steps` is the level's limit (null: the level's own). ScienceWorld: the limit
    is `env.step_limit`; `max_episode_steps` may only restate it, and is passed to it outside the config."""
    import envs
    from londi import build

    env = build.env_fn(["env.max_episode_steps=200"])()
    assert env.unwrapped.max_steps == 200 and env.spec.max_episode_steps == 200
    assert build.env_fn([])().spec.max_episode_steps is None  # the default: the level's own, no TimeLimit
    with pytest.raises(ValueError, match="max_episode_steps=50 and step_limit=100 .*disagree: set only step_limit"):
        build.env_fn(["env=scienceworld/boil", "+env.max_episode_steps=50"])()
    with pytest.raises(ConfigError, match="env: max_episode_steps=50 and step_limit=100"):  # before a run folder exists
        build.validate(build.config(["env=scienceworld/boil", "+env.max_episode_steps=50"]))
    with pytest.raises(ConfigError, match="max_episode_steps must be an int >= 1"):
        build.validate(build.config(["env.max_episode_steps=0"]))
    sw = envs.make("ScienceWorld-v0", task="boil", max_episode_steps=30)
    assert sw.unwrapped.step_limit == 30 and sw.spec.max_episode_steps == 30 and not sw.unwrapped.jvm.alive()
    assert envs.make("ScienceWorld-v0", task="boil").unwrapped.step_limit == 100


def test_cfg_job_prints_the_config():
    out = subprocess.run(
        [sys.executable, "-m", "londi.train", "--cfg", "job", "seed=7"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    cfg = OmegaConf.create(out)
    assert cfg.seed == 7 and "switcher" in cfg and "logger" in cfg


@pytest.mark.parametrize("script", ["londi-train", "londi-cascade"])
def test_console_scripts_find_their_configs_from_any_directory(script, tmp_path):
    """The installed entry points, started outside the repository, compose their primary config."""
    exe = Path(sys.executable).parent / script
    out = subprocess.run(
        [str(exe), "--cfg", "job", "seed=3"], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert OmegaConf.create(out.stdout).seed == 3


@pytest.mark.parametrize("override,message", [
    ("quick=hf", "quick is 'hf', not a config: choose it with model@quick=<option>"),  # the old syntax
    ("+switcher.cots=0.1", "switcher has no key cots"),
])
def test_what_composes_but_cannot_be_used_is_named_before_the_run(override, message):
    from londi import build
    from londi.errors import ConfigError

    with pytest.raises(ConfigError, match=message):
        build.validate(_compose([override]))


def test_a_run_folder_with_other_settings_is_not_resumed(tmp_path, londi_train):
    run = tmp_path / "run"
    first = londi_train("+experiment=smoke", f"hydra.run.dir={run}")
    assert first.returncode == 0, first.stderr[-2000:]
    other = londi_train("+experiment=smoke", "seed=5", f"hydra.run.dir={run}")
    assert other.returncode != 0 and "holds a run made with other settings" in other.stderr
    assert len(__import__("json").loads((run / "run_info.json").read_text())["starts"]) == 1  # left as it was


def test_an_override_the_chosen_setting_never_reads_is_refused(londi_train, tmp_path):
    from londi import build

    pid = build.config(["switcher=lagrangian"])
    with pytest.raises(ConfigError, match=r"switcher.lr given but never read with switcher.rule=pid"):
        build.check_overrides_read(pid, ["switcher=lagrangian", "switcher.lr=0.1"])
    build.check_overrides_read(pid, ["switcher.kp=0.1", "switcher.dqn.batch_size=32"])  # read: fine
    sgd = build.config(["switcher=lagrangian", "switcher.rule=sgd"])
    with pytest.raises(ConfigError, match=r"switcher.ki given but never read with switcher.rule=sgd"):
        build.check_overrides_read(sgd, ["switcher.rule=sgd", "switcher.ki=0.1"])
    with pytest.raises(ConfigError, match=r"switcher.ppo.n_steps given but never read with switcher.algo=dqn"):
        build.check_overrides_read(build.config(["switcher=londi"]), ["+switcher.ppo.n_steps=8"])
    proc = londi_train("switcher=lagrangian", "switcher.lr=0.1", "logger=disabled", f"hydra.run.dir={tmp_path / 'r'}")
    assert proc.returncode != 0 and "never read with switcher.rule=pid" in proc.stderr, proc.stderr[-2000:]
    assert not (tmp_path / "r").exists()
