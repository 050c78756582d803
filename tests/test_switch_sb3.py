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


def _filled_dqn(n_envs: int = 2):
    q, d, enc = random_policy("q"), expert("d"), hashed(16)
    env = SwitchingVecEnv([SwitchingEnv(CorridorTextEnv(), q, d, encoder=enc, cost=0.1) for _ in range(n_envs)])
    sw = switcher("londi", "switcher.dqn.learning_starts=1000")  # fill the buffer, no update yet
    sw.setup(env, seed=0, total_steps=400)
    sw.learn(env, 200, lambda info: None)
    return sw.model


def test_lean_dqn_train_makes_the_same_updates_as_sb3s_own():
    import numpy as np
    import torch
    from stable_baselines3 import DQN

    steps, batch = 5, 32
    lean, sb3 = _filled_dqn(), _filled_dqn()
    lean.max_gradient_steps = None  # SB3's loop has no cap
    torch.manual_seed(0)
    with torch.no_grad():  # online and target networks differ, as they do between target updates
        for a, b in zip(lean.q_net.parameters(), sb3.q_net.parameters(), strict=True):
            a.add_(0.1 * torch.randn_like(a))
            b.copy_(a)
    np.random.seed(3)
    batches = [lean.replay_buffer.sample(batch) for _ in range(steps)]
    stacked = type(batches[0])(*(None if f is None else torch.cat(fs)
                                 for f, fs in zip(batches[0], zip(*batches, strict=True), strict=True)))
    lean.replay_buffer.sample = lambda n, env=None: stacked if n == steps * batch else pytest.fail("not stacked")
    queue = iter(batches)
    sb3.replay_buffer.sample = lambda n, env=None: next(queue)
    target_before = [p.clone() for p in lean.q_net_target.parameters()]
    lean.train(steps, batch)
    DQN.train(sb3, steps, batch)  # SB3's own loop on the same batches
    for a, b in zip(lean.q_net.parameters(), sb3.q_net.parameters(), strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
    assert any(not torch.equal(a, b) for a, b in zip(lean.q_net.parameters(), target_before, strict=True))
    assert all(torch.equal(a, b) for a, b in zip(lean.q_net_target.parameters(), target_before, strict=True))
    assert lean.logger.name_to_value["train/loss"] == pytest.approx(sb3.logger.name_to_value["train/loss"], rel=1e-4)


def test_max_gradient_steps_merges_more_steps_into_larger_batches_with_the_same_samples():
    model = _filled_dqn()
    assert model.max_gradient_steps == 4  # the default londi config
    sizes = []
    sample = model.replay_buffer.sample
    model.replay_buffer.sample = lambda n, env=None: sizes.append(n) or sample(n, env)
    model.train(16, 64)  # what n_envs=16 asks for with one step of 64 per env step
    assert model._n_updates == 4 and sizes == [16 * 64]  # 4 steps of 256: the same samples
    model.train(3, 64)  # under the cap: unchanged
    assert model._n_updates == 7 and sizes[-1] == 3 * 64
    model.max_gradient_steps = None
    model.train(16, 64)
    assert model._n_updates == 23


def test_max_gradient_steps_survives_a_reload(tmp_path):
    env = SwitchingVecEnv([SwitchingEnv(CorridorTextEnv(), random_policy("q"), expert("d"), encoder=hashed(16),
                                        cost=0.1)])
    sw = switcher("londi", "switcher.dqn.learning_starts=10", "switcher.dqn.max_gradient_steps=2")
    sw.setup(env, seed=0, total_steps=64)
    sw.learn(env, 16, lambda info: None)
    sw.save(tmp_path / "ckpt")
    sw.load(tmp_path / "ckpt")
    assert sw.model.max_gradient_steps == 2
    before = sw.model._n_updates
    sw.model.train(8, 8)
    assert sw.model._n_updates == before + 2
