"""Lambda update rules for the Lagrangian switcher: dual ascent on (measured DEEPTHINK calls - target d).

`sgd`: lambda <- max(0, lambda + lr x error). `pid` (Stooke et al. 2020, "Responsive Safety in RL by PID
Lagrangian Methods"): lambda = max(0, kp x error + ki x I + kd x max(0, error - previous error)), with the
integral I clamped at >= 0 so lambda can return to 0 once calls stay below the target. Both take an
optional `max_lambda` (anti-windup: lambda and, for pid, ki x I never exceed it). A price above the largest
episode return only says "never call"; without the cap, the calls made while the switcher still explores
wind lambda up far past that, and it then takes thousands of steps to come back down (measured: lambda 4.8
on BabyAI-Text, where returns are <= 1). Adam on a scalar lambda oscillates (docs/design.md): not offered.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass
class SGDLambda:
    lr: float = 0.01
    init: float = 0.0
    max_lambda: float | None = None
    value: float | None = None

    def __post_init__(self) -> None:
        if self.value is None:
            self.value = _cap(max(0.0, float(self.init)), self.max_lambda)

    def update(self, measured: float, target: float) -> float:
        self.value = _cap(max(0.0, self.value + self.lr * (measured - target)), self.max_lambda)
        return self.value

    def state_dict(self) -> dict[str, Any]:
        return asdict(self)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.value = float(state["value"])


@dataclass
class PIDLambda:
    kp: float = 0.01
    ki: float = 0.005
    kd: float = 0.0
    init: float = 0.0
    max_lambda: float | None = None
    integral: float = 0.0
    prev_error: float = 0.0
    value: float | None = None

    def __post_init__(self) -> None:
        if self.value is None:
            self.value = max(0.0, float(self.init))
            self.integral = self.value / self.ki if self.ki > 0 else 0.0

    def update(self, measured: float, target: float) -> float:
        error = measured - target
        self.integral = max(0.0, self.integral + error)
        if self.max_lambda is not None and self.ki > 0:
            self.integral = min(self.integral, self.max_lambda / self.ki)
        derivative = max(0.0, error - self.prev_error)
        self.prev_error = error
        self.value = _cap(max(0.0, self.kp * error + self.ki * self.integral + self.kd * derivative), self.max_lambda)
        return self.value

    def state_dict(self) -> dict[str, Any]:
        return asdict(self)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.integral, self.prev_error, self.value = float(state["integral"]), float(state["prev_error"]), float(state["value"])


def _cap(value: float, cap: float | None) -> float:
    return value if cap is None else min(value, float(cap))


def make_lambda_rule(rule: str = "pid", **kwargs: Any) -> SGDLambda | PIDLambda:
    rules = {"sgd": SGDLambda, "pid": PIDLambda}
    if rule not in rules:
        raise KeyError(f"unknown lambda update rule {rule!r}; choose 'sgd' or 'pid'")
    return rules[rule](**kwargs)
