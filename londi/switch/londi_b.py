"""LONDI-B: at most N DEEPTHINK calls per episode, almost surely (Saute-style budget state + masking).

The env appends z = remaining share of the budget to the observation and refuses DEEPTHINK at z = 0
(`londi.switch.env.SwitchingEnv`), so the cap holds for any switcher; the learner sees the mask too
(budget-masked DQN argmax and TD target, or MaskablePPO). N is drawn per training episode from
`budget_range` so one switcher serves every budget in it; evaluation uses the fixed `budget`, which must lie
in that range (the config's default range is [0, max(8, budget)]).

`relabel` (DQN only): the budget changes only the mask and z, not the text env, so every stored transition
also trains the Q-network under another feasible budget of the training range (`londi.switch.relabel`):
each sampled transition comes with one relabelled copy, at most 2x the batch per gradient step.
"""

from __future__ import annotations

from typing import Any

from londi.errors import ConfigError
from londi.switch.relabel import BudgetRelabelReplayBuffer
from londi.switch.sb3 import SB3Switcher


class LondiBSwitcher(SB3Switcher):
    name = "londi_b"
    masked = True
    uses_budget_obs = True

    def __init__(self, *, budget: int, budget_range: tuple[int, int] | list[int] | None, cost: float, relabel: bool,
                 **kwargs: Any):
        super().__init__(cost=cost, **kwargs)
        if budget < 0:
            raise ValueError(f"londi_b: budget must be >= 0 DEEPTHINK calls per episode, got {budget}")
        self.budget = int(budget)
        self.budget_range = tuple(int(b) for b in budget_range) if budget_range is not None else None
        if self.budget_range is not None and not self.budget_range[0] <= self.budget <= self.budget_range[1]:
            lo, hi = self.budget_range
            raise ConfigError(
                f"londi_b: budget {self.budget} is outside budget_range [{lo}, {hi}], the budgets the switcher trains "
                f"on, so it would be evaluated at a budget it never saw; set switcher.budget_range=[{min(lo, self.budget)},"
                f"{max(hi, self.budget)}] (one range for every budget of a sweep) or switcher.budget_range=null (train "
                "at the budget itself)")
        if relabel and self.algo != "dqn":
            raise ValueError(f"londi_b: relabel=true needs a replay buffer (algo=dqn), got algo={self.algo!r}; "
                             "set switcher.relabel=false for PPO")
        self.relabel = bool(relabel)

    def env_options(self, train: bool) -> dict[str, Any]:
        opts = {**super().env_options(train), "budget": self.budget, "budget_obs": True}
        if train and self.budget_range is not None:
            opts["budget_range"] = self.budget_range
        return opts

    def _algo(self) -> tuple[type, Any, dict[str, Any]]:
        cls, policy, kwargs = super()._algo()
        if self.relabel:  # SB3 sets up n-step returns only for its own buffer: hand n_steps to ours
            buffer_kwargs = {"n_steps": kwargs.get("n_steps", 1), "gamma": kwargs.get("gamma", 0.99),
                             "budget_range": self.budget_range or (self.budget, self.budget)}
            kwargs = {**kwargs, "n_steps": 1, "replay_buffer_class": BudgetRelabelReplayBuffer,
                      "replay_buffer_kwargs": {**kwargs.get("replay_buffer_kwargs", {}), **buffer_kwargs}}
        return cls, policy, kwargs
