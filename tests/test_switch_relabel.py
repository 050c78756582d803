"""LONDI-B budget relabelling: a relabelled sample is exactly what a run at that budget could have produced.

Reference runs replay the recorded episode in a fresh `SwitchingEnv` at budget N' (same seed, the text
env is deterministic) and read its n-step sample from SB3's own `NStepReplayBuffer`.
"""

import csv
import zlib

import numpy as np
import pytest
import torch
from stable_baselines3.common.buffers import NStepReplayBuffer

from londi.lm.baselines import RandomPolicy
from londi.lm.policy import ActResult
from londi.runner import run
from londi.switch.env import SwitchingEnv
from londi.switch.relabel import BudgetRelabelReplayBuffer
from londi.switch.toy import CorridorTextEnv, NoisyExpertPolicy
from londi.switch.vec import SwitchingVecEnv
from tests.helpers import expert, hashed, random_policy, switcher

N_STEPS, GAMMA, COST = 3, 0.9, 0.1
FIELDS = ("observations", "actions", "next_observations", "dones", "rewards", "discounts")


class StateRandom(RandomPolicy):
    """Random-looking but a function of (observation, step) only: QUICK and DEEPTHINK take the same text action,
    so any switching decisions give the same text trajectory and any (N', calls left) can be reached."""

    def _act(self, states, usage, return_hidden):
        out = []
        for s in states:
            i = int(np.random.default_rng([s.step, zlib.crc32(s.obs.encode())]).integers(len(s.admissible_actions)))
            out.append(ActResult(index=i, action=s.admissible_actions[i]))
            usage.calls += 1
        return out


def _policies(kind):
    if kind == "same":
        return StateRandom(name="q", seed=0), StateRandom(name="d", seed=0)
    return random_policy("q"), expert("d")


def _env(kind, seed, budget=None, budget_range=None):
    quick, deepthink = _policies(kind)
    return SwitchingEnv(CorridorTextEnv(length=10, max_steps=12), quick, deepthink, encoder=hashed(8), cost=COST,
                        budget=budget, budget_range=budget_range, budget_obs=True, seed=seed)


def _buffer(env, n_envs, size, budget_range, cls=BudgetRelabelReplayBuffer, **kw):
    if cls is BudgetRelabelReplayBuffer:
        kw["budget_range"] = budget_range
    return cls(size, env.observation_space, env.action_space, device="cpu", n_envs=n_envs, n_steps=N_STEPS,
               gamma=GAMMA, **kw)


def _step(env, decision):
    """One step as SB3's DummyVecEnv hands it to the buffer (the terminal observation is next_obs)."""
    obs, reward, term, trunc, info = env.step(decision)
    info["TimeLimit.truncated"] = trunc and not term
    return obs, reward, term or trunc, info


def record(kind, n_envs=2, steps=150, size=64, budget_range=(0, 3), seed=0):
    """Fill a relabel buffer from `n_envs` envs in lockstep with random decisions that ignore the mask (so some
    DEEPTHINK requests are blocked); returns the buffer and, per (position, env), (episode, step in it)."""
    envs = [_env(kind, seed + 100 * i, budget=1, budget_range=budget_range) for i in range(n_envs)]
    buf = _buffer(envs[0], n_envs, size, budget_range)
    rng = np.random.default_rng(seed)
    obs = [e.reset()[0] for e in envs]
    episodes = [{"seed": e._ep.seed, "budget": e._ep.budget, "asked": [], "acted": [], "blocked": []} for e in envs]
    where = {}
    for _ in range(steps):
        acts = (rng.random(n_envs) < 0.3).astype(np.int64)
        out = [_step(e, int(a)) for e, a in zip(envs, acts, strict=True)]
        for i, (ep, (_, _, _, info)) in enumerate(zip(episodes, out, strict=True)):
            where[(buf.pos, i)] = (ep, len(ep["asked"]))
            ep["asked"].append(int(acts[i]))
            ep["acted"].append(info["switch"]["deepthink_acted"])
            ep["blocked"].append(info["switch"]["blocked"])
        buf.add(np.stack(obs), np.stack([o[0] for o in out]), acts, np.array([o[1] for o in out]),
                np.array([o[2] for o in out]), [o[3] for o in out])
        for i, (e, o) in enumerate(zip(envs, out, strict=True)):
            obs[i] = o[0]
            if o[2]:
                obs[i] = e.reset()[0]
                episodes[i] = {"seed": e._ep.seed, "budget": e._ep.budget, "asked": [], "acted": [], "blocked": []}
    return buf, where


