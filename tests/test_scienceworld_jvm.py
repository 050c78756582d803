"""ScienceWorld JVM lifetime: restart after death, one JVM per vector-env member, nothing leaked on close."""

from __future__ import annotations

import os
import signal

import gymnasium as gym
import pytest

import envs  # noqa: F401

pytestmark = pytest.mark.scienceworld


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:  # a zombie is not running
        return f.read().split(")")[-1].split()[0] != "Z"


def test_dead_jvm_is_restarted_and_episode_reported_failed():
    env = gym.make("ScienceWorld-v0", task="find-living-thing", variation=0, heap="512m")
    try:
        env.reset(seed=0)
        jvm = env.unwrapped.jvm
        old = jvm.pid
        os.kill(old, signal.SIGKILL)  # the JVM this test started
        jvm._proc.wait(timeout=5)
        _, reward, term, trunc, info = env.step("look around")
        assert (reward, term, trunc, info["jvm_restarted"], info["success"]) == (0.0, False, True, True, False)
        assert info["jvm_restarts"] == info["env_restarts"] == 1
        assert "died" in info["error"] and jvm.alive() and jvm.pid != old
        with pytest.raises(gym.error.ResetNeeded):
            env.step("look around")
        _, info = env.reset(seed=0)
        assert info["admissible_actions"] and env.unwrapped.expert_action() is not None
    finally:
        env.close()
    assert not _running(old) and not env.unwrapped.jvm.alive()


def test_jvm_death_in_reset_retries_the_same_variation_and_counts_it():
    """A reset whose JVM died restarts it and loads the variation the seed gives, not a fresh draw; the
    restart is counted in info["jvm_restarts"] for the whole episode (episodes.csv can record it)."""
    env = gym.make("ScienceWorld-v0", task="find-living-thing", variation=None, heap="512m", expert=False)
    try:
        _, info = env.reset(seed=4)
        expected = info["variation"]
        assert (info["jvm_restarts"], info["jvm_restarted"]) == (0, False)
        jvm = env.unwrapped.jvm
        old = jvm.pid
        os.kill(old, signal.SIGKILL)  # the JVM this test started
        jvm._proc.wait(timeout=5)
        _, info = env.reset(seed=4)
        assert (info["variation"], info["jvm_restarts"], info["jvm_restarted"]) == (expected, 1, True)
        assert jvm.alive() and jvm.pid != old
        _, _, _, _, info = env.step("look around")
        assert (info["jvm_restarts"], info["jvm_restarted"]) == (1, False)
        _, info = env.reset(seed=4)
        assert (info["variation"], info["jvm_restarts"]) == (expected, 0)
    finally:
        env.close()
    assert not _running(old)


def test_vector_env_uses_one_jvm_per_env_and_leaks_none():
    vec = gym.vector.SyncVectorEnv(
        [lambda: gym.make("ScienceWorld-v0", task="find-living-thing", variation=0) for _ in range(2)]
    )
    try:
        _, infos = vec.reset(seed=0)
        pids = [e.unwrapped.jvm.pid for e in vec.envs]
        assert len(set(pids)) == 2 and all(_running(p) for p in pids)
        vec.step([0, 0])
    finally:
        vec.close()
    assert not any(_running(p) for p in pids)
