"""Switching control: who acts at each state, QUICK (0) or DEEPTHINK (1). See `londi.switch.base`."""

from londi.switch.base import (
    DEEPTHINK,
    QUICK,
    DecisionContext,
    Switcher,
    Transition,
    make_switcher,
    register_switcher,
    registered_switchers,
)

__all__ = [
    "DEEPTHINK",
    "QUICK",
    "DecisionContext",
    "Switcher",
    "Transition",
    "make_switcher",
    "register_switcher",
    "registered_switchers",
]