def reference(kind, ep, j, budget, remaining):
    """SB3's n-step sample of step j of episode `ep` replayed at starting budget N' with `remaining` calls left at j.

    Before j: DEEPTHINK for the first N' - b' steps then QUICK when QUICK and DEEPTHINK act alike ("same"),
    else the recorded actors (then b' must be N' - calls used before j). From j: the recorded requests, as far
    as the episode was recorded. Returns (samples, whether any request in the window was blocked).
    """
    env = _env(kind, ep["seed"], budget=budget)
    obs, _ = env.reset()
    assert env._ep.seed == ep["seed"]
    used = budget - remaining
    prefix = [int(t < used) for t in range(j)] if kind == "same" else ep["acted"][:j]
    assert sum(prefix) == used
    for a in prefix:
        obs, _, done, _ = _step(env, a)
        assert not done
    ref = _buffer(env, 1, N_STEPS + 1, None, cls=NStepReplayBuffer)
    blocked = False
    for a in ep["asked"][j:j + N_STEPS]:
        next_obs, reward, done, info = _step(env, a)
        blocked |= info["switch"]["blocked"]
        ref.add(obs[None], next_obs[None], np.array([a]), np.array([reward]), np.array([done]), [info])
        obs = next_obs
        if done:
            break
    return ref._get_samples(np.array([0])), blocked


def _same(a, b, row):
    for f in FIELDS:
        x, y = getattr(a, f)[row], getattr(b, f)[0]
        assert torch.equal(x, y), (f, x, y)


@pytest.mark.parametrize("n_envs", [1, 2])
def test_relabelled_samples_equal_a_run_with_the_same_actions_at_that_budget(n_envs):
    """QUICK random, DEEPTHINK the expert: a run at N' with the same actors reaches step j with N' - used calls left."""
    buf, where = record("differ", n_envs=n_envs)
    checked = {"valid": 0, "invalid": 0, "zero_budget": 0}
    for (pos, e), (ep, j) in sorted(where.items(), key=lambda kv: kv[0]):
        if pos >= (buf.buffer_size if buf.full else buf.pos) or (buf.full and pos == buf.pos):
            continue  # not sampleable
        used = sum(ep["acted"][:j])
        for budget in range(used, 6):
            samples, ok = buf.relabelled([pos], [e], [budget], [budget - used])
            want, blocked = reference("differ", ep, j, budget, budget - used)
            if ok[0]:
                assert not blocked
                _same(samples, want, 0)
                checked["zero_budget"] += budget == 0
            else:  # infeasible only where the run at N' (or the recorded one) had a DEEPTHINK request refused
                recorded_blocked = any(ep["blocked"][j:j + N_STEPS])
                assert blocked or recorded_blocked
            checked["valid" if ok[0] else "invalid"] += 1
    print(checked)
    assert checked["valid"] > 100 and checked["invalid"] > 10 and checked["zero_budget"] > 5, checked


@pytest.mark.parametrize("n_envs", [1, 3])
def test_sampled_relabels_equal_a_run_at_the_drawn_budget(n_envs):
    """Through `sample()`: each copy's (N', b') is what a run at N' that reached step j with b' calls left produced."""
    np.random.seed(1)
    buf, where = record("same", n_envs=n_envs, budget_range=(0, 3))
    compared, origins, targets = 0, set(), set()
    for _ in range(20):
        batch = buf.sample(32)
        info = buf.last_relabel
        n0 = int(info["n_original"])
        assert batch.observations.shape[0] == n0 + len(info["budget"]) <= 2 * n0
        for k, (pos, e, budget, remaining) in enumerate(
                zip(info["batch_inds"], info["env_indices"], info["budget"], info["remaining"], strict=True)):
            ep, j = where[(int(pos), int(e))]
            assert budget - remaining <= j  # every copy is reachable: no more calls spent than steps taken
            want, blocked = reference("same", ep, j, int(budget), int(remaining))
            assert not blocked
            _same(batch, want, n0 + k)
            compared += 1
            origins.add(ep["budget"])
            targets.add(int(budget))
    assert compared > 150 and targets == {0, 1, 2, 3} and 0 in origins and len(origins) >= 3, (compared, origins)


