"""Switchers trained by stable-baselines3 (DQN, PPO) and sb3-contrib (MaskablePPO) on the `SwitchingEnv`.

What is added to SB3, and why:
- `_PinnedSchedule`: `learn` is called in chunks (between evaluations/checkpoints); the exploration and
  learning-rate schedules must still span the whole run, so progress is measured against the run's total.
- `BudgetMaskedQNetwork` / `MaskedDQN`: LONDI-B with DQN. DEEPTHINK's Q-value is masked wherever the
  budget feature (the observation's last entry) is 0, in action selection, exploration (warm-up included)
  and the TD target. Budget relabelling of its replay buffer: `londi.switch.relabel`.
- `_LeanDQNTrain`: DQN's gradient steps with the same updates and less overhead per step (at `n_envs=16` a
  vector step runs 16 of them): the batches of one `train` call are drawn in one replay-buffer call and their
  TD targets computed in one target-network forward, Adam is fused and gradient clipping uses foreach.
- `SwitchCostReplayBuffer`: stores the env reward and whether DEEPTHINK acted, and recomputes reward =
  env reward - cost x 1[DEEPTHINK] with the *current* cost, so a changing Lagrange multiplier does not
  leave stale costs in the replay buffer.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from sb3_contrib import MaskablePPO
from stable_baselines3 import DQN, PPO
from stable_baselines3.common.buffers import NStepReplayBuffer, ReplayBuffer
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import Logger
from stable_baselines3.common.utils import get_device
from stable_baselines3.dqn.policies import DQNPolicy, QNetwork

from londi.switch.base import DecisionContext, OnStep, Switcher

if TYPE_CHECKING:  # pragma: no cover
    from londi.switch.vec import SwitchingVecEnv

MASKED_Q = -1e9


class _PinnedSchedule:
    """Mixin: schedules progress over `_schedule_total` steps (the whole run), not the current chunk."""

    _schedule_total: int | None = None

    def _update_current_progress_remaining(self, num_timesteps: int, total_timesteps: int) -> None:
        total = self._schedule_total or total_timesteps
        super()._update_current_progress_remaining(num_timesteps, total)  # type: ignore[misc]


class BudgetMaskedQNetwork(QNetwork):
    """Q-network whose DEEPTHINK value is masked where the budget feature (last obs entry) is <= 0."""

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        q = super().forward(obs)
        spent = obs.reshape(obs.shape[0], -1)[:, -1] <= 1e-6
        mask = torch.zeros_like(q, dtype=torch.bool)
        mask[:, 1] = spent
        return q.masked_fill(mask, MASKED_Q)


class BudgetMaskedDQNPolicy(DQNPolicy):
    def make_q_net(self) -> QNetwork:
        net_args = self._update_features_extractor(self.net_args, features_extractor=None)
        return BudgetMaskedQNetwork(**net_args).to(self.device)


class _LeanDQNTrain:
    """Mixin for SB3's DQN: `train` makes the same gradient steps as SB3's with less per-step overhead.

    SB3 updates the target network only in `_on_step`, between `train` calls, so all the TD targets of one
    call can come from one forward pass. Buffers whose `sample(k * b)` is k independent uniform batches of b
    (SB3's own and `SwitchCostReplayBuffer`) are sampled once per call; others (budget relabelling returns
    extra rows) once per gradient step, as SB3 does. The optimizer is SB3's Adam with `fused=True`.
    """

    STACKABLE_BUFFERS: tuple[type, ...] = ()  # set below: ReplayBuffer, NStepReplayBuffer, SwitchCostReplayBuffer
    # At most this many gradient steps per update; more are merged into as many larger batches, so the samples
    # replayed per env step stay the same (None: no cap). With n_envs=16 and one step of 64 per env step,
    # 4 steps of 256 learn as well (results/switching.md) at a fraction of the per-step overhead.
    max_gradient_steps: int | None = None

    def _batches(self, gradient_steps: int, batch_size: int) -> list[Any]:
        buffer = self.replay_buffer
        if type(buffer) not in self.STACKABLE_BUFFERS:
            return [buffer.sample(batch_size, env=self._vec_normalize_env) for _ in range(gradient_steps)]
        data = buffer.sample(batch_size * gradient_steps, env=self._vec_normalize_env)
        fields = {k: (None if v is None else v.split(batch_size)) for k, v in data._asdict().items()}
        return [type(data)(**{k: (None if v is None else v[i]) for k, v in fields.items()})
                for i in range(gradient_steps)]

    def train(self, gradient_steps: int, batch_size: int = 100) -> None:
        cap = self.max_gradient_steps
        if cap is not None and gradient_steps > cap:
            batch_size, gradient_steps = -(-batch_size * gradient_steps // cap), cap
        self.policy.set_training_mode(True)
        self._update_learning_rate(self.policy.optimizer)
        batches = self._batches(gradient_steps, batch_size)
        with torch.no_grad():
            next_q = self.q_net_target(torch.cat([b.next_observations for b in batches])).max(dim=1)[0]
            targets = []
            for b, nq in zip(batches, next_q.split([len(b.rewards) for b in batches]), strict=True):
                discounts = b.discounts if b.discounts is not None else self.gamma
                targets.append(b.rewards + (1 - b.dones) * discounts * nq.reshape(-1, 1))
        losses = []
        for b, target in zip(batches, targets, strict=True):
            q = torch.gather(self.q_net(b.observations), dim=1, index=b.actions.long())
            loss = F.smooth_l1_loss(q, target)
            losses.append(loss.detach())
            self.policy.optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.policy.parameters(), self.max_grad_norm, foreach=True)
            self.policy.optimizer.step()
        self._n_updates += gradient_steps
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.record("train/loss", float(torch.stack(losses).mean()))


class SwitchDQN(_PinnedSchedule, _LeanDQNTrain, DQN):
    pass


class MaskedDQN(_PinnedSchedule, _LeanDQNTrain, DQN):
    """DQN whose epsilon-greedy exploration (and SB3's uniform warm-up) never picks DEEPTHINK at zero budget.

    A warm-up DEEPTHINK at zero budget would be refused (QUICK acts) but stored as action 1 at a masked state,
    whose Q-value is the constant MASKED_Q: no gradient, and a logged loss of ~1e8.
    """

    def _sample_action(self, learning_starts, action_noise=None, n_envs=1):  # type: ignore[override]
        action, buffer_action = super()._sample_action(learning_starts, action_noise, n_envs)
        spent = np.asarray(self._last_obs, dtype=np.float32).reshape(n_envs, -1)[:, -1] <= 1e-6
        return np.where(spent, 0, action), np.where(spent, 0, buffer_action)

    def predict(self, observation, state=None, episode_start=None, deterministic=False):  # type: ignore[override]
        action, state = super().predict(observation, state, episode_start, deterministic)
        obs = np.asarray(observation, dtype=np.float32).reshape(np.asarray(action).size, -1)
        action = np.where(obs[:, -1] <= 1e-6, 0, np.asarray(action).reshape(-1))
        return (action if np.ndim(observation) > 1 else action.reshape(())), state


class SwitchPPO(_PinnedSchedule, PPO):
    pass


class SwitchMaskablePPO(_PinnedSchedule, MaskablePPO):
    pass


class SwitchCostReplayBuffer(NStepReplayBuffer):
    """Replay buffer that recomputes switching rewards with the current cost at sampling time.

    An n-step buffer (SB3 sums the n rewards at sampling time, so the recomputed rewards flow into the
    n-step returns); `n_steps=1` is the plain one-step buffer.
    """

    def __init__(self, *args: Any, n_steps: int = 1, gamma: float = 0.99, **kwargs: Any):
        super().__init__(*args, n_steps=n_steps, gamma=gamma, **kwargs)
        self.env_rewards = np.zeros((self.buffer_size, self.n_envs), dtype=np.float32)
        self.paid = np.zeros((self.buffer_size, self.n_envs), dtype=np.float32)
        self.current_cost = 0.0
        self._cost_applied: float | None = None

    def add(self, obs, next_obs, action, reward, done, infos) -> None:  # type: ignore[override]
        for i, info in enumerate(infos):
            sw = info.get("switch", {})
            self.env_rewards[self.pos, i] = sw.get("env_reward", reward[i])
            self.paid[self.pos, i] = sw.get("deepthink_acted", 0)
        self._cost_applied = None
        super().add(obs, next_obs, action, reward, done, infos)

    def sample(self, batch_size: int, env=None):  # type: ignore[override]
        if self._cost_applied != self.current_cost:
            self.rewards[:] = self.env_rewards - self.current_cost * self.paid
            self._cost_applied = self.current_cost
        return super().sample(batch_size, env)


_LeanDQNTrain.STACKABLE_BUFFERS = (ReplayBuffer, NStepReplayBuffer, SwitchCostReplayBuffer)


def _silent_logger() -> Logger:
    """An SB3 logger that keeps values in memory (`name_to_value`, read by `_ForwardSteps`) and writes nothing.

    SB3's default logger makes a /tmp/SB3-<date> folder on every `learn`; the runner logs metrics itself.
    """
    return Logger(folder=None, output_formats=[])


class _ForwardSteps(BaseCallback):
    """Hands every env step's info to the runner, and caches SB3's latest training losses."""

    def __init__(self, on_step: OnStep, owner: SB3Switcher):
        super().__init__(verbose=0)
        self._fwd = on_step
        self._owner = owner

    def _on_rollout_start(self) -> None:
        values = self.model.logger.name_to_value
        for k, v in values.items():
            if k.startswith("train/") and k != "train/n_updates" and k != "train/learning_rate":
                self._owner.losses["losses/" + k.split("/", 1)[1]] = float(v)

    def _on_step(self) -> bool:
        for info in self.locals["infos"]:
            self._fwd(info)
        return True


LOSS_KEYS = {
    "dqn": ("losses/loss",),
    "ppo": ("losses/policy_gradient_loss", "losses/value_loss", "losses/entropy_loss", "losses/approx_kl",
            "losses/clip_fraction"),
}


class SB3Switcher(Switcher):
    """A switcher learned by an SB3 algorithm on the `SwitchingEnv` (`algo`: dqn | ppo).

    `masked=True` (LONDI-B) uses the budget-masked DQN or MaskablePPO. `cost` is the per-call cost the env
    charges. The algorithm's arguments are `dqn` or `ppo` (whichever `algo` names; both are in the config,
    so either can be overridden: `switcher.dqn.train_freq=4`), the network shape `net_arch`.
    """

    learns = True
    masked = False

    def __init__(
        self,
        *,
        algo: str,
        cost: float,
        dqn: Mapping[str, Any],
        ppo: Mapping[str, Any],
        net_arch: list[int],
        device: str,
        needs_quick_output: bool,
    ):
        if algo not in ("dqn", "ppo"):
            raise ValueError(f"{self.name}: algo must be 'dqn' or 'ppo', got {algo!r}")
        self.algo = str(algo)
        self.cost = float(cost)
        self.algo_kwargs = dict(dqn if algo == "dqn" else ppo)  # the arguments of the chosen algorithm
        self.net_arch = list(net_arch)
        self.device = device
        self.needs_quick_output = needs_quick_output
        self.model: Any = None
        self.losses: dict[str, float] = {}
        self._env: SwitchingVecEnv | None = None
        self._n_envs = 1

    # ---------------------------------------------------------------- construction
    def env_options(self, train: bool) -> dict[str, Any]:
        return {**super().env_options(train), "cost": self.cost}

    @property
    def step_quantum(self) -> int:  # type: ignore[override]
        if self.algo == "ppo":  # a rollout: n_steps per env
            return int(self.algo_kwargs["n_steps"]) * self._n_envs
        tf = self.algo_kwargs["train_freq"]  # vector steps between updates
        return int(tf if isinstance(tf, int) else tf[0]) * self._n_envs

    def _algo(self) -> tuple[type, Any, dict[str, Any]]:
        if self.algo == "ppo":
            cls = SwitchMaskablePPO if self.masked else SwitchPPO
            return cls, "MlpPolicy", dict(self.algo_kwargs)
        kwargs = dict(self.algo_kwargs)
        kwargs.pop("max_gradient_steps", None)  # londi's, not SB3's: set on the model (see _LeanDQNTrain)
        if self.masked:
            return MaskedDQN, BudgetMaskedDQNPolicy, kwargs
        return SwitchDQN, "MlpPolicy", kwargs

    def _configure(self, model: Any) -> None:
        if self.algo == "dqn":
            cap = self.algo_kwargs.get("max_gradient_steps")
            model.max_gradient_steps = int(cap) if cap is not None else None

    def setup(self, env: SwitchingVecEnv, seed: int, total_steps: int | None = None) -> None:
        self._env = env
        self._n_envs = env.num_envs
        cls, policy, kwargs = self._algo()
        policy_kwargs: dict[str, Any] = {"net_arch": self.net_arch}
        if self.algo == "dqn" and get_device(self.device).type in ("cpu", "cuda"):
            policy_kwargs["optimizer_kwargs"] = {"fused": True}  # one kernel per Adam step: most of a small net's update
        self.model = cls(policy, env, seed=seed, device=self.device, verbose=0, policy_kwargs=policy_kwargs, **kwargs)
        self._configure(self.model)
        self.model._schedule_total = total_steps
        self.model.set_logger(_silent_logger())

    # ---------------------------------------------------------------- learning / acting
    def learn(self, env: SwitchingVecEnv, steps: int, on_step: OnStep) -> None:
        if self.model is None:
            raise RuntimeError(f"{self.name}: call setup(env, seed, total_steps) before learn")
        self.model.learn(steps, reset_num_timesteps=False, callback=_ForwardSteps(on_step, self), log_interval=None)

    def decide(self, obs: np.ndarray, ctx: DecisionContext) -> int:
        if self.masked and self.algo == "ppo":
            action, _ = self.model.predict(obs, deterministic=True, action_masks=ctx.action_mask)
        else:
            action, _ = self.model.predict(obs, deterministic=True)
        return int(action) if ctx.action_mask[int(action)] else 0

    def metrics(self) -> dict[str, float]:
        """SB3's latest training losses under fixed names (NaN before the first update)."""
        return {k: self.losses.get(k, float("nan")) for k in LOSS_KEYS[self.algo]}

    # ---------------------------------------------------------------- checkpointing
    def state_dict(self) -> dict[str, Any]:
        return {"losses": self.losses}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.losses = {k: float(v) for k, v in state.get("losses", {}).items()}

    def save(self, directory: str | Path) -> None:
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        self.model.save(path / "model.zip")
        if hasattr(self.model, "replay_buffer") and self.model.replay_buffer is not None:
            self.model.save_replay_buffer(path / "replay_buffer.pkl")
        extra = {"action_space_rng": self.model.action_space.np_random.bit_generator.state, "state": self.state_dict()}
        (path / "switcher.json").write_text(json.dumps({"name": self.name, **extra}))

    def _check_net_arch(self, path: Path) -> None:
        """The loaded weights bring their own network shape: one other than the configured `net_arch` (e.g.
        londi-evaluate's `+override.switcher.net_arch`) would be dropped in silence, so it is an error."""
        from londi.errors import ConfigError

        saved = (getattr(self.model, "policy_kwargs", None) or {}).get("net_arch")
        if isinstance(saved, list | tuple) and list(saved) != self.net_arch:
            raise ConfigError(
                f"{self.name}: the switcher in {path} was trained with net_arch={list(saved)}, not the configured "
                f"{self.net_arch}; its weights fix the network's shape, so set switcher.net_arch={list(saved)}")

    def load(self, directory: str | Path) -> None:
        path = Path(directory)
        if not (path / "model.zip").exists():
            raise FileNotFoundError(f"{path / 'model.zip'} missing: not an SB3 switcher checkpoint")
        cls, _, _ = self._algo()
        total = self.model._schedule_total if self.model is not None else None
        with warnings.catch_warnings():  # the saved model names its n-step buffer class; SB3 warns on reload
            warnings.filterwarnings("ignore", message=".*n_steps.*is ignored because a custom")
            self.model = cls.load(path / "model.zip", env=self._env, device=self.device, force_reset=False)
        self.model._schedule_total = total
        self._check_net_arch(path)
        self._configure(self.model)
        self.model.set_logger(_silent_logger())
        if (path / "replay_buffer.pkl").exists():
            self.model.load_replay_buffer(path / "replay_buffer.pkl")
        meta = json.loads((path / "switcher.json").read_text())
        self.model.action_space.np_random.bit_generator.state = meta["action_space_rng"]
        self.load_state_dict(meta["state"])
        if self._env is not None:
            self.model._last_obs = self._env.current_obs()
            self.model._last_original_obs = self.model._last_obs
