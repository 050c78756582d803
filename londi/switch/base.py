"""The switcher (decider) interface every QUICK/DEEPTHINK chooser implements.

A switcher answers one question per state: does QUICK (0) or DEEPTHINK (1) act now? The switching problem
is a Gymnasium env (`londi.switch.env.SwitchingEnv`); a switcher reads that env's observation (the
encoder's vector, plus the normalised remaining budget for LONDI-B) and a `DecisionContext` (the text
state, QUICK's output when asked for, the action mask, a per-step seeded RNG).

How the run loop (`londi.runner`) uses a switcher, whatever kind it is:

0. `switcher.env_options(train)` gives the `SwitchingEnv` keyword arguments (cost, budget, QUICK-first).
1. `switcher.setup(env, seed, total_steps)` once, with the training `SwitchingVecEnv` (N envs stepped
   together with batched LM calls; spaces known from it).
2. `switcher.learn(env, steps, on_step)` repeatedly, in chunks of `steps` env steps (a multiple of
   `step_quantum` x N) between evaluations and checkpoints; `on_step(info)` must be called after every env
   step with the step's info (the runner's metric tracker reads `info["switch"]`).
   - SB3 switchers (`SB3Switcher` in `londi.switch.sb3`) run `model.learn` on the vector env itself; it
     never needs a reset between chunks (its envs continue their episodes).
   - Every other switcher (rule-based baselines, the cascade router) inherits `Switcher.learn`, a plain
     loop: `decide` per env -> `env.step` -> `observe(Transition)` per env -> `on_step`. A switcher that learns online
     (the cascade router learning from DEEPTHINK's answers) does its update in `observe`; the transition
     carries both policies' outputs that were computed at that step (`Transition.quick`,
     `Transition.deepthink`), so it never calls a model itself and every call stays counted. What the
     policies' meters record during `observe` (QUICK's distillation update, `quick/train`) is charged to
     the observed step and its episode before `on_step` sees it, so it reaches episodes.csv and compute/*.
3. `switcher.decide(obs, ctx)` during evaluation (deterministic; `ctx.rng` for any randomness).
4. `switcher.state_dict()/load_state_dict()` for JSON-able state (lambda, counters) and
   `save(dir)/load(dir)` for everything else (weights, optimiser, replay buffer); a resumed run calls
   `setup` then `load`.

Reading QUICK's output first: a switcher that needs QUICK's action distribution, entropy or hidden state
before it decides sets `needs_quick_output = True` (and `needs_quick_hidden = True` for the hidden state).
The env then calls QUICK on every state before the decision (that call is metered and counted), passes
the result in `ctx.quick`, and reuses it when QUICK is chosen, so QUICK is never called twice per step.
Encoders declare the same two flags; the env asks QUICK if either the switcher or the encoder needs it.

Looking at DEEPTHINK's output first (`needs_deepthink_output = True`) is a reference's privilege, not a
deployable switcher's: the env runs DEEPTHINK on every state before the decision and passes it in
`ctx.deepthink`, but charges that call to the episode only where DEEPTHINK then acts (the look itself is
free, as the expert's action is free to the oracle).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from londi.lm.policy import ActResult
from londi.lm.state import TextState
from londi.switch.episode import USAGE_FIELDS

if TYPE_CHECKING:  # pragma: no cover
    from londi.switch.env import SwitchingEnv
    from londi.switch.vec import SwitchingVecEnv

QUICK = 0
DEEPTHINK = 1
ACTORS = ("quick", "deepthink")


@dataclass
class DecisionContext:
    """What a switcher may read besides the observation vector at one decision point.

    `quick` is QUICK's output on this state when the env computed it first (else None); `deepthink` likewise
    DEEPTHINK's, for the one switcher allowed to look before it pays (the oracle). `action_mask`
    is [quick_allowed, deepthink_allowed]; DEEPTHINK is masked when a hard budget is exhausted.
    `rng` is seeded from (episode seed, step), so random decisions are reproducible and resume-safe.
    """

    state: TextState
    action_mask: np.ndarray
    rng: np.random.Generator
    quick: ActResult | None = None
    deepthink: ActResult | None = None
    budget_remaining: float | None = None
    episode_step: int = 0
    recent: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class Transition:
    """One switching step, handed to `Switcher.observe` (online learners) after the env stepped."""

    obs: np.ndarray
    acted: int  # who acted: QUICK (0) or DEEPTHINK (1), after the budget mask and any fallback
    reward: float
    next_obs: np.ndarray
    terminated: bool
    truncated: bool
    state: TextState
    quick: ActResult | None
    deepthink: ActResult | None
    info: Mapping[str, Any]


OnStep = Callable[[Mapping[str, Any]], None]


class Switcher:
    """Base of every decider. Subclasses implement `decide`; learners also `learn` or `observe`.

    Class flags: `needs_quick_output` / `needs_quick_hidden` (see module docstring), `learns` (False:
    training steps only collect experience for the logs), `reads_obs` (False: `decide` ignores the encoded
    observation, so the run loop gives the env no encoder and an encoder's QUICK-first features are not
    paid for by a switcher that never reads them), `uses_budget_obs` (True: the env appends the
    normalised remaining budget to the observation), `step_quantum` (chunks passed to `learn` are
    multiples of it so a chunked run equals an uninterrupted one).
    """

    name: str = "switcher"
    needs_quick_output: bool = False
    needs_deepthink_output: bool = False
    needs_quick_hidden: bool = False
    learns: bool = False
    reads_obs: bool = True
    uses_budget_obs: bool = False
    step_quantum: int = 1

    def env_options(self, train: bool) -> dict[str, Any]:
        """Keyword arguments for the `SwitchingEnv` this switcher runs in (cost, budget, QUICK-first flags).

        `train=False` is the evaluation env (e.g. LONDI-B evaluates at a fixed budget, not a random one).
        """
        return {"needs_quick_output": self.needs_quick_output, "needs_quick_hidden": self.needs_quick_hidden,
                "needs_deepthink_output": self.needs_deepthink_output}

    def setup(self, env: SwitchingEnv, seed: int, total_steps: int | None = None) -> None:  # noqa: B027
        """Build models from the env's spaces. Called once before `learn`/`load`; `total_steps` is the
        whole run's training length (schedules span it even though `learn` is called in chunks)."""

    def decide(self, obs: np.ndarray, ctx: DecisionContext) -> int:
        raise NotImplementedError(f"{type(self).__name__} must implement decide(obs, ctx) -> 0|1")

    def observe(self, transition: Transition) -> None:  # noqa: B027 - optional hook
        """Online learning hook, called after each training step by the default `learn` loop."""

    def learn(self, env: SwitchingVecEnv, steps: int, on_step: OnStep) -> None:
        """Drive `env` (N envs) for `steps` env steps with `decide`, feeding `observe` and `on_step`."""
        done_steps = 0
        roles = (("quick", env.quick), ("deepthink", env.deepthink))
        while done_steps < steps:
            obs = env.current_obs()
            ctxs = env.contexts()
            decisions = np.array([int(self.decide(o, c)) for o, c in zip(obs, ctxs, strict=True)])
            next_obs, rewards, dones, infos = env.step(decisions)
            for i, info in enumerate(infos):
                sw = info["switch"]
                last = env.envs[i].last_results
                before = {who: p.meter.total(p.name) for who, p in roles}
                self.observe(
                    Transition(
                        obs=obs[i],
                        acted=sw["deepthink_acted"],
                        reward=float(rewards[i]),
                        next_obs=info.get("terminal_observation", next_obs[i]),
                        terminated=bool(dones[i]) and not info.get("TimeLimit.truncated", False),
                        truncated=bool(info.get("TimeLimit.truncated", False)),
                        state=ctxs[i].state,
                        quick=last.get("quick"),
                        deepthink=last.get("deepthink"),
                        info=info,
                    )
                )
                for who, p in roles:  # what observe's online update cost goes on this step's bill
                    after = p.meter.total(p.name)
                    spent = {k: getattr(after, k) - getattr(before[who], k) for k in USAGE_FIELDS}
                    if any(spent.values()):
                        env.envs[i].charge_after_step(info, who, spent)
                on_step(info)
            done_steps += env.num_envs

    def on_episode_end(self, calls: int, info: Mapping[str, Any]) -> None:  # noqa: B027 - optional hook
        """Episode-end hook: the env calls it at the end of every training episode when `env_options(train)`
        passes it as `on_episode_end` (the Lagrangian does, to update lambda)."""

    def metrics(self) -> dict[str, float]:
        """Extra step-wise metrics (e.g. `switch/lambda`, `losses/*`)."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        """JSON-able state that `save` does not already hold."""
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:  # noqa: B027 - optional hook
        pass

    def save(self, directory: str | Path) -> None:
        """Write everything needed to resume into `directory` (default: `state_dict()` as JSON)."""
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        (path / "switcher.json").write_text(json.dumps({"name": self.name, "state": self.state_dict()}))

    def load(self, directory: str | Path) -> None:
        path = Path(directory) / "switcher.json"
        if not path.exists():
            raise FileNotFoundError(f"{path} missing: not a switcher checkpoint directory (see Switcher.save)")
        self.load_state_dict(json.loads(path.read_text())["state"])