def test_sampled_relabels_are_feasible():
    """No relabelled DEEPTHINK request at zero calls left, anywhere in the n-step window; blocked windows are left out."""
    np.random.seed(2)
    buf, where = record("differ", n_envs=2, budget_range=(0, 2), steps=200, size=128)
    relabelled = 0
    for _ in range(30):
        batch = buf.sample(64)
        info = buf.last_relabel
        n0 = int(info["n_original"])
        z = batch.observations[n0:, -1]
        asked = batch.actions[n0:, 0] == 1
        assert torch.all(z[asked] > 0)  # the masked Q-network would not mask the chosen action
        for pos, e, budget, left in zip(info["batch_inds"], info["env_indices"], info["budget"], info["remaining"],
                                        strict=True):
            ep, j = where[(int(pos), int(e))]
            assert 0 <= info["budget"].min() and info["budget"].max() <= 2 and 0 <= left <= budget
            for t in range(j, min(j + N_STEPS, len(ep["asked"]))):
                assert not ep["blocked"][t]
                assert not ep["asked"][t] or left >= 1
                left -= ep["acted"][t]
            relabelled += 1
    assert relabelled > 500


def test_the_originals_in_a_sample_are_sb3s_n_step_samples():
    """The first rows of a relabelling sample are what SB3's `NStepReplayBuffer` returns (full buffer, 2 envs)."""
    buf, _ = record("differ", n_envs=2, steps=150, size=64)
    assert buf.full
    for seed in range(5):
        np.random.seed(seed)
        batch = buf.sample(48)
        np.random.seed(seed)
        inds = np.random.randint(0, buf.buffer_size, size=48)  # as SB3's sample() (full buffer)
        want = NStepReplayBuffer._get_samples(buf, inds)
        for f in FIELDS:
            assert torch.equal(getattr(batch, f)[:48], getattr(want, f)), f
        assert batch.observations.shape[0] > 48


def test_a_blocked_request_is_never_relabelled():
    env = _env("differ", 0, budget=0)
    buf = _buffer(env, 1, 32, (0, 4))
    obs, _ = env.reset()
    for _ in range(20):
        next_obs, reward, done, info = _step(env, 1)  # always asks, always refused at N = 0
        assert info["switch"]["blocked"]
        buf.add(obs[None], next_obs[None], np.array([1]), np.array([reward]), np.array([done]), [info])
        obs = env.reset()[0] if done else next_obs
    batch = buf.sample(16)
    assert batch.observations.shape[0] == 16 and len(buf.last_relabel["budget"]) == 0


def test_add_refuses_an_observation_without_the_budget_feature():
    env = _env("differ", 0, budget=2)
    buf = _buffer(env, 1, 8, (0, 4))
    obs, _ = env.reset()
    next_obs, reward, done, info = _step(env, 1)
    with pytest.raises(ValueError, match="last feature"):
        buf.add(np.zeros_like(obs)[None], next_obs[None], np.array([1]), np.array([reward]), np.array([done]), [info])
    with pytest.raises(KeyError, match="budget"):
        buf.add(obs[None], next_obs[None], np.array([1]), np.array([reward]), np.array([done]), [{}])


def test_relabel_switch_builds_the_relabel_buffer_and_is_refused_for_ppo():
    env = SwitchingVecEnv([_env("differ", 0, budget=2, budget_range=(0, 5))])
    on = switcher("londi_b", "switcher.budget_range=[0,5]")
    assert on.relabel
    on.setup(env, seed=0, total_steps=100)
    rb = on.model.replay_buffer
    assert type(rb) is BudgetRelabelReplayBuffer and rb.budget_range == (0, 5) and rb.n_steps == 5
    off = switcher("londi_b", "switcher.relabel=false")
    off.setup(env, seed=0, total_steps=100)
    assert type(off.model.replay_buffer) is NStepReplayBuffer
    fixed = switcher("londi_b", "switcher.budget=3", "switcher.budget_range=null")
    fixed.setup(SwitchingVecEnv([_env("differ", 0, budget=3)]), seed=0, total_steps=100)
    assert fixed.model.replay_buffer.budget_range == (3, 3)
    with pytest.raises(ValueError, match="relabel"):
        switcher("londi_b", "switcher.algo=ppo")
    switcher("londi_b", "switcher.algo=ppo", "switcher.relabel=false")


