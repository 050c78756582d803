"""Many envs at once: batched LM calls, exact per-episode compute, budgets per env, exact reproducibility."""

import csv

import numpy as np
import pytest

import envs
from londi.runner import make_switching_env, run
from londi.switch.baselines import AlwaysDeepthink
from londi.switch.env import SwitchingEnv
from londi.switch.toy import CorridorTextEnv, NoisyExpertPolicy
from londi.switch.vec import SwitchingVecEnv
from tests.helpers import expert, hashed, random_policy, switcher, tiny


def test_budget_holds_in_every_env_and_episode_with_8_envs():
    sw = AlwaysDeepthink()  # asks for DEEPTHINK at every state
    q, d = random_policy("q"), random_policy("d")
    vec = SwitchingVecEnv([SwitchingEnv(CorridorTextEnv(length=12, max_steps=15), q, d, encoder=hashed(16), budget=3,
                                        budget_range=(0, 5)) for _ in range(8)], seed=11)
    ended = []
    sw.learn(vec, 8 * 60, lambda info: ended.append(info["switch"]["episode"]) if "episode" in info["switch"] else None)
    assert len(ended) > 30 and {e["budget"] for e in ended} == {0, 1, 2, 3, 4, 5}
    for e in ended:
        assert e["deepthink_calls"] == min(e["budget"], e["env_steps"])  # every allowed request granted...
        assert e["deepthink_calls"] <= e["budget"]  # ...and never one more
    seeds = sorted(e["episode_seed"] for e in ended)
    assert len(set(seeds)) == len(seeds)  # each env has its own stream of episode seeds


def test_batched_calls_charge_each_state_exactly_what_it_alone_would_cost():
    quick = tiny(name="quick", arch="llama", history=0)
    deep = tiny(name="deepthink", arch="gpt2", history=1, model_seed=3)
    envs_ = [SwitchingEnv(envs.make("BabyAI-Text-GoToLocal-v0"), quick, deep, encoder=hashed(16, quick_features=True))
             for _ in range(3)]
    vec = SwitchingVecEnv(envs_, seed=5)
    before_q = quick.meter.total()
    vec.reset()  # QUICK reads the three first states in one batch: that is charged to the first step
    after_q, before_d = quick.meter.total(), deep.meter.total()
    states = [e.state for e in envs_]
    _, _, _, infos = vec.step(np.array([1, 0, 1]))
    # what each state's calls cost alone, measured on fresh copies of the same models
    alone_q = [tiny(name="quick", arch="llama", history=0).act_one(s).usage for s in states]
    alone_d = [tiny(name="deepthink", arch="gpt2", history=1, model_seed=3).act_one(s).usage for s in states]
    for i, info in enumerate(infos):
        u = info["switch"]["usage"]
        assert u["quick"]["calls"] == 1  # QUICK read every state first (the encoder's features)
        assert u["quick"]["tokens"] == alone_q[i].tokens and u["quick"]["flops"] == pytest.approx(alone_q[i].flops)
        if i in (0, 2):
            assert u["deepthink"]["calls"] == 1 and u["deepthink"]["tokens"] == alone_d[i].tokens
            assert u["deepthink"]["flops"] == pytest.approx(alone_d[i].flops)
        else:
            assert u["deepthink"]["calls"] == 0
    # the shares add up to what the meters recorded for the batched calls (seconds included)
    dq = after_q.device_seconds - before_q.device_seconds
    assert sum(i["switch"]["usage"]["quick"]["device_seconds"] for i in infos) == pytest.approx(dq, rel=1e-6)
    dd = deep.meter.total().flops - before_d.flops
    assert sum(i["switch"]["usage"]["deepthink"]["flops"] for i in infos) == pytest.approx(dd)


def _rows(path):
    drop = ("charts/SPS",)
    with open(path, newline="") as f:
        return [{k: v for k, v in r.items() if k not in drop and "seconds" not in k} for r in csv.DictReader(f)]


class _Crash(Exception):
    pass


@pytest.mark.parametrize("name", ["londi", "lagrangian"])
def test_n_envs_run_reproduces_itself_through_kill_and_resume(tmp_path, name):
    extra = ("switcher.dqn.learning_starts=40", "switcher.dqn.target_update_interval=40")
    if name == "lagrangian":
        extra += ("switcher.target_calls=1.0",)

    def args(d, **kw):
        return dict(env_fn=lambda: CorridorTextEnv(length=8, max_steps=20), quick=NoisyExpertPolicy(),
                    deepthink=expert("deepthink", 10**6), switcher=switcher(name, *extra), run_dir=tmp_path / d,
                    encoder=hashed(32), seed=7, total_steps=400, eval_episodes=6, eval_every=100, log_every=20,
                    n_envs=4, **kw)

    full = run(**args("full"))
    again = run(**args("again"))
    assert again.final_eval == full.final_eval
    run(**args("cut"), stop_after_steps=120)

    def crash(step, metrics):
        if step == 260:
            raise _Crash

    with pytest.raises(_Crash):
        run(**args("cut", callbacks=[crash]))
    resumed = run(**args("cut"))
    assert resumed.resumed_from == 200 and resumed.final_eval == full.final_eval
    for f in ("metrics.csv", "episodes.csv"):
        assert _rows(tmp_path / "cut" / f) == _rows(tmp_path / "full" / f), f
        assert _rows(tmp_path / "again" / f) == _rows(tmp_path / "full" / f), f


def test_evaluation_spreads_its_seeds_over_the_envs_and_matches_one_env():
    from londi.runner import run_episodes

    sw = switcher("oracle")
    mk = lambda n: make_switching_env(lambda: CorridorTextEnv(length=10, max_steps=30),  # noqa: E731
                                      NoisyExpertPolicy(hard_error=0.6), expert("d"), sw, hashed(16), seed=0,
                                      train=False, n_envs=n)
    one = run_episodes(mk(1), sw, 9, seed=100)
    four = run_episodes(mk(4), sw, 9, seed=100)
    assert [e["episode_seed"] for e in four] == list(range(100, 109))
    assert [(e["env_steps"], e["deepthink_calls"], e["success"]) for e in four] == \
        [(e["env_steps"], e["deepthink_calls"], e["success"]) for e in one]


def test_resuming_with_another_n_envs_fails_loudly():
    q, d = random_policy("q"), expert("d")
    vec = lambda n: SwitchingVecEnv([SwitchingEnv(CorridorTextEnv(), q, d, encoder=hashed(16))  # noqa: E731
                                     for _ in range(n)])
    a = vec(2)
    a.reset()
    with pytest.raises(ValueError, match="n_envs=2"):
        vec(3).load_state_dict(a.state_dict())
