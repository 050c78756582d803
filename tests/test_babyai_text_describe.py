"""The description generator against hand-built egocentric views (docs/babyai_text.md; GLAM's examples)."""

from __future__ import annotations

import numpy as np
import pytest
from minigrid.core.constants import COLOR_TO_IDX, OBJECT_TO_IDX
from minigrid.core.world_object import Ball, Key

from envs.babyai_text.describe import describe, distance_phrase

_TYPES = {"A": "ball", "K": "key", "B": "box", "D": "door"}
_COLORS = {"r": "red", "y": "yellow", "b": "blue", "g": "green", "G": "grey", "p": "purple"}
_STATES = {"o": 0, "c": 1, "l": 2}


def view(rows: str) -> np.ndarray:
    """Parse a map (GLAM's notation): 7 rows of 7 cells, farthest row first, agent ^ bottom centre.

    Cells: W wall, . empty, ? unseen, ^ agent, X + colour for objects (Ar = red ball), and doors
    D + colour + state (Dgl = locked green door, Dro = open red door, Dbc = closed blue door).
    """
    lines = [r.split() for r in rows.strip().splitlines()]
    assert len(lines) == 7 and all(len(r) == 7 for r in lines), "a view is 7 rows of 7 cells"
    image = np.zeros((7, 7, 3), dtype=np.uint8)
    for j, row in enumerate(lines):
        for i, cell in enumerate(row):
            if cell in (".", "^"):
                image[i, j] = (OBJECT_TO_IDX["empty"], 0, 0)
            elif cell == "W":
                image[i, j] = (OBJECT_TO_IDX["wall"], COLOR_TO_IDX["grey"], 0)
            elif cell != "?":
                state = _STATES[cell[2]] if cell[0] == "D" else 0
                image[i, j] = (OBJECT_TO_IDX[_TYPES[cell[0]]], COLOR_TO_IDX[_COLORS[cell[1]]], state)
    assert lines[6][3] == "^", "the agent is at the bottom centre"
    return image


def test_spec_example_1_objects_in_open_room():
    image = view("""
        . . . . . . .
        . . . By . . .
        . . . . . . .
        . . . . . . .
        . . Ar . . . .
        . . . . . . .
        . . . ^ . Kb .
    """)
    assert describe(image) == [
        "You see a red ball 1 step left and 2 steps forward",
        "You see a yellow box 5 steps forward",
        "You see a blue key 2 steps right",
    ]


def test_spec_example_2_carried_key_walls_and_locked_door():
    image = view("""
        ? ? ? ? ? ? ?
        W W W W W W ?
        W . . . . W ?
        W . . . . W ?
        W . . . . Dgl ?
        W . . AG . W ?
        W . . ^ . W ?
    """)
    assert describe(image, Key("green")) == [
        "You carry a green key",
        "You see a wall 3 steps left",
        "You see a wall 2 steps right",
        "You see a grey ball 1 step forward",
        "You see a locked green door 2 steps right and 2 steps forward",
    ]


def test_spec_example_3_open_door_and_objects_behind_each_other():
    image = view("""
        W W W W W W W
        . . . Kp . . .
        . . . . . . .
        W W W Dro W W W
        . Bb . . . . .
        . Bb . . . . .
        . . . ^ . . .
    """)
    assert describe(image) == [
        "You see a blue box 2 steps left and 2 steps forward",
        "You see a blue box 2 steps left and 1 step forward",
        "You see a purple key 5 steps forward",
        "You see a open red door 3 steps forward",
    ]


def test_wall_scans_forward_left_right_one_each_and_nothing_else():
    image = view("""
        W W W W W W W
        W . . W . . W
        . . . . . . .
        . . . . . . .
        . . . . . . .
        W . . . . . W
        . W . ^ . . W
    """)
    # forward: first wall 5 ahead; left: 2 steps (the one at 3 is behind it); right: 3 steps;
    # diagonal walls (corners, row 5) are never described
    assert describe(image) == [
        "You see a wall 5 steps forward",
        "You see a wall 2 steps left",
        "You see a wall 3 steps right",
    ]


def test_object_or_door_hides_the_wall_behind_it_in_a_scan():
    image = view("""
        . . . W . . .
        . . . . . . .
        . . . . . . .
        . . . . . . .
        . . . Dbc . . .
        . . . . . . .
        W Kr . ^ Ay . W
    """)
    assert describe(image) == [
        "You see a red key 2 steps left",
        "You see a closed blue door 2 steps forward",
        "You see a yellow ball 1 step right",
    ]


def test_unseen_cells_are_skipped_by_scans_and_never_described():
    image = view("""
        ? ? ? W ? ? ?
        ? ? ? ? ? ? ?
        ? ? ? ? ? ? ?
        ? ? ? ? ? ? ?
        ? ? ? ? ? ? ?
        ? ? ? ? ? ? ?
        ? ? ? ^ ? ? ?
    """)
    assert describe(image) == ["You see a wall 6 steps forward"]


def test_nothing_seen_gives_an_empty_list_and_agent_cell_is_ignored():
    image = view("\n".join([". . . . . . ."] * 6 + [". . . ^ . . ."]))
    assert describe(image) == []
    image[3, 6] = (OBJECT_TO_IDX["ball"], COLOR_TO_IDX["red"], 0)  # minigrid draws the carried object here
    assert describe(image, Ball("red")) == ["You carry a red ball"]


@pytest.mark.parametrize(
    ("dx", "forward", "phrase"),
    [
        (0, 1, "1 step forward"),
        (0, 6, "6 steps forward"),
        (-1, 0, "1 step left"),
        (3, 0, "3 steps right"),
        (-2, 1, "2 steps left and 1 step forward"),
        (1, 4, "1 step right and 4 steps forward"),
    ],
)
def test_distance_phrases(dx, forward, phrase):
    assert distance_phrase(dx, forward) == phrase


def test_rejects_views_of_another_size():
    with pytest.raises(ValueError, match="7x7"):
        describe(np.zeros((5, 5, 3), dtype=np.uint8))
