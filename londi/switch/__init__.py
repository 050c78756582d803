"""Switching control: who acts at each state, QUICK (0) or DEEPTHINK (1). See `londi.switch.base`.

Switchers are built from the `switcher` config group (`londi.build.switcher`); the classes live in
`baselines` (always_quick, always_deepthink, random, heuristic, oracle), `londi`, `londi_b`, `lagrangian`
and `londi.cascade.router` (cascade).
"""

from londi.switch.base import DEEPTHINK, QUICK, DecisionContext, Switcher, Transition

__all__ = ["DEEPTHINK", "QUICK", "DecisionContext", "Switcher", "Transition"]
