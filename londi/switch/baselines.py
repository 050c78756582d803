"""Switchers that do not learn: always QUICK, always DEEPTHINK, random(p), SwiftSage's heuristic, the oracle."""

from __future__ import annotations

from typing import Any

import numpy as np

from londi.switch.base import DEEPTHINK, QUICK, DecisionContext, Switcher


def _allowed(decision: int, ctx: DecisionContext) -> int:
    return decision if ctx.action_mask[decision] else QUICK


class AlwaysQuick(Switcher):
    """QUICK acts everywhere: the cheap lower bound."""

    name = "always_quick"
    reads_obs = False

    def decide(self, obs: np.ndarray, ctx: DecisionContext) -> int:
        return QUICK


class AlwaysDeepthink(Switcher):
    """DEEPTHINK acts everywhere it is allowed: the expensive upper bound."""

    name = "always_deepthink"
    reads_obs = False

    def decide(self, obs: np.ndarray, ctx: DecisionContext) -> int:
        return _allowed(DEEPTHINK, ctx)


class RandomSwitcher(Switcher):
    """DEEPTHINK with probability p at every state (the reference for "same call rate").

    `p` is config (config.yaml), not state: it is neither saved nor restored, so londi-evaluate's
    `+override.switcher.p` is the p the evaluation plays (checkpoints that stored a p have it ignored).
    """

    name = "random"
    reads_obs = False

    def __init__(self, *, p: float):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"random switcher: p must be in [0, 1], got {p}")
        self.p = float(p)

    def decide(self, obs: np.ndarray, ctx: DecisionContext) -> int:
        return _allowed(DEEPTHINK if ctx.rng.random() < self.p else QUICK, ctx)


class HeuristicSwitcher(Switcher):
    """SwiftSage's hand-written switch (Lin et al. 2023), on QUICK's proposed action.

    DEEPTHINK when QUICK's proposal repeats a recent (observation, action) pair (a loop), when progress
    stalled for `stall_steps` steps, or after `max_failures` consecutive steps that changed nothing; never
    more than `max_consecutive` DEEPTHINK calls in a row. ("Invalid action" cannot occur: policies only
    return admissible actions; an action that changes nothing counts as a failure instead.)
    """

    name = "heuristic"
    reads_obs = False
    needs_quick_output = True

    def __init__(self, *, stall_steps: int, max_failures: int, max_consecutive: int, entropy_threshold: float | None):
        self.stall_steps = stall_steps
        self.max_failures = max_failures
        self.max_consecutive = max_consecutive
        self.entropy_threshold = entropy_threshold

    def decide(self, obs: np.ndarray, ctx: DecisionContext) -> int:
        r = ctx.recent
        if r.get("deepthink_streak", 0) >= self.max_consecutive:
            return QUICK
        proposal = ctx.quick.action if ctx.quick is not None else None
        loop = proposal is not None and [ctx.state.obs, proposal] in [list(p) for p in r.get("last_pairs", [])]
        stalled = r.get("steps_since_progress", 0) >= self.stall_steps and ctx.episode_step > 0
        failing = r.get("no_change_streak", 0) >= self.max_failures
        unsure = (
            self.entropy_threshold is not None and ctx.quick is not None and ctx.quick.entropy > self.entropy_threshold
        )
        return _allowed(DEEPTHINK if (loop or stalled or failing or unsure) else QUICK, ctx)


ORACLE_RULES = ("quick_wrong", "deepthink_right")


class OracleSwitcher(Switcher):
    """A reference that knows the expert's action: the fewest DEEPTHINK calls that help.

    `rule="quick_wrong"` (default): DEEPTHINK exactly where QUICK's action differs from the expert's. With a
    perfect DEEPTHINK (the expert itself) it follows the expert everywhere, its calls being the QUICK/expert
    disagreements along that path. With an imperfect DEEPTHINK it also pays where DEEPTHINK is wrong too.
    `rule="deepthink_right"`: DEEPTHINK only where its action is the expert's and QUICK's is not. It looks at
    DEEPTHINK's answer first (`needs_deepthink_output`) and pays only where DEEPTHINK acts; with the expert
    as DEEPTHINK the two rules are the same switcher. Needs an env with `expert_action()` (the state's `expert`).
    """

    name = "oracle"
    reads_obs = False
    needs_quick_output = True

    def __init__(self, *, rule: str = "quick_wrong"):
        if rule not in ORACLE_RULES:
            raise ValueError(f"oracle switcher: unknown rule {rule!r}; choose one of {', '.join(ORACLE_RULES)}")
        self.rule = rule
        self.needs_deepthink_output = rule == "deepthink_right"

    def decide(self, obs: np.ndarray, ctx: DecisionContext) -> int:
        if ctx.state.expert is None:
            raise RuntimeError("oracle switcher needs a text env with expert_action() (TextState.expert is None)")
        if ctx.quick is None:
            raise RuntimeError("oracle switcher needs QUICK's output first (SwitchingEnv needs_quick_output=True)")
        expert = ctx.state.expert()
        if expert is None or ctx.quick.action == expert:
            return QUICK
        if self.rule == "deepthink_right":
            if ctx.deepthink is None:  # DEEPTHINK could not be looked at (it failed): it cannot be known to help
                return QUICK
            return _allowed(DEEPTHINK if ctx.deepthink.action == expert else QUICK, ctx)
        return _allowed(DEEPTHINK, ctx)

    def state_dict(self) -> dict[str, Any]:
        return {"rule": self.rule}
