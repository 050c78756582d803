"""HFPolicy end to end on tiny models: choice = argmax of the scorer, the meter counts tokens and FLOPs,
directories load (safetensors), hub names fail clearly offline, missing paths are named."""

import json

import numpy as np
import pytest
import torch
from hydra.errors import ConfigCompositionException

from londi.lm.hf import ModelLoadError, compute_parameters
from londi.lm.matching import match_action, normalise
from londi.lm.policy import PolicyError
from londi.lm.prompts import build_prompt
from londi.lm.scoring import PromptTooLongError
from londi.lm.state import Step, TextState
from londi.lm.tiny import bpe_tokenizer, byte_tokenizer, tiny_model
from londi.lm.usage import ComputeMeter
from tests.helpers import hf_policy, tiny

ACTIONS = ("turn left", "turn right", "go forward", "pick up", "drop", "toggle")


def state(i=0, history=()):
    return TextState(obs="", mission=f"go to the red ball {i}", admissible_actions=ACTIONS, family="babyai_text",
                     descriptions=(f"You see a red ball {i + 1} steps forward",), history=tuple(history))


@pytest.mark.parametrize("arch", ["llama", "t5"])
def test_score_mode_end_to_end_with_meter(arch):
    meter = ComputeMeter()
    pol = tiny(name="quick", arch=arch, meter=meter)
    states = [state(0), state(1, [Step("", ("You see a wall 1 step left",), "turn left")])]
    res = pol.act(states, return_hidden=True)
    ref = pol.scores(states)
    for r, s, sc in zip(res, states, ref.scores, strict=True):
        assert r.index == int(np.argmax(sc)) and r.action == s.admissible_actions[r.index]
        np.testing.assert_allclose(r.scores, sc, rtol=1e-5)
        assert r.hidden is not None and r.hidden.ndim == 1
    u = meter.totals["quick"]
    assert u.calls == 2
    assert u.prompt_tokens == sum(len(pol.scorer.encode(pol.prompt(s), s.admissible_actions)[0]) for s in states)
    assert u.completion_tokens == 2 * sum(len(a) for a in ACTIONS)  # bytes: one token per character
    n_enc, n_dec = compute_parameters(pol.model)
    dense = 2 * (n_enc * u.prompt_tokens + n_dec * u.completion_tokens) if arch == "t5" else \
        2 * n_dec * u.tokens
    assert dense < u.flops < 3 * dense  # attention term is positive but not dominant on short prompts
    assert u.wall_seconds > 0 and u.device_seconds >= 0
    assert pol.num_parameters == sum(p.numel() for p in pol.model.parameters())


def test_prompt_budget_and_history_from_config():
    pol = tiny(history=0)
    s = state(0, [Step("", ("You see a wall 1 step left",), "turn left")])
    assert pol.prompt(s) == build_prompt(s, history=0)
    full = tiny().prompt(s)
    budget = len(full) - 1  # byte tokenizer: tokens == characters; forces dropping the history step
    assert tiny(max_prompt_tokens=budget).prompt(s) == build_prompt(s, history=0)


