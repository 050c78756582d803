"""Many switching envs at once, with one batched call per model per step: an SB3 `VecEnv`.

`SwitchingVecEnv(envs)` runs N `SwitchingEnv`s (sharing QUICK and DEEPTHINK) through the
phases of their step (`londi.switch.env`): at every vector step, the states whose switcher chose DEEPTHINK
go to DEEPTHINK in one `act` call, the states QUICK must answer (QUICK acts, or a DEEPTHINK that failed
fell back, or QUICK reads every state first) go to QUICK in one call, then every text env steps and the
encoder reads the new states in one call (`Encoder.encode_batch`). Text
envs whose `send` returns at once (worker processes, `envs.subproc.SubprocTextEnv`) step side by side.

Compute stays exact per episode: each state gets its own tokens and FLOPs from the batched call and a
share of its seconds in proportion to its tokens (`londi.lm.policy.split_usage`). Hard budgets hold per env
and episode (each env masks its own DEEPTHINK requests). A batched call that fails is retried state by
state, so one failing state falls back alone and every failure is charged to its own step; so is a
batched look at DEEPTHINK's answers (`needs_deepthink_output`), each failed look a fallback of its own env.

Seeding: env i plays episodes `seed + i`, `seed + i + N`, `seed + i + 2N`, ... (its own stream; with N = 1
the single env's seeds). A batched call gives each state its own generator, seeded from its env's
(episode seed, step) as a single env would (`LMPolicy.seed` with one seed per state), so a sampling
policy chooses as it would one state at a time: an episode's course depends on its seed, not on N or on
which env played it (evaluation results do not change with n_envs), and a run with the same seed and N
reproduces itself, checkpoint and resume included (`state_dict`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvIndices, VecEnvStepReturn

from londi.lm.policy import ActResult, LMPolicy, PolicyError
from londi.switch.base import DEEPTHINK, QUICK, DecisionContext
from londi.switch.env import SwitchingEnv, usage_dict


class SwitchingVecEnv(VecEnv):
    """N `SwitchingEnv`s stepped together (see the module doc). `envs[i].base_seed` is set to `seed + i`
    and their seed stride to N."""

    def __init__(self, envs: Sequence[SwitchingEnv], seed: int = 0):
        if not envs:
            raise ValueError("SwitchingVecEnv needs at least one SwitchingEnv")
        first = envs[0]
        if any(e.quick is not first.quick or e.deepthink is not first.deepthink for e in envs):
            raise ValueError("the envs of a SwitchingVecEnv must share one QUICK and one DEEPTHINK (batched calls)")
        self.envs = list(envs)
        self.quick, self.deepthink = first.quick, first.deepthink
        super().__init__(len(envs), first.observation_space, first.action_space)
        self.rebase(seed)
        self._actions: np.ndarray | None = None
        self.paused: set[int] = set()  # envs that sit a step out (an evaluation whose share of episodes is done)

    # ---------------------------------------------------------------- seeds and shared settings
    def rebase(self, seed: int) -> None:
        """Restart every env's episode count on its own stream: env i plays seed + i, seed + i + N, ..."""
        self.base_seed = int(seed)
        for i, e in enumerate(self.envs):
            e.base_seed, e.seed_stride, e._episode = self.base_seed + i, self.num_envs, 0  # noqa: SLF001

    @property
    def cost(self) -> float:
        return self.envs[0].cost

    @cost.setter
    def cost(self, value: float) -> None:  # the Lagrangian switcher's lambda reaches every env
        for e in self.envs:
            e.cost = float(value)

    # ---------------------------------------------------------------- SB3 VecEnv API
    def reset(self) -> np.ndarray:
        """Start a new episode in every env (the next of its own seed stream)."""
        self.reset_infos = [e.begin_episode() for e in self.envs]
        self._quick_first(range(self.num_envs))
        return np.stack(self._encode(range(self.num_envs)))

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions).reshape(self.num_envs)

    def step_wait(self) -> VecEnvStepReturn:
        if self._actions is None:
            raise RuntimeError("step_wait() without step_async()")
        actions, self._actions = self._actions, None
        n = self.num_envs
        live = [i for i in range(n) if i not in self.paused]
        requests: list[tuple[int, int, bool]] = [(QUICK, QUICK, False)] * n
        for i in live:
            requests[i] = self.envs[i].request(int(actions[i]))
        results: list[ActResult | None] = [None] * n
        actor = ["quick"] * n
        fallback = [False] * n
        asked = []
        for i in live:
            if requests[i][1] == DEEPTHINK and self.envs[i].call_needed(DEEPTHINK) is None:
                results[i], actor[i] = self.envs[i].take_peek(), "deepthink"  # looked at first (the oracle)
            elif requests[i][1] == DEEPTHINK:
                asked.append(i)
        for i, out in self._call("deepthink", asked, hidden=False).items():
            if isinstance(out, PolicyError):
                self.envs[i].note_fallback(out)  # raises unless the env falls back to QUICK
                fallback[i] = True
            else:
                results[i], actor[i] = out, "deepthink"
        need_quick = [i for i in live if results[i] is None and self.envs[i].call_needed(QUICK) == "quick"]
        for i, out in self._call("quick", need_quick, hidden=self.envs[0].quick_hidden).items():
            if isinstance(out, Exception):
                raise out
            self.envs[i].set_quick(out)
        for i in live:
            if results[i] is None:
                results[i] = self.envs[i]._quick_result  # noqa: SLF001 - QUICK's answer on this state
            self.envs[i].send(results[i])
        rewards = np.zeros(n, dtype=np.float32)
        dones = np.zeros(n, dtype=bool)
        infos: list[dict[str, Any]] = [{"paused": True} for _ in range(n)]
        for i in live:
            e = self.envs[i]
            requested, _, blocked = requests[i]
            reward, terminated, truncated, info = e.finish(requested, blocked, results[i], actor[i], fallback[i])
            rewards[i], dones[i] = reward, terminated or truncated
            info["TimeLimit.truncated"] = bool(truncated and not terminated)
            infos[i] = info
        ended = [int(i) for i in np.flatnonzero(dones)]
        for i, terminal in zip(ended, self._encode(ended), strict=True):  # SB3: the next episode starts at once
            infos[i]["terminal_observation"] = terminal
            self.reset_infos[i] = self.envs[i].begin_episode()
        self._quick_first(live)
        self._encode(live)
        obs = np.stack([e._obs for e in self.envs])  # noqa: SLF001
        return obs, rewards, dones, infos

    def close(self) -> None:
        for e in self.envs:
            e.close()

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        return [getattr(self.envs[i], attr_name) for i in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        for i in self._get_indices(indices):
            setattr(self.envs[i], attr_name, value)

    def env_method(self, method_name: str, *method_args: Any, indices: VecEnvIndices = None, **method_kwargs: Any
                   ) -> list[Any]:
        return [getattr(self.envs[i], method_name)(*method_args, **method_kwargs) for i in self._get_indices(indices)]

    def env_is_wrapped(self, wrapper_class: type, indices: VecEnvIndices = None) -> list[bool]:
        return [isinstance(self.envs[i], wrapper_class) for i in self._get_indices(indices)]

    def action_masks(self) -> np.ndarray:
        """(N, 2) masks: MaskablePPO reads them."""
        return np.stack([e.action_masks() for e in self.envs])

    # ---------------------------------------------------------------- what switchers read
    def current_obs(self) -> np.ndarray:
        """(N, d) observations for the pending decisions (envs with no episode running start one)."""
        fresh = [i for i, e in enumerate(self.envs) if e._needs_reset]  # noqa: SLF001
        for i in fresh:
            self.reset_infos[i] = self.envs[i].begin_episode()
        if fresh:
            self._quick_first(fresh)
            self._encode(fresh)
        return np.stack([e._obs for e in self.envs])  # noqa: SLF001

    def contexts(self) -> list[DecisionContext]:
        self.current_obs()
        return [e.context() for e in self.envs]

    @property
    def last_results(self) -> list[dict[str, ActResult | None]]:
        return [e.last_results for e in self.envs]

    # ---------------------------------------------------------------- checkpointing
    def state_dict(self) -> dict[str, Any]:
        return {"num_envs": self.num_envs, "base_seed": self.base_seed, "envs": [e.state_dict() for e in self.envs]}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if int(state["num_envs"]) != self.num_envs:
            raise ValueError(f"this checkpoint was made with n_envs={state['num_envs']}, not {self.num_envs}: "
                             f"resume it with n_envs={state['num_envs']}")
        self.base_seed = int(state["base_seed"])
        for e, s in zip(self.envs, state["envs"], strict=True):
            e.load_state_dict(s)

    # ---------------------------------------------------------------- internals
    def _quick_first(self, indices: Iterable[int]) -> None:
        """What the decisions read first, batched: QUICK's answers (charged), DEEPTHINK's (held as peeks)."""
        indices = list(indices)
        todo = [i for i in indices if self.envs[i].needs_quick_first()]
        for i, out in self._call("quick", todo, hidden=self.envs[0].quick_hidden).items():
            if isinstance(out, Exception):
                raise out
            self.envs[i].set_quick(out)
        peek = [i for i in indices if self.envs[i].needs_deepthink_first()]
        if peek:
            envs = [self.envs[i] for i in peek]
            if envs[0].reseed_policies:
                self.deepthink.seed([e.policy_seed("deepthink") for e in envs])
            try:
                results = self.deepthink.act([e.state for e in envs])
            except PolicyError:  # state by state, as a single env looks: each failure is its own env's, and loud
                for e in envs:
                    e.peek_deepthink()
                return
            for e, r in zip(envs, results, strict=True):
                e.set_deepthink_peek(r)

    def _encode(self, indices: Iterable[int]) -> list[np.ndarray]:
        """Encode the current states of `indices`, one encoder call per distinct encoder (`make_switching_env`'s
        envs share one); returns their observations."""
        indices = list(indices)
        groups: dict[int, list[int]] = {}
        for i in indices:
            groups.setdefault(id(self.envs[i].encoder), []).append(i)
        out: dict[int, np.ndarray] = {}
        for group in groups.values():
            envs = [self.envs[i] for i in group]
            rows = envs[0].encoder.encode_batch([e.state for e in envs], [e._quick_result for e in envs])  # noqa: SLF001
            out.update((i, e.encode(row)) for i, e, row in zip(group, envs, rows, strict=True))
        return [out[i] for i in indices]

    def _call(self, who: str, indices: Sequence[int], hidden: bool) -> dict[int, ActResult | Exception]:
        """One batched call of `who` on the current states of `indices`; each env is charged its share.

        A batch that raises `PolicyError` is retried state by state, so each failure lands on its own env.
        """
        if not indices:
            return {}
        policy: LMPolicy = self.quick if who == "quick" else self.deepthink
        envs = [self.envs[i] for i in indices]
        if envs[0].reseed_policies:  # each state its own generator: the same choices as one call per env
            policy.seed([e.policy_seed(who) for e in envs])
        before = usage_dict(policy.meter.total())
        try:
            results = policy.act([e.state for e in envs], return_hidden=hidden)
        except PolicyError:
            after = usage_dict(policy.meter.total())  # the failed batch's compute, shared out evenly
            for e in envs:
                e.charge(who, {k: (after[k] - v) / len(envs) for k, v in before.items()})
            return {i: _one(self.envs[i], who, policy, hidden) for i in indices}
        for e, r in zip(envs, results, strict=True):
            e.charge(who, usage_dict(r.usage))
        return dict(zip(indices, results, strict=True))


def _one(env: SwitchingEnv, who: str, policy: LMPolicy, hidden: bool) -> ActResult | PolicyError:
    try:
        return env._call(who, policy, hidden)  # noqa: SLF001 - charges its own usage, failed or not
    except PolicyError as e:
        return e


def make_vec_env(make_env: Callable[[int], SwitchingEnv], n_envs: int, seed: int) -> SwitchingVecEnv:
    """`n_envs` envs from `make_env(i)` behind one `SwitchingVecEnv`."""
    if n_envs < 1:
        raise ValueError(f"n_envs must be >= 1, got {n_envs}")
    return SwitchingVecEnv([make_env(i) for i in range(n_envs)], seed=seed)
