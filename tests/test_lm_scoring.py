"""The batched shared-prompt scorer equals a direct, unbatched, per-candidate full forward."""

import numpy as np
import pytest
import torch

from londi.lm.scoring import ActionScorer
from londi.lm.tiny import bpe_tokenizer, byte_tokenizer, tiny_model

PROMPTS = [
    "Goal of the agent: go to the red ball \n Observation 0: You see a wall 2 steps forward, \n Action 0: ",
    "Task: boil water\nAction 0: ",
    "short: ",
]
CANDIDATES = [
    ["turn left", "turn right", "go forward", "pick up", "drop", "toggle"],
    ["look around", "open door to kitchen", "wait"],
    ["x", "a much longer candidate action string"],
]


def direct_scores(model, tok, prompt, cands, reduction, scorer):
    """Reference: one full forward of prompt+candidate per candidate, no padding, no cache."""
    out = []
    p = scorer.prompt_ids(prompt)[0]
    for c in cands:
        ids = scorer.candidate_ids(c)
        with torch.no_grad():
            if scorer.is_seq2seq:
                dec = [model.config.decoder_start_token_id] + ids[:-1]
                logits = model(input_ids=torch.tensor([p]), decoder_input_ids=torch.tensor([dec])).logits[0]
                lp = torch.log_softmax(logits, -1)[torch.arange(len(ids)), ids]
            else:
                full = torch.tensor([p + ids])
                logits = model(input_ids=full).logits[0]
                lp = torch.log_softmax(logits[len(p) - 1 : -1], -1)[torch.arange(len(ids)), ids]
        out.append(lp.sum().item() / (len(ids) if reduction == "mean" else 1))
    return np.array(out)


@pytest.mark.parametrize("arch", ["llama", "gpt2", "t5"])
@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_batched_scores_equal_direct_forward(arch, reduction):
    tok = byte_tokenizer()
    model = tiny_model(arch, tok, seed=1)
    scorer = ActionScorer(model, tok, reduction=reduction)
    res = scorer.score(PROMPTS, CANDIDATES, return_hidden=True)
    for prompt, cands, got in zip(PROMPTS, CANDIDATES, res.scores, strict=True):
        want = direct_scores(model, tok, prompt, cands, reduction, scorer)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
        assert np.all(got < 0)
    assert res.hidden.shape == (3, model.config.hidden_size if arch != "t5" else model.config.d_model)
    assert np.isfinite(res.hidden).all()
    assert res.prompt_tokens == sum(len(scorer.prompt_ids(p)[0]) for p in PROMPTS)
    assert res.candidate_tokens == sum(len(c.encode()) for cs in CANDIDATES for c in cs)


def test_padding_and_batch_composition_do_not_change_scores():
    tok = bpe_tokenizer()
    model = tiny_model("llama", tok, seed=2)
    scorer = ActionScorer(model, tok)
    alone = scorer.score(PROMPTS[1:2], CANDIDATES[1:2]).scores[0]
    together = scorer.score(PROMPTS, CANDIDATES).scores[1]
    np.testing.assert_allclose(alone, together, rtol=1e-5, atol=1e-5)
    # Hidden state of a prompt does not depend on the other prompts in the batch either.
    h1 = scorer.score(PROMPTS[1:2], CANDIDATES[1:2], return_hidden=True).hidden[0]
    h3 = scorer.score(PROMPTS, CANDIDATES, return_hidden=True).hidden[1]
    np.testing.assert_allclose(h1, h3, rtol=1e-4, atol=1e-5)
    # Chunking the expanded KV cache (tiny memory bound: one row per chunk) changes nothing either.
    chunked = ActionScorer(model, tok, max_cache_mb=1e-6).score(PROMPTS, CANDIDATES).scores
    for a, b in zip(chunked, scorer.score(PROMPTS, CANDIDATES).scores, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    # A forced BOS is the first prompt token.
    assert ActionScorer(model, tok, add_bos=True).prompt_ids("go")[0][0] == tok.bos_token_id


def test_mean_is_sum_over_length_and_eos_option():
    tok = byte_tokenizer()
    model = tiny_model("gpt2", tok)
    s = ActionScorer(model, tok, reduction="sum").score(PROMPTS[:1], CANDIDATES[:1]).scores[0]
    m = ActionScorer(model, tok, reduction="mean").score(PROMPTS[:1], CANDIDATES[:1]).scores[0]
    np.testing.assert_allclose(m, s / np.array([len(c) for c in CANDIDATES[0]]), rtol=1e-5)
    e = ActionScorer(model, tok, candidate_eos=True).score(PROMPTS[:1], CANDIDATES[:1])
    assert e.candidate_tokens == sum(len(c) + 1 for c in CANDIDATES[0])
    assert np.all(e.scores[0] < s)


def test_prompt_truncation_keeps_the_end():
    tok = byte_tokenizer()
    model = tiny_model("llama", tok)
    scorer = ActionScorer(model, tok, max_prompt_tokens=10)
    ids, cut = scorer.prompt_ids("0123456789abcdef")
    assert cut and len(ids) == 10 and tok.decode(ids) == "0123456789abcdef"[-10:]
    res = scorer.score(["0123456789abcdef"], [["go"]])
    assert res.truncated_prompts == 1 and res.prompt_tokens == 10


def test_errors_name_the_problem():
    tok = byte_tokenizer()
    model = tiny_model("llama", tok)
    with pytest.raises(ValueError, match="reduction"):
        ActionScorer(model, tok, reduction="max")
    scorer = ActionScorer(model, tok)
    with pytest.raises(ValueError, match="candidate"):
        scorer.score(["p"], [[]])
    with pytest.raises(ValueError, match="no tokens"):
        scorer.score(["p"], [[""]])