def test_the_builder_counts_what_the_scorer_limits_and_a_too_long_observation_is_an_error():
    tok = bpe_tokenizer()
    model = tiny_model("llama", tok, seed=1)
    s = TextState(obs="", mission="go to the red ball", admissible_actions=("turn left", "go forward"),
                  family="babyai_text", descriptions=("You see a wall 2 steps forward",), step=1,
                  history=(Step("", ("You see a red ball 1 step left",), "turn left"),))
    full = hf_policy(name="quick", model=model, tokenizer=tok, history=1, add_bos=True)
    n = full.count_tokens(full.prompt(s))  # BOS included: the scorer reads n tokens
    assert n == len(full.scorer.encode(full.prompt(s), s.admissible_actions)[0]) + 1  # + the space moved on
    fits = hf_policy(name="quick", model=model, tokenizer=tok, history=1, add_bos=True, max_prompt_tokens=n)
    assert "Action 0: turn left" in fits.prompt(s)
    fits.act_one(s)  # the prompt the builder kept fits the scorer: nothing is cut, nothing raises
    tight = hf_policy(name="quick", model=model, tokenizer=tok, history=1, add_bos=True, max_prompt_tokens=n - 1)
    assert "Action 0: turn left" not in tight.prompt(s)  # one token short: the history step goes, not the head
    ids = tight.scorer.encode(tight.prompt(s), s.admissible_actions)[0]
    assert tok.decode(ids).startswith("<s>Possible action of the agent")
    # the current observation alone does not fit: an error that names the model, the numbers and the fix
    long = TextState(obs="", mission="go to the red ball", admissible_actions=("turn left",), family="babyai_text",
                     descriptions=tuple(f"You see a red ball {k} steps forward" for k in range(1, 30)))
    pol = hf_policy(name="quick", model=model, tokenizer=tok, history=0, max_prompt_tokens=64)
    with pytest.raises(PromptTooLongError, match=r"quick \(LlamaForCausalLM\): the prompt is \d+ tokens .* "
                                                 r"quick.max_prompt_tokens is 64 .*longer context"):
        pol.act_one(long)
    # no max_prompt_tokens: the model's context less max_new_tokens (room for the action) is the budget, so old
    # history is dropped to fit it (no BOS here: the prompt with its history is n - 1 tokens)
    room = 16  # max_new_tokens (tests/helpers.py)
    ctx = hf_policy(name="quick", model=tiny_model("gpt2", tok, max_positions=n - 1 + room), tokenizer=tok, history=1)
    assert ctx.max_prompt_tokens == n - 1 and "Action 0: turn left" in ctx.prompt(s)
    ctx.act_one(s)
    ctx2 = hf_policy(name="quick", model=tiny_model("gpt2", tok, max_positions=n - 2 + room), tokenizer=tok, history=1)
    assert "Action 0: turn left" not in ctx2.prompt(s)
    with pytest.raises(PromptTooLongError, match=r"is \d+ tokens .* quick.max_prompt_tokens is 16 \(the model reads at "
                                                 r"most 32 positions"):
        hf_policy(name="quick", model=tiny_model("gpt2", tok, max_positions=32), tokenizer=tok, history=0).act_one(long)
    with pytest.raises(ValueError, match="quick.max_prompt_tokens=100 exceeds the 32 positions"):
        hf_policy(name="quick", model=tiny_model("gpt2", tok, max_positions=32), tokenizer=tok, max_prompt_tokens=100)


def test_sampled_generation_draws_per_state_and_leaves_the_global_torch_rng_alone():
    tok = bpe_tokenizer()
    a = TextState(obs="", mission="go to the red ball", admissible_actions=("turn left", "go forward"),
                  family="babyai_text", descriptions=("You see a wall 2 steps forward",))
    b = TextState(obs="", mission="pick up a blue key", admissible_actions=("turn left", "pick up"),
                  family="babyai_text", descriptions=("You carry a grey key",))
    for arch in ("gpt2", "t5"):
        pol = hf_policy(name="quick", model=tiny_model(arch, tok, seed=3), tokenizer=tok, mode="generate",
                        greedy=False, temperature=2.0, max_new_tokens=6, history=0)
        pol.seed([11, 22])
        torch.manual_seed(0)
        before = torch.get_rng_state()
        both = pol.generate_text([a, b])
        assert torch.equal(torch.get_rng_state(), before)  # PPO's sampling draws on, unaffected by the LM
        pol.seed([22])
        assert pol.generate_text([b]) == both[1:]  # a state's sample does not depend on its batch
        pol.seed([11])
        assert pol.generate_text([a]) == both[:1]
        replies = set()
        for seed in range(4):
            pol.seed([seed])
            replies.add(pol.generate_text([a])[0])
        assert len(replies) > 1, arch  # it does sample


def test_sampling_is_seeded_and_mean_reduction():
    a = tiny(greedy=False, temperature=5.0, seed=3, score="mean")
    b = tiny(greedy=False, temperature=5.0, seed=3, score="mean")
    picks_a = [a.act_one(state(i)).index for i in range(20)]
    assert picks_a == [b.act_one(state(i)).index for i in range(20)]
    assert len(set(picks_a)) > 1  # high temperature actually samples
    assert a.reduction == "mean"


@pytest.mark.parametrize("arch", ["llama", "t5"])
def test_generate_mode_maps_text_or_raises(arch):
    meter = ComputeMeter()
    # Greedy decoding of a random tiny model repeats whitespace; seeded sampling gives word pieces to map.
    pol = tiny(name="gen", arch=arch, tokenizer="bpe", mode="generate", max_new_tokens=3, greedy=False,
                         temperature=2.0, seed=0, meter=meter)
    s = TextState(obs="You are in the kitchen.", mission="boil water", admissible_actions=("look around",),
                  family="scienceworld")  # this prompt does not list the actions, so they do not change the reply

    def has_words(seed: int) -> bool:
        pol.seed(seed)
        return bool(normalise(pol.generate_text([s])[0]))

    seed = next(k for k in range(20) if has_words(k))  # a random model may sample padding first
    pol.seed(seed)
    text = pol.generate_text([s])[0]
    assert normalise(text), f"the tiny model generated no words to map ({text!r})"
    pol.seed(seed)
    with pytest.raises(PolicyError, match="matches none of the admissible actions"):
        pol.act([s])
    assert meter.totals["gen"].calls == 0 and meter.totals["gen"].completion_tokens > 0  # no action, no call: tokens still cost
    s2 = TextState(obs=s.obs, mission=s.mission, admissible_actions=("look around", normalise(text)),
                   family="scienceworld")
    pol.seed(seed)
    r = pol.act_one(s2, return_hidden=True)
    assert r.index == 1 and r.info["generated"] == text and r.hidden is not None
    assert meter.totals["gen"].calls == 1 and meter.totals["gen"].flops > 0  # only the call that gave an action


