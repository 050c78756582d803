"""Lagrangian switcher: E[DEEPTHINK calls per episode] <= d, with lambda >= 0 in place of a fixed cost.

After every `update_every` training episodes, lambda takes a dual-ascent step on (mean measured calls - d)
(`londi.switch.multiplier`: sgd or pid); the env then charges lambda per DEEPTHINK call, and the DQN replay
buffer recomputes stored rewards with the current lambda (`SwitchCostReplayBuffer`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from londi.switch.multiplier import PIDLambda, make_lambda_rule
from londi.switch.sb3 import SB3Switcher, SwitchCostReplayBuffer


class LagrangianSwitcher(SB3Switcher):
    name = "lagrangian"

    def __init__(self, *, target_calls: float, rule: str, lr: float, kp: float, ki: float, kd: float,
                 max_lambda: float | None, update_every: int, **kwargs: Any):
        super().__init__(cost=0.0, **kwargs)
        if target_calls < 0:
            raise ValueError(f"lagrangian: target_calls d must be >= 0, got {target_calls}")
        self.target_calls = float(target_calls)
        gains = {"lr": lr} if rule == "sgd" else {"kp": kp, "ki": ki, "kd": kd}
        self.rule = make_lambda_rule(rule, max_lambda=max_lambda, **gains)
        self.update_every = max(1, int(update_every))
        self._calls: list[int] = []

    @property
    def lam(self) -> float:
        return float(self.rule.value)

    def env_options(self, train: bool) -> dict[str, Any]:
        opts = super().env_options(train)
        opts["cost"] = self.lam
        if train:
            opts["on_episode_end"] = self.on_episode_end
        return opts

    def _algo(self):
        cls, policy, kwargs = super()._algo()
        if self.algo == "dqn":  # SB3 sets up n-step returns only for its own buffer: hand n_steps to ours
            buffer_kwargs = {"n_steps": kwargs.get("n_steps", 1), "gamma": kwargs.get("gamma", 0.99)}
            kwargs = {**kwargs, "n_steps": 1, "replay_buffer_class": SwitchCostReplayBuffer,
                      "replay_buffer_kwargs": {**kwargs.get("replay_buffer_kwargs", {}), **buffer_kwargs}}
        return cls, policy, kwargs

    def _apply(self) -> None:
        if self._env is not None:
            self._env.cost = self.lam
        if self.model is not None and isinstance(getattr(self.model, "replay_buffer", None), SwitchCostReplayBuffer):
            self.model.replay_buffer.current_cost = self.lam

    def on_episode_end(self, calls: int, info: Mapping[str, Any]) -> None:
        self._calls.append(int(calls))
        if len(self._calls) >= self.update_every:
            self.rule.update(sum(self._calls) / len(self._calls), self.target_calls)
            self._calls.clear()
            self._apply()

    def metrics(self) -> dict[str, float]:
        return {**super().metrics(), "switch/lambda": self.lam}

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "rule": self.rule.state_dict(), "calls": list(self._calls)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        saved = "pid" if "integral" in state["rule"] else "sgd"  # the rules' states differ in their fields
        mine = "pid" if isinstance(self.rule, PIDLambda) else "sgd"
        if saved != mine:
            from londi.errors import ConfigError

            raise ConfigError(f"this Lagrangian switcher was trained with switcher.rule={saved}, and its multiplier "
                              f"state cannot continue as switcher.rule={mine}: keep rule={saved}, or train anew")
        self.rule.load_state_dict(state["rule"])
        self._calls = [int(c) for c in state.get("calls", [])]
        self._apply()
