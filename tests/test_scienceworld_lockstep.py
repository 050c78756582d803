"""ScienceWorld-v0 against the package's ScienceWorldEnv in lockstep: a small run of the lockstep script."""

from __future__ import annotations

import pytest

from tests.helpers import load_script

pytestmark = [pytest.mark.scienceworld, pytest.mark.slow]


def test_lockstep_finds_no_stale_list_and_the_package_reset_scores():
    module = load_script("lockstep_scienceworld")
    tasks = ("find-living-thing", "boil", "test-conductivity", "chemistry-mix", "use-thermometer")
    stats = module.lockstep(tasks, variations=1, steps=10, log=lambda *_: None)
    assert stats.states >= 2 * len(tasks) * 5
    assert stats.stale == 0, stats.examples
    mismatches = (stats.reset_score_mismatches, stats.step_score_mismatches, stats.done_mismatches)
    assert mismatches == (0, 0, 0), stats.examples
    assert any(package > 0 for *_, package in stats.reset_scores)  # a reset that earns credit was compared
    assert max(stats.cuts) > 0  # lists the cap cut were compared too
