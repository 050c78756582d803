"""The batched shared-prompt scorer equals a direct, unbatched, per-candidate full forward; the model reads
prompt + candidate as the tokenizer writes them together; a prompt that does not fit is an error, never cut."""

import numpy as np
import pytest
import torch

from londi.lm.scoring import ActionScorer, PromptTooLongError
from londi.lm.tiny import bpe_tokenizer, byte_tokenizer, tiny_model
from londi.lm.tokenization import build_word_tokenizer

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
    p, c_ids = scorer.encode(prompt, cands)
    for ids in c_ids:
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
    assert res.prompt_tokens == sum(len(scorer.encode(p, cs)[0]) for p, cs in zip(PROMPTS, CANDIDATES, strict=True))
    assert res.candidate_tokens == sum(len(c.encode()) for cs in CANDIDATES for c in cs)  # bytes: split == joint


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
    assert ActionScorer(model, tok, add_bos=True).prompt_ids("go")[0] == tok.bos_token_id


def test_mean_is_sum_over_length_and_eos_option():
    tok = byte_tokenizer()
    model = tiny_model("gpt2", tok)
    s = ActionScorer(model, tok, reduction="sum").score(PROMPTS[:1], CANDIDATES[:1]).scores[0]
    m = ActionScorer(model, tok, reduction="mean").score(PROMPTS[:1], CANDIDATES[:1]).scores[0]
    np.testing.assert_allclose(m, s / np.array([len(c) for c in CANDIDATES[0]]), rtol=1e-5)
    e = ActionScorer(model, tok, candidate_eos=True).score(PROMPTS[:1], CANDIDATES[:1])
    assert e.candidate_tokens == sum(len(c) + 1 for c in CANDIDATES[0])
    assert np.all(e.scores[0] < s)


MULTILINE = [
    "Possible action of the agent: turn left, turn right, go forward \n Goal of the agent: go to the red ball \n "
    "Observation 0: You see a wall 2 steps forward, \n Action 0: turn left \n Observation 1: You see a red ball "
    "1 step left, \n Action 1: ",
    "Task: boil water\nObservation 0: This room is called the kitchen.\nAction 0: look around\nObservation 1: "
    "In it, you see: a stove\nAction 1: ",
    "short: ",
]


def sentencepiece_tokenizer():
    """A SentencePiece-style tokenizer (unigram over words that carry their leading "▁"), trained now."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.Unigram())
    core.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=True)
    core.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="first", split=True)
    words = " ".join(c for cs in CANDIDATES for c in cs)
    core.train_from_iterator((MULTILINE + [words]) * 4, trainer=trainers.UnigramTrainer(
        vocab_size=200, special_tokens=["<pad>", "</s>", "<unk>", "<s>"], unk_token="<unk>", show_progress=False))
    return PreTrainedTokenizerFast(tokenizer_object=core, pad_token="<pad>", eos_token="</s>", unk_token="<unk>",
                                   bos_token="<s>")


@pytest.mark.parametrize("kind", ["bpe", "sentencepiece", "byte", "word"])
def test_the_model_reads_prompt_and_candidate_as_the_tokenizer_writes_them_together(kind):
    """tokenize(prompt + candidate) is what the model reads, cut where the prompt (or, for a BPE or
    SentencePiece tokenizer whose trailing space would be a token of its own, the prompt without it) ends."""
    tok = {"bpe": bpe_tokenizer, "sentencepiece": sentencepiece_tokenizer, "byte": byte_tokenizer,
           "word": lambda: build_word_tokenizer(MULTILINE)}[kind]()
    scorer = ActionScorer(tiny_model("llama", tok), tok)
    for prompt, cands in zip(MULTILINE, CANDIDATES, strict=True):
        ids, c_ids = scorer.encode(prompt, cands)
        alone = tok(prompt, add_special_tokens=False)["input_ids"]
        for c, cid in zip(cands, c_ids, strict=True):
            assert ids + cid == tok(prompt + c, add_special_tokens=False)["input_ids"], (prompt, c)
        if kind in ("bpe", "sentencepiece"):  # the prompt's trailing space went into every candidate: " turn"
            assert ids == tok(prompt.rstrip(), add_special_tokens=False)["input_ids"] != alone
            assert all(tok.convert_ids_to_tokens(cid[0])[0] in "Ġ▁" for cid in c_ids)
        else:  # split where the prompt ends: the ids of prompt and candidate tokenized apart
            assert ids == alone
            assert c_ids == [tok(c, add_special_tokens=False)["input_ids"] for c in cands]
    # a prompt whose own tokens change when a candidate follows it has no score for it: refused, named
    with pytest.raises(ValueError, match="other tokens when candidate 'n left' follows"):
        ActionScorer(tiny_model("llama", bpe_tokenizer()), bpe_tokenizer()).encode("Action 0: tur", ["n left"])


def test_a_prompt_that_does_not_fit_is_an_error_not_cut():
    tok = byte_tokenizer()
    scorer = ActionScorer(tiny_model("llama", tok), tok, max_prompt_tokens=10, name="quick",
                          setting="quick.max_prompt_tokens")
    assert scorer.count_prompt_tokens("0123456789") == 10
    assert scorer.encode("0123456789", ["go"])[0] == tok("0123456789", add_special_tokens=False)["input_ids"]
    with pytest.raises(PromptTooLongError, match=r"quick: the prompt is 16 tokens .* quick.max_prompt_tokens is 10"
                                                 r".*Raise quick.max_prompt_tokens"):
        scorer.score(["0123456789abcdef"], [["go"]])
    # special tokens count against the budget, as the prompt builder counts them (count_prompt_tokens)
    bpe = bpe_tokenizer()
    n = len(bpe("go to the red ball", add_special_tokens=False)["input_ids"])
    bos = ActionScorer(tiny_model("llama", bpe), bpe, add_bos=True, max_prompt_tokens=n + 1)
    assert bos.count_prompt_tokens("go to the red ball") == len(bos.encode("go to the red ball", [" x"])[0]) == n + 1
    bos.max_prompt_tokens = n
    with pytest.raises(PromptTooLongError, match=f"is {n + 1} tokens"):
        bos.encode("go to the red ball", [" x"])
    # no max_prompt_tokens: the positions the model was trained on are the limit, prompt + candidate included
    short = ActionScorer(tiny_model("gpt2", tok, max_positions=12), tok)
    assert short.max_prompt_tokens == short.context_length == 12
    with pytest.raises(PromptTooLongError, match=r"need 13 positions, but the model was trained on 12 \(config.max_position_embeddings\)"):
        short.encode("0123456789", ["abc"])
    with pytest.raises(ValueError, match="exceeds the 12 positions"):
        ActionScorer(tiny_model("gpt2", tok, max_positions=12), tok, max_prompt_tokens=13)


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