def test_save_and_load_directory_with_distill_meta(tmp_path):
    tok = byte_tokenizer()
    model = tiny_model("gpt2", tok, seed=4)
    model.save_pretrained(tmp_path, safe_serialization=True)
    tok.save_pretrained(tmp_path)
    (tmp_path / "londi_distill.json").write_text(json.dumps(
        {"prompt": {"family": "babyai_text", "history": 0, "max_prompt_tokens": 300}, "scoring": "mean"}))
    assert (tmp_path / "model.safetensors").exists()
    pol = hf_policy(name="d", path=str(tmp_path))
    assert pol.history == 0 and pol.max_prompt_tokens == 300 and pol.reduction == "mean"
    direct = hf_policy(name="m", model=model, tokenizer=tok, history=0, score="mean", add_bos=False)
    np.testing.assert_allclose(pol.act_one(state()).scores, direct.act_one(state()).scores, rtol=1e-5)


def test_missing_path_and_offline_hub_name_errors(tmp_path, monkeypatch):
    missing = tmp_path / "nope" / "model"
    with pytest.raises(ModelLoadError, match=str(missing)):
        hf_policy(name="x", path=str(missing))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError, match="HF_HUB_OFFLINE=1.*local model directory"):
        hf_policy(name="x", path="londi-test/definitely-not-cached-model")
    with pytest.raises(ValueError, match="needs `path`"):
        hf_policy(name="x")
    with pytest.raises(ConfigCompositionException, match="mode"):
        tiny(mode="dream")  # not a mode: fails when the config is composed


def test_match_action():
    acts = ["turn left", "go forward", "open door to kitchen", "open door to kitchen garden"]
    assert normalise(" Go  Forward. ") == "go forward"
    assert match_action("go forward", acts) == 1
    assert match_action("Action: Go forward.\nbecause the ball is ahead", acts) == 1
    assert match_action("> open door to kitchen garden", acts) == 3
    assert match_action("I think I should open door to kitchen now", acts) == 2
    assert match_action("turn lefft", acts) == 0
    assert match_action("eat the banana", acts) is None
    assert match_action("", acts) is None


def test_device_and_dtype_config():
    pol = tiny(device="auto")
    assert pol.device.type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert pol.compute_device == str(pol.device)  # the meter times it on its own device's clock
    with pytest.raises(ValueError, match="temperature"):
        tiny(greedy=False, temperature=0.0)
    with pytest.raises(ValueError, match="device='mps'.*cpu or cuda"):  # before loading: no call could be timed
        hf_policy(name="quick", path="/nonexistent/model/dir", device="mps")


def test_a_cpu_model_is_timed_on_its_thread_when_cuda_is_initialised_beside_it(monkeypatch):
    """A CPU QUICK next to a CUDA DEEPTHINK: once CUDA was initialised, every call used to get CUDA-event time."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.cuda, "Event", lambda **kw: pytest.fail("CUDA events timed a CPU model"))
    pol = tiny(name="quick", device="cpu")
    assert pol.act_one(state(0)).usage.device_kind == "cpu_thread"


def test_a_distilled_model_refuses_states_of_another_env_family(tmp_path):
    tok = byte_tokenizer()
    tiny_model("gpt2", tok, seed=4).save_pretrained(tmp_path, safe_serialization=True)
    tok.save_pretrained(tmp_path)
    (tmp_path / "londi_distill.json").write_text(json.dumps({"prompt": {"family": "babyai_text", "history": 0}}))
    pol = hf_policy(name="quick", path=str(tmp_path))
    assert pol.act_one(state()).action in ACTIONS
    sw = TextState(obs="You are in the kitchen.", mission="boil water", admissible_actions=("look around",),
                   family="scienceworld")
    with pytest.raises(ValueError, match="distilled on babyai_text states.*model@quick="):
        pol.act_one(sw)
