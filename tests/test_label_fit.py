"""scripts/label_fit.py: the parsed view of a GoTo prompt, and held-out states along the expert's episodes."""

from __future__ import annotations

import numpy as np

from tests.helpers import load_script


def _module():
    return load_script("label_fit")


def test_view_features_read_the_goal_offset_walls_and_occupied_cells():
    prompt = ("Possible action of the agent: turn left, turn right, go forward \n Goal of the agent: go to the red key \n "
              "Observation 0: You see a wall 2 steps left, You see a wall 5 steps forward, You see a red key 3 steps "
              "right and 2 steps forward, You see a red ball 1 step left, You see a red key 1 step right and 5 steps "
              "forward, \n Action 0: ")
    f = _module().view_features(prompt)
    assert list(f[:3]) == [3, 2, 1]  # the nearer of the two red keys (5 steps away against 6), in view
    assert list(f[3:6]) == [5, 2, 0]  # walls forward, left, right
    occ = f[6:].reshape(7, 7)
    assert occ[3 + 3, 2] == 1 and occ[-1 + 3, 0] == 1 and occ[1 + 3, 5] == 1 and occ.sum() == 3
    missing = _module().view_features(prompt.replace("go to the red key", "go to the blue box"))
    assert list(missing[:3]) == [0, -9, 0]


def test_held_out_states_follow_the_expert_and_record_its_labels():
    prompts, candidates, labels, dirs = _module().held_out("BabyAI-Text-GoToLocal-v0", "myopic", 3, 0, 0.0)
    assert len(prompts) == len(candidates) == len(labels) == len(dirs) > 0
    assert all(label in cands for label, cands in zip(labels, candidates, strict=True))
    assert set(np.unique(dirs)) <= {0, 1, 2, 3}
    assert all("Goal of the agent: go to" in p for p in prompts)
