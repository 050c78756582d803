"""Budget relabelling for LONDI-B's DQN: every stored transition also trains the Q-network under other budgets.

The text env's dynamics do not depend on the budget; only the mask and the budget feature z (the
observation's last entry, z = remaining / N, 0 when N = 0) do. So a stored step taken with b calls left
is also a step a run with starting budget N' and b' calls left could have taken, provided every
DEEPTHINK request in its n-step window stays feasible (b' minus the DEEPTHINK calls made before it in the
window is >= 1). The relabelled sample keeps actions, rewards, dones and discounts, and only rewrites z
before (b' / N') and at the n-th next state ((b' - calls in the window) / N').

Sampling (`BudgetRelabelReplayBuffer`): each sampled transition comes back as itself plus one relabelled
copy, so a gradient step sees at most 2x the batch (the originals are exactly SB3's n-step samples).
The copy's budget: N' uniform over the training range's budgets that can afford the window's DEEPTHINK
calls, then b' uniform over the remaining counts that keep them feasible. No copy is made for a window
without a feasible budget, nor for one that holds a blocked request (DEEPTHINK asked at zero budget, QUICK
acted): under a budget with calls left, DEEPTHINK would have acted there, so no other budget reproduces it.

b' is also at least N' - j, where j is the number of steps before the transition in its episode: no run has
spent more calls than it has taken steps (before 2026-12-08 the draw ignored j, and about a fifth of the
copies on the 12-step toy corridor were states no run reaches).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
from stable_baselines3.common.buffers import NStepReplayBuffer
from stable_baselines3.common.type_aliases import ReplayBufferSamples

from londi.switch.env import budget_share

DEEPTHINK = 1


class Window(NamedTuple):
    """The n-step windows of sampled transitions, cut as SB3's `NStepReplayBuffer` cuts them."""

    batch_inds: np.ndarray  # [B] buffer position of the sampled step
    env_indices: np.ndarray  # [B]
    indices: np.ndarray  # [B, n] buffer positions of the window's steps
    mask: np.ndarray  # [B, n] True up to and including the first done/timeout (or the write head)
    last: np.ndarray  # [B] buffer position of the window's last step


