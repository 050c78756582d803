"""londi.lm.heldout: no evaluation plays a distilled model's training episodes; training on them is said."""

from __future__ import annotations

import json
import logging
from functools import partial

import pytest

import envs
from londi import build
from londi.errors import ConfigError
from londi.evaluate import TEST_SEED_OFFSET
from londi.lm.baselines import RandomPolicy
from londi.lm.heldout import distill_seed_ranges, seen_ranges
from londi.runner import EVAL_SEED_OFFSET, episode_seed_base, evaluate, run
from tests.helpers import expert, hashed, switcher

ENV = "BabyAI-Text-GoToLocal-v0"


class _Trained(RandomPolicy):
    """A QUICK that says which reset seeds it was trained on."""

    def __init__(self, ranges: dict[str, list[tuple[int, int]]]):
        super().__init__(name="quick", seed=0)
        self.ranges = ranges

    def trained_episode_seeds(self, env_id: str) -> list[tuple[int, int]]:
        return self.ranges.get(env_id, [])


def _run(tmp_path, quick, seed=0):
    return run(env_fn=partial(envs.make, ENV), quick=quick, deepthink=expert("deepthink"),
               switcher=switcher("always_quick"), run_dir=tmp_path, encoder=hashed(16), seed=seed, total_steps=20,
               eval_episodes=2, eval_every=20)


def test_a_run_whose_evaluation_episodes_a_model_was_trained_on_is_refused(tmp_path):
    first = episode_seed_base(1, EVAL_SEED_OFFSET)
    quick = _Trained({ENV: [(first + 1, first + 2)]})
    with pytest.raises(ConfigError, match=rf"evaluation episodes .*quick was trained on {ENV} reset seeds {first + 1}"):
        _run(tmp_path / "a", quick, seed=1)
    _run(tmp_path / "b", _Trained({"BabyAI-Text-PickupLocal-v0": [(first, first + 2)]}), seed=1)  # another env


def test_training_on_a_models_episodes_is_a_warning_and_londi_evaluate_refuses_them_too(tmp_path, caplog):
    quick = _Trained({ENV: [(0, 500)]})
    with caplog.at_level(logging.WARNING, logger="londi.runner"):
        _run(tmp_path, quick)
    assert "training episodes start at reset seed 0: quick was trained on" in caplog.text
    with pytest.raises(ConfigError, match="evaluation episodes"):
        evaluate(tmp_path, partial(envs.make, ENV), quick, expert("deepthink"), switcher("always_quick"),
                 encoder=hashed(16), episodes=3, seed=499)


def test_the_shipped_models_know_their_training_seeds_and_no_default_evaluation_meets_them():
    deepthink = build.model(["env=babyai_text/put_next_local", "model@deepthink=distilled"], "deepthink")
    quick = build.model(["env=babyai_text/put_next_local", "model@quick=distilled"], "quick")
    ranges = deepthink.trained_episode_seeds("BabyAI-Text-PutNextLocal-v0")
    assert (2_000_000, 2_001_000) in ranges  # DAgger round 1 of londi-distill seed 0
    assert ranges == distill_seed_ranges(0, 2000, 0.5, 2, 1000)
    assert quick.trained_episode_seeds("BabyAI-Text-PutNextLocal-v0") == distill_seed_ranges(0, 1000, 0.5, 0, 0)
    for seed in range(3):  # the runs' evaluation and londi-evaluate's test split: never a training episode
        for offset in (EVAL_SEED_OFFSET, TEST_SEED_OFFSET):
            first = episode_seed_base(seed, offset)
            assert not seen_ranges([quick, deepthink], "BabyAI-Text-PutNextLocal-v0", first, first + 10_000)
    assert seen_ranges([deepthink], "BabyAI-Text-PutNextLocal-v0", 2_000_000, 2_000_100)  # the old test offset did


def test_a_resumed_run_is_checked_on_the_evaluation_seeds_it_recorded(tmp_path):
    """A run started before an offset change keeps its recorded evaluation episodes: those are checked."""
    quick = _Trained({ENV: [(7_000_000, 7_000_010)]})
    args = dict(env_fn=partial(envs.make, ENV), quick=quick, deepthink=expert("deepthink"),
                switcher=switcher("always_quick"), run_dir=tmp_path, encoder=hashed(16), seed=1, total_steps=40,
                eval_episodes=2, eval_every=20)
    run(**args, stop_after_steps=20)
    record = json.loads((tmp_path / "run.json").read_text())
    (tmp_path / "run.json").write_text(json.dumps({**record, "eval_seed": 7_000_005}))
    with pytest.raises(ConfigError, match="evaluation episodes \\(reset seeds 7000005..7000006\\)"):
        run(**args)
