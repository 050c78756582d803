"""LONDI: learn where DEEPTHINK is worth its per-call cost c (switching-control Q-learning; PPO selectable).

The switching-control Bellman form v(s) = max{r(s, a_D) - c + gamma E v(s'), r(s, a_Q) + gamma E v(s')}
is exactly DQN on the `SwitchingEnv` (whose reward already subtracts c on DEEPTHINK steps).
"""

from __future__ import annotations

from londi.switch.sb3 import SB3Switcher


class LondiSwitcher(SB3Switcher):
    name = "londi"