@pytest.mark.parametrize("relabel", ["true", "false"])
def test_warm_up_never_stores_deepthink_at_zero_budget(relabel):
    """SB3's uniform warm-up actions are masked too: a refused request would be stored as action 1 at z = 0."""
    env = SwitchingVecEnv([_env("differ", 0, budget=1, budget_range=(0, 2))])
    sw = switcher("londi_b", "switcher.budget=1", "switcher.budget_range=[0,2]", "switcher.dqn.learning_starts=1000",
                  f"switcher.relabel={relabel}")
    sw.setup(env, seed=0, total_steps=300)
    blocked = []
    sw.learn(env, 300, lambda info: blocked.append(info["switch"]["blocked"]))
    rb = sw.model.replay_buffer
    z, actions = rb.observations[:300, 0, -1], rb.actions[:300, 0, 0]
    assert not any(blocked) and (actions == 1).sum() > 20 and not (actions[z <= 1e-6] == 1).any()


def test_relabel_buffer_survives_save_and_load(tmp_path):
    env = SwitchingVecEnv([_env("differ", 0, budget=2, budget_range=(0, 4))])
    sw = switcher("londi_b", "switcher.budget_range=[0,4]", "switcher.dqn.learning_starts=30")
    sw.setup(env, seed=0, total_steps=200)
    sw.learn(env, 80, lambda info: None)
    sw.save(tmp_path / "ckpt")
    before = sw.model.replay_buffer
    sw.load(tmp_path / "ckpt")
    after = sw.model.replay_buffer
    assert after is not before and type(after) is BudgetRelabelReplayBuffer
    for name in ("budgets", "remaining", "acted", "observations", "actions", "rewards", "dones", "timeouts"):
        assert np.array_equal(getattr(after, name), getattr(before, name)), name
    assert after.budget_range == before.budget_range and after.pos == before.pos and after.n_steps == 5
    state = np.random.get_state()
    a = before.sample(32)
    np.random.set_state(state)
    b = after.sample(32)
    for f in FIELDS:
        assert torch.equal(getattr(a, f), getattr(b, f)), f
    assert before.budgets[:80].max() > 0 and (before.remaining[:80] < before.budgets[:80]).any()


# ------------------------------------------------------------------------------------------------ end to end
class _Crash(Exception):
    pass


def _run_args(tmp, *overrides):
    return dict(env_fn=lambda: CorridorTextEnv(length=8, max_steps=20), quick=NoisyExpertPolicy(),
                deepthink=expert("deepthink", 10**6),
                switcher=switcher("londi_b", "switcher.budget=2", "switcher.budget_range=[0,4]",
                                  "switcher.dqn.learning_starts=50", "switcher.dqn.target_update_interval=50", *overrides),
                run_dir=tmp, seed=3, total_steps=400, eval_episodes=5, eval_every=100, log_every=20,
                encoder=hashed(32))


def _rows(path):
    drop = ("charts/SPS", "compute/quick_seconds", "compute/deepthink_seconds", "compute/gpu_seconds")
    with open(path, newline="") as f:
        return [{k: v for k, v in r.items() if k not in drop and not k.endswith("device_seconds")} for r in csv.DictReader(f)]


def test_londi_b_with_relabelling_trains_and_resumes_exactly(tmp_path):
    full = run(**_run_args(tmp_path / "full"))
    losses = [float(r["losses/loss"]) for r in _rows(tmp_path / "full" / "metrics.csv") if r["losses/loss"]]
    trained = [x for x in losses if not np.isnan(x)]  # NaN before the first update
    assert len(trained) > 10 and max(trained) < 10  # no masked (action 1 at z = 0) rows: their loss is ~1e8
    assert full.final_eval["eval/deepthink_calls"] <= 2
    run(**_run_args(tmp_path / "cut"), stop_after_steps=130)

    def crash(step, metrics):
        if step == 260:
            raise _Crash

    with pytest.raises(_Crash):
        run(**_run_args(tmp_path / "cut"), callbacks=[crash])
    resumed = run(**_run_args(tmp_path / "cut"))
    assert resumed.resumed_from == 200
    assert resumed.final_eval == full.final_eval
    for f in ("metrics.csv", "episodes.csv"):
        assert _rows(tmp_path / "cut" / f) == _rows(tmp_path / "full" / f), f
    off = run(**_run_args(tmp_path / "off", "switcher.relabel=false"))  # the switch changes what is learned
    assert _rows(tmp_path / "off" / "metrics.csv") != _rows(tmp_path / "full" / "metrics.csv")
    assert off.total_steps == 400
