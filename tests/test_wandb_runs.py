"""W&B runs of a sweep: runs of different settings are told apart by tags, and a resumed run's episodes
table holds the whole run."""

from __future__ import annotations

import csv

import pytest

from londi.config import compose
from londi.runner import run
from londi.train import build_loggers, wandb_identity
from tests.test_runner import _Crash, _run_args

ENV = "babyai_text/goto_local"


def _identity(*overrides: str, deepthink: str | None = None) -> dict:
    cfg = compose("config", list(overrides) + ([f"model@deepthink={deepthink}"] if deepthink else []))
    choices = {"env": ENV, "switcher": overrides[0].split("=")[1]}
    if deepthink:
        choices["model@deepthink"] = deepthink
    return wandb_identity(cfg, choices, None)


def _tag(identity: dict, prefix: str) -> str:
    (tag,) = [t for t in identity["tags"] if t.startswith(prefix)]
    return tag


def test_runs_sharing_a_name_differ_in_tags_and_seeds_share_the_config_tag():
    on, off = _identity("switcher=londi_b", "switcher.relabel=true"), _identity("switcher=londi_b", "switcher.relabel=false")
    assert (on["name"], on["group"]) == (off["name"], off["group"])  # the name users rely on is unchanged
    assert _tag(on, "config:") != _tag(off, "config:") and _tag(on, "algo:") == "algo:dqn"

    expert, rnd = _identity("switcher=londi", deepthink="expert"), _identity("switcher=londi", deepthink="random")
    assert expert["name"] == rnd["name"] == "londi-c0.1-s0"
    assert (_tag(expert, "deepthink:"), _tag(rnd, "deepthink:")) == ("deepthink:expert", "deepthink:random")
    assert _tag(expert, "config:") != _tag(rnd, "config:")
    assert _tag(_identity("switcher=londi", "switcher.algo=ppo"), "algo:") == "algo:ppo"

    s0, s1 = _identity("switcher=londi", "seed=0"), _identity("switcher=londi", "seed=1")
    assert s0["name"] != s1["name"] and _tag(s0, "config:") == _tag(s1, "config:")
    assert len(_tag(s0, "config:")) == len("config:") + 8


def test_wandb_config_carries_the_config_fingerprint(tmp_path):
    cfg = compose("config", ["switcher=londi", "logger.progress.mode=off", f"run_dir={tmp_path}"])
    choices = {"env": ENV, "switcher": "londi"}
    (lg,) = build_loggers(cfg, tmp_path, choices, {"wandb_id": "abc123", "fingerprint": "0123abcd"})
    try:
        tag = _tag(wandb_identity(cfg, choices, None), "config:")
        assert lg.run.config["config_fingerprint"] == tag.split(":", 1)[1]
        assert lg.run.config["run_fingerprint"] == "0123abcd"
    finally:
        lg.close()


def _episode_keys(rows) -> list[tuple]:
    return [(r["phase"], int(r["episode"]), int(r["global_step"])) for r in rows]


def test_resumed_wandb_episodes_table_holds_the_episodes_before_the_resume(tmp_path):
    from londi.loggers.wandb_logger import WandbLogger

    def logger() -> WandbLogger:
        return WandbLogger(tmp_path / "r", mode="disabled")

    def crash(step, metrics):
        if step == 260:
            raise _Crash

    with pytest.raises(_Crash):  # checkpoint at 200; the rows written past it are cut on resume
        run(**_run_args(tmp_path / "r"), loggers=[logger()], callbacks=[crash])
    resumed = logger()
    assert run(**_run_args(tmp_path / "r"), loggers=[resumed]).resumed_from == 200
    with open(tmp_path / "r" / "episodes.csv", newline="") as f:
        csv_rows = list(csv.DictReader(f))
    assert any(int(r["global_step"]) <= 200 for r in csv_rows)
    assert _episode_keys(resumed.episodes) == _episode_keys(csv_rows)
    assert all(isinstance(r["episode"], int) and isinstance(r["return"], float) for r in resumed.episodes)
