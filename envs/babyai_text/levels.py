"""The BabyAI-Text benchmark's own levels, which minigrid 3.x lacks (docs/babyai_text.md).

- `PickupLocal`: "pick up {the|a} [{color}] {type}" in one 8x8 room with 8 objects (target included).
- `MixedTrainLocal` / `MixedTestLocal`: each episode is one of five task kinds (go to, pick up, open a
  locked door, put next to, "pick up A then go to B"). Unlike GLAM, which fixes the kind per env instance
  from an unseeded generator, the kind is drawn per episode from the reset seed's RNG, so a seeded
  reset reproduces the kind too (`env.task_kind` tells which). The train split never names a held-out
  colour+noun pair in its instructions (`HELD_OUT`); the test split names only those.
"""

from __future__ import annotations

import re

from minigrid.envs.babyai.core.levelgen import LevelGen
from minigrid.envs.babyai.core.roomgrid_level import RejectSampling
from minigrid.envs.babyai.core.verifier import (
    AfterInstr,
    BeforeInstr,
    GoToInstr,
    ObjDesc,
    OpenInstr,
    PickupInstr,
    PutNextInstr,
)

TASK_KINDS = ("goto", "pickup", "open", "putnext", "pickup_then_goto")
HELD_OUT = frozenset({"yellow box", "red key", "red door", "green ball", "grey door"})
_PAIR = re.compile(r"\b(red|green|blue|purple|yellow|grey) (key|ball|box|door)\b")


class PickupLocal(LevelGen):
    """Pick up an object in one 8x8 room holding 8 objects, the target one of them (GLAM's PickupLocal: LevelGen)."""

    def __init__(self, room_size: int = 8, num_dists: int = 8, **kwargs):
        super().__init__(
            room_size=room_size,
            num_rows=1,
            num_cols=1,
            num_dists=num_dists,
            locked_room_prob=0,
            locations=False,
            unblocking=False,
            implicit_unlock=False,
            action_kinds=("pickup",),
            instr_kinds=("action",),
            **kwargs,
        )


class MixedLocal(LevelGen):
    """Base of the Mixed levels; subclasses set `held_out_split` (False = train, True = test)."""

    held_out_split: bool = False
    train_door_colors = ("yellow", "green", "blue", "purple")
    test_door_colors = ("red", "grey")

    def __init__(self, room_size: int = 8, num_dists: int = 8, **kwargs):
        self.task_kind: str = TASK_KINDS[0]
        super().__init__(
            room_size=room_size,
            num_rows=1,
            num_cols=1,
            num_dists=num_dists,
            locked_room_prob=0,
            locations=False,
            unblocking=False,
            implicit_unlock=False,
            action_kinds=TASK_KINDS,
            instr_kinds=("action",),
            **kwargs,
        )

    def _gen_grid(self, width: int, height: int) -> None:
        # The kind decides the grid (2 rooms for "open"), so draw it before the grid, from the seeded RNG.
        self.task_kind = self._rand_elem(TASK_KINDS)
        self.num_cols = 2 if self.task_kind == "open" else 1
        self.width = (self.room_size - 1) * self.num_cols + 1
        super()._gen_grid(self.width, height)

    def gen_mission(self) -> None:
        if self.task_kind == "open":
            self._gen_open()
        else:
            self.place_agent()  # first, so objects keep a Manhattan distance >= 2 from it
            extra = 1 if self.task_kind in ("goto", "pickup") else 2
            objs = self.add_distractors(num_distractors=self.num_dists + extra, all_unique=False)
            self.check_objs_reachable()
            a = self._rand_elem(objs)
            if self.task_kind == "goto":
                self.instrs = GoToInstr(ObjDesc(a.type, a.color))
            elif self.task_kind == "pickup":
                self.instrs = PickupInstr(ObjDesc(a.type, a.color))
            else:
                b = self._second_object(a, objs)
                if self.task_kind == "putnext":
                    self.instrs = PutNextInstr(ObjDesc(a.type, a.color), ObjDesc(b.type, b.color))
                elif self._rand_bool():
                    self.instrs = BeforeInstr(
                        PickupInstr(ObjDesc(a.type, a.color)), GoToInstr(ObjDesc(b.type, b.color))
                    )
                else:
                    self.instrs = AfterInstr(
                        GoToInstr(ObjDesc(b.type, b.color)), PickupInstr(ObjDesc(a.type, a.color))
                    )
        self._check_split(self.instrs.surface(self))

    def _second_object(self, a, objs):
        """Draw B; it may share A's description only if at least two objects match it."""
        b = self._rand_elem(objs)
        same = lambda o: (o.type, o.color) == (a.type, a.color)  # noqa: E731
        if same(b) and sum(map(same, objs)) < 2:
            while same(b):
                b = self._rand_elem(objs)
        return b

    def _gen_open(self) -> None:
        """Two rooms joined by one locked door; its key and the distractors are in the agent's room."""
        colors = self.test_door_colors if self.held_out_split else self.train_door_colors
        color = self._rand_elem(colors)
        locked = self._rand_int(0, 2)
        free = 1 - locked
        self.add_door(locked, 0, door_idx=0 if locked == 0 else 2, color=color, locked=True)
        self.locked_room = self.get_room(locked, 0)
        self.add_object(free, 0, "key", color)
        self.add_distractors(free, 0, num_distractors=self.num_dists, all_unique=False)
        self.place_agent(free, 0)
        self.check_objs_reachable()
        named = color if self.held_out_split or self._rand_bool() else None
        self.instrs = OpenInstr(ObjDesc("door", named))

    def _check_split(self, surface: str) -> None:
        pairs = {" ".join(m) for m in _PAIR.findall(surface)}
        if self.held_out_split and pairs - HELD_OUT:
            raise RejectSampling(f"test split names a non-held-out object: {surface!r}")
        if not self.held_out_split and pairs & HELD_OUT:
            raise RejectSampling(f"train split names a held-out object: {surface!r}")


class MixedTrainLocal(MixedLocal):
    """Mixed tasks whose instructions never name yellow box, red key/door, green ball or grey door."""

    held_out_split = False


class MixedTestLocal(MixedLocal):
    """Mixed tasks whose instructions name only the held-out pairs (red/grey doors for "open")."""

    held_out_split = True


LEVELS = {"PickupLocal": PickupLocal, "MixedTrainLocal": MixedTrainLocal, "MixedTestLocal": MixedTestLocal}
