"""The switching problem as a Gymnasium env: action 0 = QUICK acts, 1 = DEEPTHINK acts.

Observation = encoder(text state) (+ two episode features when the encoder asks for them: the share of
the step limit used, and how often this exact observation was already seen this episode; a state without
time is not Markov under a step limit, and a QUICK stuck in a loop shows up as repeated observations)
(+ the normalised remaining budget z as the LAST feature when a hard budget is set, Saute-style).
Reward = text-env reward - cost x 1[DEEPTHINK acted]. The chosen policy's action (an index into
`info["admissible_actions"]`) steps the text env. `action_masks()` masks DEEPTHINK when the budget is
spent (MaskablePPO reads it; a DEEPTHINK request at zero budget is refused and QUICK acts, so a hard
budget can never be exceeded whatever the switcher does).

Only the chosen model runs, unless the switcher or encoder needs QUICK's output first; then QUICK runs
on every non-terminal state before the decision (counted) and its result is reused when QUICK acts.
A `PolicyError` from DEEPTHINK (endpoint down, unusable reply) falls back to QUICK (`fallback_to_quick=True`):
flagged in the step info, counted in the episode summary's `fallbacks`, and logged as one warning per
episode with that count. So does a DEEPTHINK that fails when looked at first (`needs_deepthink_output`, the
oracle): the switcher decides without its answer, and the step counts as a fallback when QUICK acts. An
`EndpointError` (the endpoint refuses every request: wrong key, model or URL) is not a `PolicyError` and
ends the run. A failed DEEPTHINK attempt adds its seconds and tokens to the
step's usage but no call (see `LMPolicy`).

Reproducibility: episode k uses seed `base_seed + k` (`+ N k` for the envs of a `SwitchingVecEnv`); policies are reseeded per step from (episode seed,
step), and `state_dict()/load_state_dict()` restore a run mid-episode by replaying the episode's recorded
text actions, so a checkpointed run resumes exactly where it stopped.

A step runs in phases (`request` -> the LM call -> `send` -> `finish` -> QUICK-first on the next state ->
`encode`); `step()` runs them in order with one LM call each, and `londi.switch.vec.SwitchingVecEnv` runs
them for many envs at once with one batched call per model between phases.

Every step's `info["switch"]` holds the switcher's request (`requested`), who acted (`actor`,
`deepthink_acted`: 1 only when DEEPTHINK's action was executed, after the budget mask and any fallback),
per-model usage of this step, budget and, on the last step of an episode, an `"episode"` summary (the row
of episodes.csv). A step's usage is what was spent on its own state only: `reset()` drops what was spent on
the state of an abandoned episode (it stays in the policy's meter, but belongs to no step).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

import gymnasium as gym
import numpy as np

from londi.lm.policy import ActResult, LMPolicy, PolicyError
from londi.lm.state import EpisodeHistory, TextState
from londi.lm.usage import Usage
from londi.switch.base import DEEPTHINK, QUICK, DecisionContext
from londi.switch.encoders import Encoder
from londi.switch.episode import USAGE_FIELDS, EpisodeRecord, EpisodeSummary, zero_usage

log = logging.getLogger(__name__)

EPISODE_FEATURES = 2  # [share of the step limit used, repeats of this observation this episode (capped)]
DEFAULT_HORIZON = 100  # step limit assumed for a text env that does not say its own


def usage_dict(u: Usage) -> dict[str, float]:
    return {"calls": u.calls, "tokens": u.tokens, "flops": u.flops, "device_seconds": u.device_seconds,
            "wall_seconds": u.wall_seconds}


def budget_share(budget: Any, used: Any) -> np.ndarray:
    """z = remaining share of a budget, max(0, 1 - used / budget), 0 for a zero budget; elementwise in float64.

    The one formula for the budget feature: the env's observation and the relabelling buffer both use it.
    """
    budget = np.asarray(budget, dtype=np.float64)
    used = np.asarray(used, dtype=np.float64)
    safe = np.where(budget > 0, budget, 1.0)
    return np.where(budget > 0, np.maximum(0.0, 1.0 - used / safe), 0.0)


class SwitchingEnv(gym.Env):
    """Gymnasium env whose action chooses who acts (see module docstring)."""

    metadata = {"render_modes": []}

    def __init__(
        self,
        text_env: gym.Env,
        quick: LMPolicy,
        deepthink: LMPolicy,
        *,
        encoder: Encoder,
        cost: float = 0.0,
        budget: int | None = None,
        budget_range: tuple[int, int] | None = None,
        needs_quick_output: bool = False,
        needs_quick_hidden: bool = False,
        needs_deepthink_output: bool = False,
        budget_obs: bool | None = None,
        fallback_to_quick: bool = True,
        history_steps: int = 2,
        seed: int = 0,
        reseed_policies: bool = True,
        on_episode_end: Callable[[int, Mapping[str, Any]], None] | None = None,
    ):
        super().__init__()
        if budget is not None and budget < 0:
            raise ValueError(f"budget must be >= 0 DEEPTHINK calls per episode, got {budget}")
        if budget_range is not None and not (0 <= budget_range[0] <= budget_range[1]):
            raise ValueError(f"budget_range must be (lo, hi) with 0 <= lo <= hi, got {budget_range}")
        self.text_env = text_env
        self.quick = quick
        self.deepthink = deepthink
        self.encoder = encoder
        self.encoder.bind(quick, deepthink)
        self.cost = float(cost)
        self.budget = budget
        self.budget_range = tuple(budget_range) if budget_range is not None else None
        self.has_budget = budget is not None or budget_range is not None
        self.budget_obs = self.has_budget if budget_obs is None else bool(budget_obs)
        self.quick_first = needs_quick_output or needs_quick_hidden or self.encoder.needs_quick_output
        self.quick_hidden = needs_quick_hidden or self.encoder.needs_quick_hidden
        self.deepthink_first = bool(needs_deepthink_output)
        self.episode_obs = bool(getattr(self.encoder, "episode_features", False))
        self.fallback_to_quick = fallback_to_quick
        # The states carry as many past steps as the hungrier prompt needs (never fewer than asked for).
        self.history = EpisodeHistory(max(history_steps, quick.history_needed, deepthink.history_needed))
        self.base_seed = int(seed)
        self.seed_stride = 1  # episode k's seed is base_seed + seed_stride * k (a SwitchingVecEnv interleaves envs)
        self.reseed_policies = reseed_policies
        self.on_episode_end = on_episode_end

        dim = self.encoder.dim + (EPISODE_FEATURES if self.episode_obs else 0) + (1 if self.budget_obs else 0)
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, shape=(dim,), dtype=np.float32)
        self.action_space = gym.spaces.Discrete(2)

        self._episode = 0  # index of the next episode to start
        self._ep: EpisodeRecord | None = None
        self._obs: np.ndarray | None = None
        self._state: TextState | None = None
        self._text_obs: str = ""
        self._text_info: Mapping[str, Any] = {}
        self._terminal = False
        self._quick_result: ActResult | None = None
        self._peek: ActResult | None = None  # DEEPTHINK's answer, looked at first (its usage rides on it)
        self._peek_failed = False  # DEEPTHINK failed when looked at on the current state
        self._pending = {"quick": zero_usage(), "deepthink": zero_usage()}
        self.last_results: dict[str, ActResult | None] = {}
        self._last_step: tuple[dict, EpisodeRecord] | None = None  # the last finished step's bill and episode
        self._needs_reset = True

    # ------------------------------------------------------------------ Gymnasium API
    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        """Start the next episode (seed = base_seed + episode index; `seed` rebases and restarts the count)."""
        super().reset(seed=seed)
        info = self.begin_episode(seed)
        self._read_first()
        return self.encode(), info

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict]:
        requested, decision, blocked = self.request(action)
        result, actor, fallback = self._act(decision)
        self.send(result)
        reward, terminated, truncated, info = self.finish(requested, blocked, result, actor, fallback)
        self._read_first()
        return self.encode(), reward, terminated, truncated, info

    def action_masks(self) -> np.ndarray:
        """[QUICK allowed, DEEPTHINK allowed]: DEEPTHINK is masked once the episode's budget is spent."""
        b = self._ep.budget if self._ep is not None else None
        return np.array([True, b is None or self._ep.used < b], dtype=bool)

    def close(self) -> None:
        self.text_env.close()

    # ------------------------------------------------------------------ the step in phases
    def begin_episode(self, seed: int | None = None) -> dict:
        """Reset the text env and the record; the current state is set but not yet read by QUICK or encoded."""
        if self._ep is not None and not self._needs_reset:
            self._warn_fallbacks()  # an abandoned episode reports its fallbacks too
        if seed is not None:
            self.base_seed, self._episode = int(seed), 0
        ep_seed = self.base_seed + self.seed_stride * self._episode
        self._episode += 1
        obs, info = self.text_env.reset(seed=ep_seed)
        rng = np.random.default_rng([ep_seed, 2**31 - 1])
        if self.budget_range is not None:
            n_budget: int | None = int(rng.integers(self.budget_range[0], self.budget_range[1] + 1))
        else:
            n_budget = self.budget
        self._ep = EpisodeRecord(seed=ep_seed, budget=n_budget, visits={obs: 1} if self.episode_obs else None)
        self.history.reset(obs, info)
        # usage spent on the abandoned episode's last state (QUICK run first) must not be charged to this one
        self._pending = {"quick": zero_usage(), "deepthink": zero_usage()}
        self._set_current(obs, info, terminal=False)
        self._needs_reset = False
        return {"switch": {"budget": n_budget, "episode_seed": ep_seed}}

    def request(self, action: int) -> tuple[int, int, bool]:
        """(requested, decision, blocked): a DEEPTHINK request at zero budget becomes QUICK."""
        if self._needs_reset:
            raise RuntimeError("SwitchingEnv.step called before reset() (or after the episode ended)")
        requested = int(action)
        if requested not in (QUICK, DEEPTHINK):
            raise ValueError(f"switching action must be 0 (QUICK) or 1 (DEEPTHINK), got {action!r}")
        if requested == DEEPTHINK and not self.action_masks()[DEEPTHINK]:
            return requested, QUICK, True
        return requested, requested, False

    def call_needed(self, decision: int) -> str | None:
        """Which model must run for `decision`: "deepthink", "quick", or None (its answer is already in)."""
        if decision == DEEPTHINK:
            return None if self._peek is not None else "deepthink"
        return None if self._quick_result is not None else "quick"

    def needs_deepthink_first(self) -> bool:
        """Whether DEEPTHINK must be looked at on the current state before the decision (and has not been)."""
        return self.deepthink_first and not self._terminal and self._peek is None and not self._peek_failed and bool(
            self._text_info.get("admissible_actions"))

    def set_deepthink_peek(self, result: ActResult) -> None:
        """DEEPTHINK's answer on the current state, looked at first; its `usage` is charged only if it acts."""
        self._peek = result

    def peek_deepthink(self) -> None:
        """Look at DEEPTHINK's answer on the current state alone, seeded as for this env (a batch that failed
        retries each state this way, so the result does not depend on n_envs). A failure is loud: a fallback
        (raised unless `fallback_to_quick`) that the step counts if QUICK acts, as the decision lacked it."""
        self._seed_policy(self.deepthink, "deepthink")
        try:
            self.set_deepthink_peek(self.deepthink.act_one(self._state))
        except PolicyError as e:  # not charged: a look is charged only when DEEPTHINK acts on it
            self.note_fallback(e)
            self._peek_failed = True

    def take_peek(self) -> ActResult:
        """DEEPTHINK acts with the answer it gave when looked at: now its call is charged to this step."""
        self.charge("deepthink", usage_dict(self._peek.usage))
        return self._peek

    def needs_quick_first(self) -> bool:
        """Whether QUICK must read the current state before the decision (and has not yet)."""
        return self.quick_first and not self._terminal and self._quick_result is None and bool(
            self._text_info.get("admissible_actions"))

    def set_quick(self, result: ActResult) -> None:
        """QUICK's answer on the current state (its usage is charged via `charge`)."""
        self._quick_result = result

    def policy_seed(self, who: str) -> int:
        """The per-step seed a policy is reseeded with before it acts here (episode seed, step, role)."""
        return int(np.random.SeedSequence([self._ep.seed, self._ep.t, 1 if who == "quick" else 2]).generate_state(1)[0])

    def charge(self, who: str, usage: Mapping[str, float]) -> None:
        """Add usage spent on the current state to this step's bill."""
        for k in USAGE_FIELDS:
            self._pending[who][k] += usage.get(k, 0)

    def charge_after_step(self, info: Mapping[str, Any], who: str, usage: Mapping[str, float]) -> None:
        """Add usage spent after the last step, on what it produced, to that step's bill and its episode's.

        For work done between `finish` and the next step: an online learner's update in `Switcher.observe`
        (the cascade distilling DEEPTHINK's answer into QUICK). It lands in the step's `info["switch"]["usage"]`
        and in its episode's totals: the running record, or the `"episode"` summary when the step ended it,
        so episodes.csv and compute/* include it. `info` must be this env's last step's.
        """
        sw = info["switch"]
        if self._last_step is None or self._last_step[0] is not sw:
            raise RuntimeError("charge_after_step: info is not this env's last finished step; charge usage "
                               "before the env steps again, with the info that step returned")
        ep = self._last_step[1]
        for k in USAGE_FIELDS:
            sw["usage"][who][k] += usage.get(k, 0)
            ep.usage[who][k] += usage.get(k, 0)
        if "episode" in sw:
            summary = sw["episode"]
            summary.update(EpisodeSummary.of(ep, bool(summary["success"]), int(summary["env_restarts"])).as_dict())

    def note_fallback(self, error: Exception) -> None:
        if not self.fallback_to_quick:
            raise error
        self._ep.fallback_error = str(error)[:300]

    def send(self, result: ActResult) -> None:
        """Hand the chosen action to the text env; a worker-process env starts stepping and returns at once."""
        step_async = getattr(self.text_env, "step_async", None)
        if step_async is not None:
            step_async(result.index)
            self._sent = None
        else:
            self._sent = self.text_env.step(result.index)

    def finish(self, requested: int, blocked: bool, result: ActResult, actor: str, fallback: bool
               ) -> tuple[float, bool, bool, dict]:
        """Take the text env's answer to `send`, update the record and move to the next state (not yet
        read by QUICK or encoded). Returns (reward, terminated, truncated, info)."""
        ep = self._ep
        fallback = fallback or (actor == "quick" and self._peek_failed)  # decided without DEEPTHINK's answer
        self.last_results = {"quick": self._quick_result, "deepthink": result if actor == "deepthink" else None}
        if actor == "quick":
            self.last_results["quick"] = result
        out = self._sent if self._sent is not None else self.text_env.step_wait()
        obs, env_reward, terminated, truncated, info = out
        if ep.visits is not None:
            ep.visits[obs] = ep.visits.get(obs, 0) + 1
        prev_obs = self._text_obs
        self.history.record(result.action, obs, info)

        paid = actor == "deepthink"
        reward = float(env_reward) - (self.cost if paid else 0.0)
        ep.t += 1
        ep.actions.append(int(result.index))
        ep.decisions.append(int(paid))
        ep.env_return += float(env_reward)
        ep.switch_return += reward
        if paid:
            ep.deepthink_calls += 1
        else:
            ep.quick_calls += 1
        ep.used += int(paid)
        ep.fallbacks += int(fallback)
        ep.blocked += int(blocked)
        self._update_recent(prev_obs, result.action, obs, float(env_reward), paid)

        done = bool(terminated or truncated)
        step_usage = self._pending  # this step's calls (incl. QUICK-first on this state); the next state's go to the next step
        self._pending = {"quick": zero_usage(), "deepthink": zero_usage()}
        self._set_current(obs, info, terminal=done)
        for who in ("quick", "deepthink"):
            for k in USAGE_FIELDS:
                ep.usage[who][k] += step_usage[who][k]
        sw: dict[str, Any] = {
            "requested": requested, "deepthink_acted": int(paid), "actor": actor, "blocked": blocked,
            "fallback": fallback, "env_reward": float(env_reward), "cost": self.cost if paid else 0.0,
            "usage": step_usage, "budget": ep.budget, "budget_remaining": self.budget_remaining(),
            "episode_calls": ep.used, "episode_step": ep.t - 1,
        }
        if done:
            self._needs_reset = True
            sw["episode"] = self.episode_summary(success=bool(info.get("success", False)),
                                                  env_restarts=int(info.get("env_restarts", 0)))
            self._warn_fallbacks()
            if self.on_episode_end is not None:
                self.on_episode_end(ep.used, sw["episode"])
        self._last_step = (sw, ep)
        out_info = dict(info)
        out_info["switch"] = sw
        return reward, bool(terminated), bool(truncated), out_info

    def encode(self, features: np.ndarray | None = None) -> np.ndarray:
        """The observation vector of the current state (QUICK's answer included when it was read first).

        `features`: the encoder's row for this state, where it was encoded in a batch (`SwitchingVecEnv`)."""
        if features is None:
            features = self.encoder.encode(self._state, self._quick_result)
        vec = np.asarray(features, dtype=np.float32)
        if self.episode_obs:
            seen = self._ep.visits.get(self._text_obs, 1)
            vec = np.concatenate([vec, np.array([min(1.0, self._ep.t / self.horizon()), min(1.0, (seen - 1) / 3)],
                                                dtype=np.float32)])
        if self.budget_obs:
            z = self.budget_remaining()
            vec = np.concatenate([vec, np.array([1.0 if z is None else z], dtype=np.float32)])
        self._obs = vec
        return vec.copy()

    # ------------------------------------------------------------------ switcher-facing helpers
    def current_obs(self) -> np.ndarray:
        """The observation for the pending decision (resets first if no episode is running)."""
        if self._needs_reset:
            self.reset()
        return self._obs.copy()

    @property
    def state(self) -> TextState:
        """The current text state."""
        return self._state

    def context(self) -> DecisionContext:
        """What a switcher may read for the pending decision (see `DecisionContext`)."""
        if self._needs_reset:
            self.reset()
        ep = self._ep
        return DecisionContext(
            state=self._state,
            action_mask=self.action_masks(),
            rng=np.random.default_rng([ep.seed, ep.t, 7]),
            quick=self._quick_result,
            deepthink=self._peek,
            budget_remaining=self.budget_remaining(),
            episode_step=ep.t,
            recent=ep.recent.__dict__,
        )

    def budget_remaining(self) -> float | None:
        """z in [0, 1]: share of the episode's DEEPTHINK budget left (None without a budget)."""
        b = self._ep.budget if self._ep is not None else None
        if b is None:
            return None
        return float(budget_share(b, self._ep.used))

    def horizon(self) -> int:
        """The text env's step limit (`max_steps` / `step_limit` / the spec's), else DEFAULT_HORIZON."""
        inner = self.text_env.unwrapped
        for value in (getattr(inner, "max_steps", None), getattr(inner, "step_limit", None),
                      getattr(self.text_env.spec, "max_episode_steps", None) if self.text_env.spec else None):
            if value:
                return int(value)
        return DEFAULT_HORIZON

    @property
    def episode_index(self) -> int:
        return self._episode

    @property
    def episode(self) -> EpisodeRecord | None:
        """The episode in progress (or the one that just ended)."""
        return self._ep

    def episode_summary(self, success: bool, env_restarts: int = 0) -> dict[str, Any]:
        return EpisodeSummary.of(self._ep, success, env_restarts).as_dict()

    # ------------------------------------------------------------------ checkpointing
    def state_dict(self) -> dict[str, Any]:
        """JSON-able snapshot, restorable mid-episode (the text env is replayed from the episode seed)."""
        return {
            "base_seed": self.base_seed, "episode": self._episode, "cost": self.cost, "needs_reset": self._needs_reset,
            "ep": self._ep.to_dict() if self._ep is not None else None, "pending": self._pending,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.base_seed, self.cost = int(state["base_seed"]), float(state["cost"])
        ep = EpisodeRecord.from_dict(state["ep"]) if state.get("ep") else None
        if state["needs_reset"] or ep is None:
            self._episode, self._needs_reset, self._ep = int(state["episode"]), True, ep
            return
        obs, info = self.text_env.reset(seed=ep.seed)
        self.history.reset(obs, info)
        for idx in ep.actions:
            action = list(info["admissible_actions"])[idx]
            obs, _, terminated, truncated, info = self.text_env.step(idx)
            self.history.record(action, obs, info)
            if terminated or truncated:
                raise RuntimeError("replaying the checkpointed episode ended it early: the text env is not deterministic")
        self._episode = int(state["episode"])
        self._ep = ep
        self._needs_reset = False
        self._set_current(obs, info, terminal=False)
        self._read_first()  # QUICK's answer is part of the observation; the meters are restored after
        self.encode()
        self._pending = {k: dict(v) for k, v in state["pending"].items()}

    # ------------------------------------------------------------------ internals
    def _seed_policy(self, policy: LMPolicy, who: str) -> None:
        if self.reseed_policies:
            policy.seed(self.policy_seed(who))

    def _read_first(self) -> None:
        """Run what the decision reads first on a fresh state: QUICK (charged), DEEPTHINK (held as a peek)."""
        if self.needs_quick_first():
            self.set_quick(self._call("quick", self.quick, self.quick_hidden))
        if self.needs_deepthink_first():
            self.peek_deepthink()

    def _call(self, who: str, policy: LMPolicy, hidden: bool) -> ActResult:
        """One metered call on the current state; its usage (spent even if it fails) goes to this step."""
        self._seed_policy(policy, who)
        before = policy.meter.total()
        try:
            return policy.act_one(self._state, return_hidden=hidden)
        finally:
            after = usage_dict(policy.meter.total())
            self.charge(who, {k: after[k] - v for k, v in usage_dict(before).items()})

    def _warn_fallbacks(self) -> None:
        """One warning per episode that fell back, with the count: a DEEPTHINK that is down must not go unseen."""
        ep = self._ep
        if ep is not None and ep.fallbacks:
            log.warning(
                "episode seed %d: DEEPTHINK (%s) failed %d of the %d times it was asked (or looked at first), and "
                "QUICK acted instead "
                "(these steps count as fallbacks, not DEEPTHINK calls). Last error: %s",
                ep.seed, self.deepthink.name, ep.fallbacks, ep.fallbacks + ep.deepthink_calls,
                ep.fallback_error or "?")

    def _act(self, decision: int) -> tuple[ActResult, str, bool]:
        fallback = False
        if decision == DEEPTHINK and self._peek is not None:
            return self.take_peek(), "deepthink", False
        if decision == DEEPTHINK:
            try:
                return self._call("deepthink", self.deepthink, False), "deepthink", False
            except PolicyError as e:
                self.note_fallback(e)
                fallback = True
        if self._quick_result is None:
            self._quick_result = self._call("quick", self.quick, self.quick_hidden)
        return self._quick_result, "quick", fallback

    def _set_current(self, obs: str, info: Mapping[str, Any], terminal: bool) -> None:
        self._text_obs, self._text_info, self._terminal = obs, info, terminal
        self._state = TextState.from_env(obs, info, history=self.history.steps, env=self.text_env,
                                         step=self.history.t)
        self._quick_result = None
        self._peek = None
        self._peek_failed = False  # DEEPTHINK failed when looked at on this state

    def _update_recent(self, prev_obs: str, action: str, obs: str, env_reward: float, paid: bool) -> None:
        r = self._ep.recent
        pairs = deque(r.last_pairs, maxlen=3)
        pairs.append([prev_obs, action])
        r.last_pairs = list(pairs)
        r.no_change_streak = r.no_change_streak + 1 if obs == prev_obs else 0
        r.steps_since_progress = 0 if env_reward > 0 else r.steps_since_progress + 1
        r.deepthink_streak = r.deepthink_streak + 1 if paid else 0
