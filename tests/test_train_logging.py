"""Run-folder provenance (secrets redacted, git commit, names) and the W&B / progress loggers."""

from __future__ import annotations

import io
import json

import pytest
from omegaconf import OmegaConf

from londi.loggers.progress import ProgressLogger
from londi.rundir import REDACTED, is_secret_key, load_run_config, redact, run_name, write_run_files


@pytest.mark.parametrize(
    "key,secret",
    [
        ("api_key", True),
        ("OPENAI_API_KEY", True),
        ("hf_token", True),
        ("client_secret", True),
        ("db_password", True),
        ("max_prompt_tokens", False),
        ("prompt_tokens", False),
        ("api_key_env", False),  # names the variable holding the key: needed to reload, not a secret
        ("cost", False),
    ],
)
def test_secret_key_names(key, secret):
    assert is_secret_key(key) is secret


def test_write_run_files_redacts_and_records_commit(tmp_path):
    cfg = OmegaConf.create(
        {
            "deepthink": {
                "api_key": "sk-live-123",
                "api_key_env": "OPENAI_API_KEY",
                "max_prompt_tokens": 256,
            },
            "logger": {"wandb": {"token": "abc"}},
            "seed": 3,
            "name": "${seed}-x",
        }
    )
    hydra_dir = tmp_path / ".hydra"
    hydra_dir.mkdir()
    OmegaConf.save(cfg, hydra_dir / "config.yaml")
    (hydra_dir / "overrides.yaml").write_text("- deepthink.api_key=sk-live-123\n- seed=3\n")
    info = write_run_files(cfg, tmp_path, extra={"choices": {"switcher": "londi"}})
    for path in (tmp_path / "config.yaml", hydra_dir / "config.yaml", hydra_dir / "overrides.yaml"):
        assert "sk-live-123" not in path.read_text(), path
    saved = load_run_config(tmp_path)
    assert saved.deepthink.api_key == REDACTED and saved.logger.wandb.token == REDACTED
    assert saved.deepthink.api_key_env == "OPENAI_API_KEY" and saved.deepthink.max_prompt_tokens == 256
    assert saved.name == "3-x"  # resolved
    on_disk = json.loads((tmp_path / "run_info.json").read_text())
    assert on_disk["choices"] == {"switcher": "londi"} and on_disk["commit"] == info["commit"]
    assert info["commit"] is None or len(info["commit"]) == 40


def test_a_second_start_keeps_the_wandb_id_and_an_unreadable_record_is_an_error(tmp_path):
    from londi.errors import ConfigError

    cfg = OmegaConf.create({"seed": 3})
    first = write_run_files(cfg, tmp_path)
    second = write_run_files(cfg, tmp_path)
    assert second["wandb_id"] == first["wandb_id"] and len(second["starts"]) == 2
    (tmp_path / "run_info.json").write_text('{"wandb_id": "abc", "sta')  # cut off mid-write by hand
    with pytest.raises(ConfigError, match=r"run_info.json is not readable JSON .*delete it"):
        write_run_files(cfg, tmp_path)
    assert (tmp_path / "run_info.json").read_text().endswith('"sta')  # left as it was, not replaced by a new id
    assert not list(tmp_path.glob("*.tmp"))


def test_redact_walks_lists():
    assert redact({"a": [{"password": "x"}, 1]}) == {"a": [{"password": REDACTED}, 1]}


def test_run_name_uses_budget_or_cost_and_seed():
    cfg = OmegaConf.create({"switcher": {"budget": 4, "cost": 0.1}, "seed": 2})
    assert run_name(cfg, "londi_b") == "londi_b-b4-s2"
    cfg = OmegaConf.create({"switcher": {"cost": 0.05}, "seed": 0})
    assert run_name(cfg, "londi") == "londi-c0.05-s0"


def test_run_names_tell_settings_of_one_switcher_apart():
    """A second Lagrangian target (or random p, cascade mu) swept into a folder beside the first makes new
    run folders: the sweep subdir and the W&B name carry the knob."""
    assert run_name(OmegaConf.create({"switcher": {"target_calls": 5.0}, "seed": 1}), "lagrangian") == "lagrangian-d5-s1"
    assert run_name(OmegaConf.create({"switcher": {"p": 0.25}, "seed": 0}), "random") == "random-p0.25-s0"
    assert run_name(OmegaConf.create({"switcher": {"mu": 0.3}, "seed": 0}), "cascade") == "cascade-mu0.3-s0"
    from hydra import compose, initialize_config_dir
    from hydra.core.hydra_config import HydraConfig

    import londi.config  # noqa: F401 - the schemas the configs name
    from londi.paths import CONFIG_DIR

    names, run_dirs = set(), set()
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        for overrides in (["switcher=lagrangian", "switcher.target_calls=2"], ["switcher=lagrangian", "switcher.target_calls=5"],
                          ["switcher=londi_b", "switcher.budget=8", "seed=2"], ["switcher=londi", "switcher.cost=0.05"]):
            cfg = compose("config", overrides, return_hydra_config=True)
            cfg.hydra.job.num = 0
            HydraConfig.instance().set_config(cfg)
            names.add(cfg.hydra.sweep.subdir)
            run_dirs.add(cfg.hydra.run.dir.split("/")[-1].rsplit("-", 1)[0])  # the run folder, less its fingerprint
    assert names == {"0_lagrangian-d2-s0", "0_lagrangian-d5-s0", "0_londi_b-b8-s2", "0_londi-c0.05-s0"}
    assert run_dirs == {n.split("_", 1)[1] for n in names}


def test_progress_lines_when_not_a_terminal():
    out = io.StringIO()
    p = ProgressLogger(100, mode="auto", every_seconds=0.0, stream=out)
    assert p.mode == "lines"
    p.log_metrics(50, {"switch/deepthink_frac": 0.25, "charts/success_rate": 0.5})
    p.close()
    lines = out.getvalue().splitlines()
    assert (
        lines[0].startswith("train 50/100 (50%)")
        and "deepthink=0.25" in lines[0]
        and "success=0.50" in lines[0]
    )
    assert lines[-1].endswith("done")
    with pytest.raises(ValueError, match="progress.mode"):
        ProgressLogger(10, mode="fancy")


def test_progress_bar_mode_updates_tqdm():
    out = io.StringIO()
    p = ProgressLogger(10, mode="bar", stream=out)
    p.log_metrics(4, {"switch/deepthink_frac": 0.5})
    assert p._bar.n == 4
    p.close()
    assert "deepthink=0.50" in out.getvalue()


def test_wandb_offline_run_per_logger_and_failed_exit_code(tmp_path):
    from londi.loggers.wandb_logger import WandbLogger

    dirs = []
    for i, failed in enumerate((False, True)):
        lg = WandbLogger(
            tmp_path / f"job{i}", config={"seed": i, "api_key": REDACTED}, mode="offline", name=f"job{i}"
        )
        lg.log_metrics(10, {"charts/success_rate": 0.5})
        lg.log_episode({"phase": "train", "success": True})
        lg.close(failed=failed)
        runs = list((tmp_path / f"job{i}" / "wandb").glob("offline-run-*"))
        assert len(runs) == 1, runs
        dirs.append(runs[0])
    assert dirs[0].name != dirs[1].name
    with pytest.raises(ValueError, match="wandb.mode"):
        WandbLogger(tmp_path / "bad", mode="onlin")
