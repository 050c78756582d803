"""envs.subproc.SubprocTextEnv: a text env in a worker process behaves like the same env in-process."""

from __future__ import annotations

from functools import partial

import pytest

import envs
from envs.subproc import SubprocTextEnv, WorkerError


def _make(level: str = "GoToLocal"):
    return partial(envs.make, f"BabyAI-Text-{level}-v0")


@pytest.mark.parametrize("level", ["GoToLocal", "MixedTrainLocal"])
def test_a_worker_env_matches_the_in_process_env_step_for_step(level):
    local, remote = _make(level)(), SubprocTextEnv(_make(level))
    try:
        for seed in (0, 3):
            assert remote.reset(seed=seed) == local.reset(seed=seed)
            # the step limit is the level's, set at reset (BabyAI may change it per episode): the switcher's
            # horizon reads it from the proxy
            assert remote.max_steps == local.unwrapped.max_steps > 0
            for action in (2, 1, 2, 0):
                assert remote.step(action) == local.step(action)
    finally:
        remote.close()
        local.close()


def test_an_error_in_the_worker_is_raised_with_its_message():
    remote = SubprocTextEnv(_make())
    try:
        remote.reset(seed=0)
        with pytest.raises(WorkerError, match="worker process"):
            remote.step(99)
    finally:
        remote.close()
