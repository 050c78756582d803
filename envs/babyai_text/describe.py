"""Egocentric minigrid view -> BabyAI-Text (GLAM) description strings.

Implements the description rules of docs/babyai_text.md exactly. The input is minigrid 3.x's `obs["image"]`
(shape (7, 7, 3), indexed image[i, j] with i the column, 0 = three cells left, 3 = the agent's column,
and j the row, 0 = six cells ahead, 6 = the agent's row; channels = object, colour, state) and the
carried object. The output list is, in order:

A. "You carry a {color} {type}" when something is carried;
B. at most one wall per straight scan, forward then left then right, e.g. "You see a wall 2 steps forward"
   (a scan stops at the first non-empty, seen cell; only a wall there is reported);
C. every seen object except the agent's own cell, column by column from the left, farthest first:
   "You see a {color} {type} {distance}" or "You see a {open|closed|locked} {color} door {distance}"
   (the article is always "a", as in the original), distance = "2 steps left and 1 step forward",
   "3 steps forward" or "1 step right".

The lookups are precomputed numpy tables so a view costs a few array operations, not per-cell objects.
"""

from __future__ import annotations

import numpy as np
from minigrid.core.constants import IDX_TO_COLOR, IDX_TO_OBJECT, OBJECT_TO_IDX

VIEW = 7  # agent_view_size the rules are written for; the agent sits at (3, 6)
AGENT_I, AGENT_J = VIEW // 2, VIEW - 1
_WALL = OBJECT_TO_IDX["wall"]
_DOOR = OBJECT_TO_IDX["door"]
_DOOR_STATES = ("open", "closed", "locked")


def _steps(n: int) -> str:
    return f"{n} step" if n == 1 else f"{n} steps"


def distance_phrase(dx: int, forward: int) -> str:
    """Distance wording for a lateral offset `dx` (negative = left) and `forward` cells ahead."""
    side = "left" if dx < 0 else "right"
    if dx == 0:
        return f"{_steps(forward)} forward"
    if forward == 0:
        return f"{_steps(abs(dx))} {side}"
    return f"{_steps(abs(dx))} {side} and {_steps(forward)} forward"


def _distance_table() -> np.ndarray:
    table = np.empty((VIEW, VIEW), dtype=object)
    for i in range(VIEW):
        for j in range(VIEW):
            table[i, j] = (
                "" if (i, j) == (AGENT_I, AGENT_J) else " " + distance_phrase(i - AGENT_I, AGENT_J - j)
            )
    return table


def _name_table() -> np.ndarray:
    """The "You see a ..." prefix for every (type, colour, state) code."""
    n_types, n_colors = max(IDX_TO_OBJECT) + 1, max(IDX_TO_COLOR) + 1
    table = np.empty((n_types, n_colors, len(_DOOR_STATES)), dtype=object)
    for t in range(n_types):
        for c in range(n_colors):
            for s in range(len(_DOOR_STATES)):
                color, kind = IDX_TO_COLOR[c], IDX_TO_OBJECT[t]
                state = f"{_DOOR_STATES[s]} " if t == _DOOR else ""
                table[t, c, s] = f"You see a {state}{color} {kind}"
    return table


_DISTANCE = _distance_table()
_NAME = _name_table()
_SCANS = (  # (direction word, cells from nearest to farthest)
    ("forward", (np.full(AGENT_J, AGENT_I), np.arange(AGENT_J - 1, -1, -1))),
    ("left", (np.arange(AGENT_I - 1, -1, -1), np.full(AGENT_I, AGENT_J))),
    ("right", (np.arange(AGENT_I + 1, VIEW), np.full(VIEW - 1 - AGENT_I, AGENT_J))),
)
_OBJECT_MASK = np.ones((VIEW, VIEW), dtype=bool)
_OBJECT_MASK[AGENT_I, AGENT_J] = False


def describe(image: np.ndarray, carrying: object | None = None) -> list[str]:
    """Descriptions of one egocentric view (see the module docstring for the rules and order).

    `carrying` is minigrid's `env.carrying` (any object with `.color` and `.type`) or None.
    """
    if image.shape[:2] != (VIEW, VIEW):
        raise ValueError(
            f"describe() needs a {VIEW}x{VIEW} egocentric view (agent_view_size=7), got {image.shape}"
        )
    types = image[:, :, 0]
    out = [] if carrying is None else [f"You carry a {carrying.color} {carrying.type}"]
    for word, cells in _SCANS:
        line = types[cells]
        hits = np.flatnonzero(line > 1)  # 0 unseen and 1 empty are skipped
        if hits.size and line[hits[0]] == _WALL:
            out.append(f"You see a wall {_steps(int(hits[0]) + 1)} {word}")
    i, j = np.nonzero((types > _WALL) & _OBJECT_MASK)  # C order: column i first, then farthest row j first
    if i.size:
        names = _NAME[types[i, j], image[i, j, 1], np.minimum(image[i, j, 2], len(_DOOR_STATES) - 1)]
        out.extend((names + _DISTANCE[i, j]).tolist())
    return out
