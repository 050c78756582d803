"""Distillation: the word tokenizer, expert demonstrations, and the `londi-distill` trainer (tiny runs)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

import envs
from londi.lm.demonstrations import collect, evaluate, rollout
from londi.lm.distill import LONDI_META, MODEL_DIR, batch_indices, load_config, main
from londi.lm.prompts import build_prompt
from londi.lm.state import TextState
from londi.lm.tokenization import SPECIAL_TOKENS, build_word_tokenizer, split_words

ENV = "BabyAI-Text-GoToLocal-v0"
if ENV not in envs.text_env_ids():  # until envs/babyai_text is on this branch
    pytest.skip(f"{ENV} is not registered by `import envs`", allow_module_level=True)


def make_env():
    return envs.make(ENV)


@pytest.fixture(scope="module")
def demos():
    d, stats = collect(make_env, 4, seed=3, noise=0.5, source="noisy")
    assert stats.episodes == 4 and len(d) == stats.steps > 0
    return d


# ------------------------------------------------------------------------------------------ tokenizer
def test_tokenizer_round_trips_env_text_and_reloads(demos, tmp_path):
    from transformers import AutoTokenizer

    tok = build_word_tokenizer(d.prompt for d in demos[:2])  # the base vocabulary must cover the rest
    for d in demos:
        ids = tok(d.prompt)["input_ids"]
        assert tok.unk_token_id not in ids, f"env word missing from the vocabulary: {d.prompt!r}"
        assert tok.decode(ids).split() == split_words(d.prompt)
    assert tok("zebra")["input_ids"] == [tok.unk_token_id]
    # prompt and action tokenized apart == together: what candidate scoring relies on
    p, a = demos[0].prompt, demos[0].action
    assert tok(p + a)["input_ids"] == tok(p)["input_ids"] + tok(a, add_special_tokens=False)["input_ids"]
    tok.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    assert loaded(p)["input_ids"] == tok(p)["input_ids"]
    assert [loaded.convert_ids_to_tokens(i) for i in range(4)] == list(SPECIAL_TOKENS)
    assert loaded.pad_token == "<pad>" and loaded.bos_token == "<s>"


# ------------------------------------------------------------------------------------------ demonstrations
def test_demonstration_labels_are_the_env_experts_action():
    env = make_env()
    seen = 0
    for noise in (0.0, 0.6):
        for d in rollout(env, seed=11, noise=noise, rng=np.random.default_rng(0)):
            # the generator is paused in the state it labelled: ask the env's expert ourselves
            assert d.action == env.unwrapped.expert_action()
            assert d.actions[d.label] == d.action
            seen += 1
    assert seen > 2


def test_expert_demonstrations_replay_to_success_and_prompts_match():
    demos, stats = collect(make_env, 3, seed=5)
    assert stats.success_rate == 1.0
    env = make_env()
    by_ep: dict[int, list] = {}
    for d in demos:
        by_ep.setdefault(d.episode, []).append(d)
    for ep, ds in by_ep.items():
        obs, info = env.reset(seed=ep)
        for d in ds:
            assert d.prompt == build_prompt(TextState.from_env(obs, info, env=env), history=0)
            obs, _, term, trunc, info = env.step(d.label)
        assert term and info["success"]


def test_collection_is_deterministic_and_noise_changes_trajectories():
    a, _ = collect(make_env, 3, seed=1, noise=0.5)
    b, _ = collect(make_env, 3, seed=1, noise=0.5)
    c, _ = collect(make_env, 3, seed=1, noise=0.0)
    assert a == b
    assert a != c


def test_evaluate_runs_the_learner_alone():
    always_left = evaluate(make_env, lambda s: s.admissible_actions.index("turn left"), 2, seed=0)
    assert always_left.episodes == 2 and always_left.success_rate == 0.0 and always_left.steps == 0


# ------------------------------------------------------------------------------------------ trainer
def test_batches_are_a_pure_function_of_the_step():
    seen = [i for s in range(5) for i in batch_indices(10, 4, seed=3, step=s)]
    assert sorted(seen[:10]) == list(range(10))  # the first 10 draws are one permutation
    assert batch_indices(10, 4, 3, 7) == batch_indices(10, 4, 3, 7)
    assert batch_indices(10, 4, 3, 7) != batch_indices(10, 4, 4, 7)


def test_config_rejects_unknown_keys_and_models():
    with pytest.raises(KeyError, match="stepz"):
        load_config(["stepz=3"])
    with pytest.raises(FileNotFoundError, match="neither a preset"):
        load_config(["model=no_such_model"])
    cfg = load_config(["model=tiny", "steps=7"])
    assert cfg.steps == 7 and cfg.arch.hidden_size == 16


def test_env_kwargs_reach_the_env_and_the_output_name():
    from londi.lm.distill import Distiller

    cfg = load_config(["model=tiny", "env_kwargs.max_episode_steps=5"])
    assert cfg.out.endswith(f"tiny-{ENV}-max_episode_steps=5-s0")
    env = Distiller(cfg).make_env()
    try:
        assert env.spec.max_episode_steps == 5
    finally:
        env.close()


def _run(out: Path, *extra: str) -> dict:
    return main(["model=tiny", f"env={ENV}", "progress=false", "steps=40", "episodes=6", f"out={out}", *extra])


def _weights(out: Path) -> dict[str, np.ndarray]:
    return load_file(str(out / MODEL_DIR / "model.safetensors"))


def test_tiny_distillation_learns_is_deterministic_and_resumes(tmp_path):
    meta = _run(tmp_path / "a")
    r0 = meta["rounds"]["0"]
    assert r0["final_loss"] < 0.7 * r0["first_loss"], r0
    assert meta["command"].startswith("londi-distill model=tiny")

    _run(tmp_path / "b")
    wa, wb = _weights(tmp_path / "a"), _weights(tmp_path / "b")
    assert wa.keys() == wb.keys()
    assert all(np.array_equal(wa[k], wb[k]) for k in wa)

    stopped = _run(tmp_path / "c", "stop_at=15")
    assert stopped["stopped_at"] == 15 and not (tmp_path / "c" / MODEL_DIR).exists()
    _run(tmp_path / "c")  # the same command again resumes from out/checkpoint.pt
    wc = _weights(tmp_path / "c")
    assert all(np.array_equal(wa[k], wc[k]) for k in wa)
    assert json.loads((tmp_path / "c" / MODEL_DIR / LONDI_META).read_text())["prompt"]["history"] == 0


def test_saved_model_loads_like_a_hub_model(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    _run(tmp_path, "steps=5")
    d = tmp_path / MODEL_DIR
    model = AutoModelForCausalLM.from_pretrained(d)
    tok = AutoTokenizer.from_pretrained(d)
    assert model.config.vocab_size == len(tok)
    assert (d / "model.safetensors").exists()


def test_hf_policy_runs_the_distilled_policy(tmp_path):
    from londi.lm.distill import CausalLMActor, evaluate_model_dir
    from londi.lm.hf import HFPolicy

    meta = _run(tmp_path, "steps=20")
    d = tmp_path / MODEL_DIR
    policy = HFPolicy(name="q", path=str(d))
    actor = CausalLMActor(policy.model, policy.tokenizer, history=0, max_prompt_tokens=meta["prompt"]["max_prompt_tokens"])
    env = make_env()
    obs, info = env.reset(seed=2)
    for _ in range(3):
        state = TextState.from_env(obs, info, env=env)
        res = policy.act_one(state)
        np.testing.assert_allclose(res.scores, actor.scores(state), rtol=1e-5, atol=1e-5)
        obs, _, term, trunc, info = env.step(res.index)
        if term or trunc:
            break
    assert policy.meter.total().flops > 0
    meta = evaluate_model_dir(d, ENV, episodes=2, seed=0)
    assert meta["eval"]["episodes"] == 2 and meta["eval"]["flops_per_step"] > 0
    card = (d / "MODEL_CARD.md").read_text()
    assert "londi-distill model=tiny" in card and "success" in card
