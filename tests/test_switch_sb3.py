"""SB3 switchers: training writes no SB3 log folders (SB3's default logger makes /tmp/SB3-<date> per run)."""

import tempfile

import pytest

from londi.switch.env import SwitchingEnv
from londi.switch.toy import CorridorTextEnv
from londi.switch.vec import SwitchingVecEnv
from tests.helpers import expert, hashed, random_policy, switcher


@pytest.mark.parametrize("algo", ["dqn", "ppo"])
def test_learning_and_reloading_leave_no_sb3_log_folders(tmp_path, monkeypatch, algo):
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))  # where SB3's default logger would write
    env = SwitchingVecEnv([SwitchingEnv(CorridorTextEnv(), random_policy("q"), expert("d"), encoder=hashed(16),
                                        cost=0.1)])
    sw = switcher("londi", f"switcher.algo={algo}",
                  "switcher.dqn.learning_starts=10" if algo == "dqn" else "switcher.ppo.n_steps=32")
    sw.setup(env, seed=0, total_steps=64)
    seen = []
    sw.learn(env, 64, seen.append)
    assert len(seen) == 64
    sw.save(tmp_path / "ckpt")
    sw.load(tmp_path / "ckpt")
    sw.learn(env, 32 if algo == "ppo" else 8, seen.append)
    assert len(seen) in (72, 96)
    assert [p.name for p in scratch.iterdir() if p.name.startswith("SB3-")] == []
    if algo == "dqn":
        assert "losses/loss" in sw.losses  # training values still reach the runner through the in-memory logger
