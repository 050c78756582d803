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

# Register the built-in switchers (names used by the `switcher` config group).
from londi.switch import baselines as _baselines  # noqa: E402,F401
from londi.switch import lagrangian as _lagrangian  # noqa: E402,F401
from londi.switch import londi as _londi  # noqa: E402,F401
from londi.switch import londi_b as _londi_b  # noqa: E402,F401