class BudgetRelabelReplayBuffer(NStepReplayBuffer):
    """An n-step replay buffer that returns each sampled transition plus one copy relabelled to another budget.

    Per step it also stores the episode's budget N, the calls left before the step (b) and whether
    DEEPTHINK acted, read from `info["switch"]` at `add` time; these arrays are plain attributes, so
    `save_replay_buffer`/`load_replay_buffer` (pickle) carry them. `budget_range` = (lo, hi): the budgets
    N' a copy may be relabelled to (the switcher's training range). `last_relabel` describes the copies of
    the latest sample (for tests and diagnostics).
    """

    def __init__(self, *args: Any, budget_range: tuple[int, int] | list[int], n_steps: int = 1, gamma: float = 0.99,
                 **kwargs: Any):
        super().__init__(*args, n_steps=n_steps, gamma=gamma, **kwargs)
        if len(self.obs_shape) != 1:
            raise ValueError(f"budget relabelling needs flat observations (budget feature last), got shape {self.obs_shape}")
        lo, hi = (int(b) for b in budget_range)
        if not 0 <= lo <= hi:
            raise ValueError(f"budget relabelling: budget_range must be (lo, hi) with 0 <= lo <= hi, got {budget_range}")
        self.budget_range = (lo, hi)
        self.budgets = np.zeros((self.buffer_size, self.n_envs), dtype=np.int32)
        self.remaining = np.zeros((self.buffer_size, self.n_envs), dtype=np.int32)
        self.acted = np.zeros((self.buffer_size, self.n_envs), dtype=bool)
        self.steps = np.zeros((self.buffer_size, self.n_envs), dtype=np.int32)  # env steps before it in its episode
        self.last_relabel: dict[str, np.ndarray] | None = None

    def __setstate__(self, state: dict[str, Any]) -> None:
        """A buffer pickled before `steps` existed: its transitions keep the old draw (no step bound)."""
        self.__dict__.update(state)
        if "steps" not in state:
            import warnings

            warnings.warn("budget relabelling: a replay buffer saved without the episode step of each transition; "
                          "its stored transitions are relabelled without the b' >= N' - j bound", stacklevel=2)
            self.steps = np.full((self.buffer_size, self.n_envs), np.iinfo(np.int32).max // 2, dtype=np.int32)

    # ------------------------------------------------------------------ storing
    def add(self, obs, next_obs, action, reward, done, infos) -> None:  # type: ignore[override]
        if len(infos) != self.n_envs:
            raise ValueError(f"budget relabelling: {len(infos)} infos for {self.n_envs} envs")
        flat_obs = np.asarray(obs, dtype=np.float32).reshape(self.n_envs, -1)
        for i, info in enumerate(infos):
            sw = info.get("switch")
            if sw is None or sw.get("budget") is None:
                raise KeyError("budget relabelling needs info['switch'] with the episode's 'budget' (a SwitchingEnv "
                               "with a hard budget); got " + repr(sorted(sw) if sw else info.keys()))
            n, acted = int(sw["budget"]), int(sw["deepthink_acted"])
            used_before = int(sw["episode_calls"]) - acted
            z = float(budget_share(np.array(n), np.array(used_before)))
            if abs(float(flat_obs[i, -1]) - z) > 1e-6:
                raise ValueError(f"budget relabelling: the observation's last feature is {flat_obs[i, -1]:.6g}, but "
                                 f"budget {n} with {used_before} calls used gives z = {z:.6g}: the budget feature "
                                 "must be the observation's last entry (SwitchingEnv with budget_obs=True)")
            self.budgets[self.pos, i] = n
            self.remaining[self.pos, i] = n - used_before
            self.acted[self.pos, i] = bool(acted)
            self.steps[self.pos, i] = int(sw["episode_step"])
        super().add(obs, next_obs, action, reward, done, infos)

    # ------------------------------------------------------------------ sampling
    def _get_samples(self, batch_inds: np.ndarray, env=None) -> ReplayBufferSamples:  # type: ignore[override]
        env_indices = np.random.randint(0, self.n_envs, size=batch_inds.shape)  # as SB3's n-step buffer draws them
        window = self.window(batch_inds, env_indices)
        budget, remaining, ok = self.draw_budgets(window)
        orig = self._arrays(window, env)
        copy = self._arrays(_select(window, ok), env, budget[ok], remaining[ok])
        self.last_relabel = {"batch_inds": batch_inds[ok], "env_indices": env_indices[ok], "budget": budget[ok],
                             "remaining": remaining[ok], "n_original": np.array(len(batch_inds))}
        return ReplayBufferSamples(*(self.to_torch(np.concatenate([a, b])) for a, b in zip(orig, copy, strict=True)))

    def relabelled(self, batch_inds: np.ndarray, env_indices: np.ndarray, budget: np.ndarray,
                   remaining: np.ndarray) -> tuple[ReplayBufferSamples, np.ndarray]:
        """The given transitions relabelled to starting budget `budget` (N') with `remaining` (b') calls left.

        Returns the samples of the feasible ones and the boolean mask saying which were feasible.
        """
        window = self.window(np.asarray(batch_inds), np.asarray(env_indices))
        budget, remaining = np.asarray(budget, dtype=np.int64), np.asarray(remaining, dtype=np.int64)
        need, relabelable = self._needs(window)
        ok = relabelable & (remaining >= need) & (remaining <= budget) & (remaining >= 0)
        arrays = self._arrays(_select(window, ok), None, budget[ok], remaining[ok])
        return ReplayBufferSamples(*(self.to_torch(a) for a in arrays)), ok

    def window(self, batch_inds: np.ndarray, env_indices: np.ndarray) -> Window:
        """SB3's n-step windows: cut after the first done/timeout, and at the write head (not overlapping it)."""
        last_valid = self.pos - 1
        steps = np.arange(self.n_steps).reshape(1, -1)
        indices = (batch_inds[:, None] + steps) % self.buffer_size
        ends = (self.dones[indices, env_indices[:, None]] + self.timeouts[indices, env_indices[:, None]]) > 0
        ends |= indices == (last_valid % self.buffer_size)  # the write head: the next step is not stored yet
        done_idx = np.where(ends.any(axis=1), ends.argmax(axis=1), self.n_steps - 1)
        mask = steps <= done_idx[:, None]
        return Window(batch_inds, env_indices, indices, mask, (batch_inds + done_idx) % self.buffer_size)

    def draw_budgets(self, window: Window) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(N', b', feasible) per window: N' uniform over the range's budgets >= the calls the window needs, then
        b' uniform over the counts a run can have left there: >= those calls, and >= N' - j after j steps."""
        need, relabelable = self._needs(window)
        lo, hi = self.budget_range
        first = np.maximum(lo, need)
        n_budgets = hi - first + 1
        ok = relabelable & (n_budgets > 0)
        budget = first + np.random.randint(0, np.maximum(n_budgets, 1))
        least = np.maximum(need, budget - self.steps[window.batch_inds, window.env_indices])
        remaining = least + np.random.randint(0, np.maximum(budget - least + 1, 1))
        return budget, remaining, ok

    # ------------------------------------------------------------------ internals
    def _needs(self, window: Window) -> tuple[np.ndarray, np.ndarray]:
        """Fewest calls left before the window that keep its DEEPTHINK requests feasible, and whether any budget can."""
        e = window.env_indices[:, None]
        asked = (self.actions[window.indices, e].reshape(window.indices.shape) == DEEPTHINK) & window.mask
        acted = self.acted[window.indices, e] & window.mask
        before = np.cumsum(acted, axis=1) - acted  # DEEPTHINK calls made in the window before each step
        need = np.where(asked, before + 1, 0).max(axis=1)
        blocked = asked & ~acted & (self.remaining[window.indices, e] == 0)
        return need, ~blocked.any(axis=1)

    def _arrays(self, window: Window, env, budget: np.ndarray | None = None,
                remaining: np.ndarray | None = None) -> tuple[np.ndarray, ...]:
        """(obs, actions, next_obs, dones, n-step returns, discounts) as numpy, as SB3's n-step buffer computes them;
        with `budget`/`remaining`, the budget feature rewritten for starting budget N' and b' calls left."""
        e, es = window.env_indices, window.env_indices[:, None]
        rewards = self._normalize_reward(self.rewards[window.indices, es], env)
        discounts = self.gamma ** np.arange(self.n_steps, dtype=np.float32).reshape(1, -1)
        returns = (rewards * discounts * window.mask).sum(axis=1, keepdims=True)
        target_discounts = self.gamma ** window.mask.sum(axis=1, keepdims=True).astype(np.float32)  # as SB3 (float32)
        obs = self.observations[window.batch_inds, e].copy()
        next_obs = self.next_observations[window.last, e].copy()
        if budget is not None:
            calls = (self.acted[window.indices, es] & window.mask).sum(axis=1)
            obs[:, -1] = budget_share(budget, budget - remaining)
            next_obs[:, -1] = budget_share(budget, budget - remaining + calls)
        next_dones = self.dones[window.last, e][:, None].astype(np.float32)
        next_timeouts = self.timeouts[window.last, e][:, None].astype(np.float32)
        return (self._normalize_obs(obs, env), self.actions[window.batch_inds, e],
                self._normalize_obs(next_obs, env), next_dones * (1.0 - next_timeouts), returns, target_discounts)


def _select(window: Window, keep: np.ndarray) -> Window:
    return Window(*(a[keep] for a in window))
