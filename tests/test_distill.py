"""Distillation: the word tokenizer, expert demonstrations, and the `londi-distill` trainer (tiny runs)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

import envs
from londi.config import compose
from londi.lm.demonstrations import collect, evaluate, rollout
from londi.lm.distill import CURVE, LONDI_META, MODEL_DIR, BatchStream, Sequences, _load_demos, run_config
from londi.lm.prompts import build_prompt, get_prompt_builder
from londi.lm.state import EpisodeHistory, TextState
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
def test_batches_are_a_pure_function_of_the_step_and_cover_each_epoch():
    lengths = np.array([5, 1, 9, 3, 7, 2, 8, 4, 6, 10])
    stream = BatchStream(lengths, 4, seed=3, bucket=2)
    assert stream.per_epoch == 3  # one bucket of 8 (2 batches) + one of 2 (1 batch)
    epoch0 = [i for s in range(stream.per_epoch) for i in stream.batch(s)]
    assert sorted(epoch0) == list(range(10))
    assert BatchStream(lengths, 4, 3, 2).batch(7) == stream.batch(7)
    assert [b.tolist() for b in BatchStream(lengths, 4, 4, 2).epoch_batches(0)] != [b.tolist() for b in stream.epoch_batches(0)]
    for b in stream.epoch_batches(1):  # within a bucket, batches hold neighbouring lengths
        assert max(lengths[b]) - min(lengths[b]) <= 6


def test_config_rejects_unknown_keys_and_models():
    from hydra.errors import ConfigCompositionException, MissingConfigException

    with pytest.raises(ConfigCompositionException, match="stepz"):
        compose("distill", ["stepz=3"])
    with pytest.raises(MissingConfigException, match="distill_model/no_such_model"):
        compose("distill", ["distill_model=no_such_model"])
    with pytest.raises(ConfigCompositionException):
        compose("distill", ["steps=many"])
    cfg = compose("distill", ["distill_model=tiny", "steps=7"])
    assert cfg.steps == 7 and cfg.arch.hidden_size == 16 and cfg.out == "outputs/distill/tiny-s0"


def test_env_kwargs_reach_the_env():
    from londi.lm.distill import Distiller

    cfg = compose("distill", ["distill_model=tiny", f"envs={ENV}", "+env_kwargs.max_episode_steps=5"])
    env = Distiller(cfg).make_env()
    try:
        assert env.spec.max_episode_steps == 5
    finally:
        env.close()


def _cfg(out: Path, *extra: str):
    return compose("distill", ["distill_model=tiny", f"envs={ENV}", "progress=false", "steps=40", "episodes=6",
                               f"out={out}", *extra])


def _run(out: Path, *extra: str) -> dict:
    return run_config(_cfg(out, *extra), command="londi-distill distill_model=tiny " + " ".join(extra))


def _weights(out: Path) -> dict[str, np.ndarray]:
    return load_file(str(out / MODEL_DIR / "model.safetensors"))


def test_tiny_distillation_learns_is_deterministic_and_resumes(tmp_path):
    meta = _run(tmp_path / "a")
    r0 = meta["rounds"]["0"]
    assert r0["final_loss"] < 0.7 * r0["first_loss"], r0
    assert meta["command"].startswith("londi-distill distill_model=tiny")

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


def test_resuming_with_other_settings_fails_loudly(tmp_path):
    _run(tmp_path, "stop_at=5")
    with pytest.raises(ValueError, match="other settings.*lr"):
        _run(tmp_path, "lr=0.5")


def test_multi_env_dagger_packing_and_learning_curve(tmp_path):
    envs2 = f"envs=[{ENV},BabyAI-Text-PickupLocal-v0]"
    meta = _run(tmp_path, envs2, "history=2", "history_chunk=3", "max_prompt_tokens=500", "dagger_rounds=1",
                "dagger_episodes=2", "dagger_steps=6", "eval_every=20", "eval_episodes_round=2", "eval_episodes=2")
    assert set(meta["eval"]["levels"]) == {ENV, "BabyAI-Text-PickupLocal-v0"}
    assert {"GoToLocal/expert", "PickupLocal/noisy", "PickupLocal/dagger1"} <= set(meta["collection"])
    # the recorded training seeds are exactly the reset seeds each env's demonstrations were collected on
    demos = [d for f in sorted((tmp_path / "data").glob("round*.jsonl")) for d in _load_demos(f)]
    recorded = json.loads((tmp_path / MODEL_DIR / LONDI_META).read_text())["train_seeds"]
    assert set(recorded) == {d.env for d in demos} and len(recorded) == 2
    for env_id, ranges in recorded.items():
        assert {d.episode for d in demos if d.env == env_id} == {s for lo, hi in ranges for s in range(lo, hi)}
        assert len(ranges) == 3  # expert, noisy, DAgger round 1
    assert meta["prompt"] == {"family": "babyai_text", "history": 2, "history_chunk": 3, "max_prompt_tokens": 500,
                              "add_bos": False, "options": {}}
    rows = [json.loads(ln) for ln in (tmp_path / CURVE).read_text().splitlines()]
    assert [r["step"] for r in rows] == [20, 40, 46]  # every 20 steps and at each round's end
    assert all(r["train_flops"] > 0 and set(r["success"]) == set(meta["eval"]["levels"]) for r in rows)
    assert rows[-1]["samples"] > rows[0]["samples"]
    # packing: fewer sequences than labelled states, since the prompts of a history chunk extend one another
    assert meta["rounds"]["0"]["sequences"] < meta["rounds"]["0"]["samples"]
    card = (tmp_path / MODEL_DIR / "MODEL_CARD.md").read_text()
    assert "| GoToLocal |" in card and "| PickupLocal |" in card and "CPU-ms" in card


def test_chunked_history_prompts_extend_one_another_and_pack_exactly():
    """history=2, chunk=3: steps 0-4 show 0,1,2,3,4 past steps, step 5 starts over at 2 (one sequence per run)."""
    import torch

    from londi.lm.distill import build_model
    from londi.lm.scoring import ActionScorer

    builder = get_prompt_builder("babyai_text", history=2, history_chunk=3)
    demos, _ = collect(make_env, 3, seed=7, noise=0.5, prompt=builder, env_id=ENV)
    tok = build_word_tokenizer(d.prompt for d in demos)
    model = build_model({"model_type": "llama", "hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1,
                         "num_attention_heads": 2, "num_key_value_heads": 2}, tok)
    scorer = ActionScorer(model.eval(), tok, max_prompt_tokens=2048)
    data = Sequences(demos, scorer, pack=True)
    assert data.labels == len(demos) and len(data) < len(demos)
    # a packed sequence gives every step the log-prob the scorer gives it alone
    k = int(np.argmax([len(s) for s in data.spans]))
    first = sum(len(s) for s in data.spans[:k])
    batch = data.batch([k])
    with torch.no_grad():
        lp = torch.log_softmax(model(input_ids=batch["input_ids"]).logits[0], -1)
    ids = batch["input_ids"][0]
    for j, (lo, hi) in enumerate(data.spans[k]):
        d = demos[first + j]
        packed = sum(float(lp[t - 1, ids[t]]) for t in range(lo, hi))
        alone = scorer.score([d.prompt], [d.actions]).scores[0][d.label]
        assert packed == pytest.approx(alone, abs=1e-4)
    # the window: shown past steps per episode step
    env = make_env()
    hist = EpisodeHistory(builder.history_needed)
    obs, info = env.reset(seed=0)
    hist.reset(obs, info)
    shown = []
    for _ in range(8):
        state = hist.state(obs, info, env=env)
        shown.append(builder.steps_shown(state))
        a = state.admissible_actions.index("turn left")
        obs, _, _, _, info = env.step(a)
        hist.record("turn left", obs, info)
    assert shown == [0, 1, 2, 3, 4, 2, 3, 4]


def test_a_state_with_too_little_history_fails_loudly():
    builder = get_prompt_builder("babyai_text", history=2, history_chunk=3)
    env = make_env()
    hist = EpisodeHistory(2)  # the builder needs 4
    obs, info = env.reset(seed=0)
    hist.reset(obs, info)
    for _ in range(3):
        obs, _, _, _, info = env.step(0)
        hist.record("turn left", obs, info)
    with pytest.raises(ValueError, match="keep at least 4 steps of history"):
        builder.build(hist.state(obs, info, env=env))


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
    from tests.helpers import hf_policy

    meta = _run(tmp_path, "steps=20")
    d = tmp_path / MODEL_DIR
    policy = hf_policy(name="q", path=str(d))
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
    assert meta["eval"]["levels"][ENV]["episodes"] == 2 and meta["eval"]["flops_per_call"] > 0
    card = (d / "MODEL_CARD.md").read_text()
    assert "londi-distill distill_model=tiny" in card and "success" in card


def test_sampled_evaluation_is_seeded_and_kept_beside_the_greedy_one(tmp_path, monkeypatch):
    from londi.lm.distill import evaluate_model_dir
    from londi.lm.hf import HFPolicy

    _run(tmp_path, "steps=20")
    d = tmp_path / MODEL_DIR
    greedy = evaluate_model_dir(d, ENV, episodes=3, seed=0)["eval"]
    decodings = set()
    choose = HFPolicy._choose

    def recording_choose(self, scores, i=0):
        decodings.add((self.greedy, self.temperature))
        return choose(self, scores, i)

    monkeypatch.setattr(HFPolicy, "_choose", recording_choose)
    meta = evaluate_model_dir(d, ENV, episodes=3, seed=0, temperature=0.7)
    assert decodings == {(False, 0.7)}  # the policy that played sampled, at that temperature
    assert meta["eval_sampled"]["0.7"]["levels"][ENV]["episodes"] == 3
    assert "sampled at temperature 0.7, seed 0" in meta["eval_sampled"]["0.7"]["policy"]
    assert meta["eval"] == greedy  # a sampled measurement leaves the greedy one alone
    card = (d / "MODEL_CARD.md").read_text()
    assert "| success (greedy) | sampled, T=0.7 |" in card
    with pytest.raises(ValueError, match="eval_temperature must be > 0"):
        evaluate_model_dir(d, ENV, episodes=1, seed=0, temperature=0.0)


def test_cli_help_lists_the_keys():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "londi.lm.distill", "--help"], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert "distill_model: deepthink, quick, tiny" in out.stdout and "history_chunk" in out.stdout


def test_merged_object_tokens_keep_prompt_and_action_apart_and_reload(tmp_path):
    from transformers import AutoTokenizer

    demos, _ = collect(make_env, 3, seed=4, noise=0.5)
    tok = build_word_tokenizer((d.prompt for d in demos), merge_objects=True)
    prompt = "Goal of the agent: go to the red ball \n Observation 0: You see a red ball 2 steps forward, "
    tokens = tok.convert_ids_to_tokens(tok(prompt)["input_ids"])
    assert tokens.count("red_ball") == 2 and "red" not in tokens  # one token per colour + object
    assert len(tokens) == len(split_words(prompt, merge_objects=True))  # the prompt builder counts the same
    for d in demos:  # what candidate scoring relies on still holds
        assert tok(d.prompt + d.action)["input_ids"] == tok(d.prompt)["input_ids"] + tok(d.action)["input_ids"]
        assert tok.unk_token_id not in tok(d.prompt)["input_ids"]
    tok.save_pretrained(tmp_path)
    assert AutoTokenizer.from_pretrained(tmp_path)(prompt)["input_ids"] == tok(prompt)["input_ids"]


def test_merged_offset_tokens_make_each_distance_one_token_and_reload(tmp_path):
    from transformers import AutoTokenizer

    demos, _ = collect(make_env, 3, seed=4, noise=0.5)
    tok = build_word_tokenizer((d.prompt for d in demos), merge_objects=True, merge_offsets=True)
    prompt = ("Goal of the agent: go to the red ball \n Observation 0: You see a wall 1 step left, "
              "You see a red ball 2 steps right and 3 steps forward, \n Action 0: turn left")
    tokens = tok.convert_ids_to_tokens(tok(prompt)["input_ids"])
    i = tokens.index("red_ball", tokens.index("Observation"))
    assert tokens[i : i + 5] == ["red_ball", "right_2", "and", "forward_3", ","]
    assert {"left_1", "right_2", "forward_3"} <= set(tokens) and "steps" not in tokens and "step" not in tokens
    assert tokens[-2:] == ["turn", "left"]  # an action's words are not offsets
    assert tokens == split_words(prompt, merge_objects=True, merge_offsets=True)  # the prompt builder counts the same
    for d in demos:
        assert tok(d.prompt + d.action)["input_ids"] == tok(d.prompt)["input_ids"] + tok(d.action)["input_ids"]
        assert tok.unk_token_id not in tok(d.prompt)["input_ids"]
    tok.save_pretrained(tmp_path)
    assert AutoTokenizer.from_pretrained(tmp_path)(prompt)["input_ids"] == tok(prompt)["input_ids"]


def test_finish_at_saves_the_model_as_trained_so_far_and_skips_later_rounds(tmp_path):
    extra = ("dagger_rounds=1", "dagger_episodes=2", "dagger_steps=6", "eval_episodes=2")
    _run(tmp_path, *extra, "stop_at=30")  # a checkpoint inside round 0
    meta = _run(tmp_path, *extra, "finish_at=40")  # the same run resumed, ended at round 0's end (step 40)
    assert meta["finished_early"] == {"step": 40, "planned_steps": 46, "rounds_done": 1}
    assert meta["training"]["step"] == 40 and "1" not in meta["rounds"]
    assert not (tmp_path / "data" / "round1.jsonl").exists()  # no DAgger collection for a skipped round
    assert (tmp_path / MODEL_DIR / "model.safetensors").exists()
    assert "ended early by `finish_at` at step 40 of the recipe's 46" in (tmp_path / MODEL_DIR / "MODEL_CARD.md").read_text()


def test_compact_tokens_drop_fixed_words_and_make_each_object_and_place_one_token(tmp_path):
    from transformers import AutoTokenizer

    demos, _ = collect(make_env, 3, seed=4, noise=0.5)
    tok = build_word_tokenizer((d.prompt for d in demos), compact=True)
    prompt = ("Possible action of the agent: turn left, turn right, go forward, pick up, drop, toggle \n Goal of the "
              "agent: go to the red ball \n Observation 0: You see a wall 1 step left, You see a red ball 2 steps "
              "right and 3 steps forward, You see a open blue door 4 steps forward, \n Action 0: turn left")
    tokens = tok.convert_ids_to_tokens(tok(prompt)["input_ids"])
    assert tokens == ["Goal", ":", "go", "to", "the", "red_ball", "Observation", "0", ":", "wall", "left1", ",",
                      "red_ball", "right2_f3", ",", "open", "blue_door", "f4", ",", "Action", "0", ":", "turn", "left"]
    assert tokens == split_words(prompt, compact=True)  # the prompt builder counts the same
    for d in demos:  # candidate scoring still sees the sequences it was trained on
        assert tok(d.prompt + d.action)["input_ids"] == tok(d.prompt)["input_ids"] + tok(d.action)["input_ids"]
        assert tok.unk_token_id not in tok(d.prompt)["input_ids"]
    tok.save_pretrained(tmp_path)
    assert AutoTokenizer.from_pretrained(tmp_path)(prompt)["input_ids"] == tok(prompt)["input_ids"]
    with pytest.raises(ValueError, match="compact already"):
        build_word_tokenizer(["a"], compact=True, merge_offsets=True)


def test_prompt_options_and_compact_tokens_reach_the_saved_model(tmp_path):
    from londi import build

    meta = _run(tmp_path, "compact=true", "+prompt_options.named_objects=true", "eval_episodes=2")
    assert meta["prompt"]["options"] == {"named_objects": True} and meta["tokenizer"] == {"compact": True}
    card = (tmp_path / MODEL_DIR / "MODEL_CARD.md").read_text()
    assert "named_objects=True" in card and "compact" in card
    cfg = build.config(["model@quick=hf", "quick.device=cpu", "quick.dtype=float32"])
    cfg.quick.path = str(tmp_path / MODEL_DIR)
    policy = build.model(cfg, "quick")  # HFPolicy shows the model what it was trained on
    env = make_env()
    obs, info = env.reset(seed=3)
    state = TextState.from_env(obs, info, env=env)
    assert "\n Named: " in policy.prompt(state)
    assert policy.count_tokens(policy.prompt(state)) < len(policy.prompt(state).split()) / 2  # compact
    assert 0 <= policy.act_one(state).index < len(state.admissible_actions)


def test_fine_tuning_records_its_initial_model_and_the_card_rebuilds_both_stages(tmp_path):
    def run(out: Path, *extra: str) -> dict:
        cmd = " ".join(["londi-distill distill_model=tiny", *extra, f"out={out}"])
        return run_config(_cfg(out, *extra), command=cmd)

    first = run(tmp_path / "first", "eval_episodes=2")
    init = tmp_path / "shipped"  # the first stage's model copied elsewhere, as a shipped asset is
    shutil.copytree(tmp_path / "first" / MODEL_DIR, init)
    second = run(tmp_path / "second", f"init_from={init}", "steps=10", "eval_episodes=2")
    assert second["init"]["from"] == str(init)
    assert second["init"]["training"]["step"] == first["training"]["step"] == 40
    card = (tmp_path / "second" / MODEL_DIR / "MODEL_CARD.md").read_text()
    stage1 = f"londi-distill distill_model=tiny eval_episodes=2 out={tmp_path / 'first'}"
    stage2 = f"init_from={tmp_path / 'first'}/{MODEL_DIR} steps=10"  # from what stage 1 makes, not the copy
    assert stage1 in card and stage2 in card and f"init_from={init}" not in card
    assert card.index(stage1) < card.index(stage2)
    assert "with the earlier stages (`init_from`: 40 steps" in card and ": 50 optimizer steps" in card
