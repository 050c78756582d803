"""LONDI-B: at most N DEEPTHINK calls per episode, almost surely (Saute-style budget state + masking).

The env appends z = remaining share of the budget to the observation and refuses DEEPTHINK at z = 0
(`londi.switch.env.SwitchingEnv`), so the cap holds for any switcher; the learner sees the mask too
(budget-masked DQN argmax and TD target, or MaskablePPO). N is drawn per training episode from
`budget_range` so one switcher serves every budget in it; evaluation uses the fixed `budget`.
"""

from __future__ import annotations

from typing import Any

from londi.switch.sb3 import SB3Switcher


class LondiBSwitcher(SB3Switcher):
    name = "londi_b"
    masked = True
    uses_budget_obs = True

    def __init__(self, *, budget: int, budget_range: tuple[int, int] | list[int] | None, cost: float, **kwargs: Any):
        super().__init__(cost=cost, **kwargs)
        if budget < 0:
            raise ValueError(f"londi_b: budget must be >= 0 DEEPTHINK calls per episode, got {budget}")
        self.budget = int(budget)
        self.budget_range = tuple(int(b) for b in budget_range) if budget_range is not None else None

    def env_options(self, train: bool) -> dict[str, Any]:
        opts = {**super().env_options(train), "budget": self.budget, "budget_obs": True}
        if train and self.budget_range is not None:
            opts["budget_range"] = self.budget_range
        return opts
