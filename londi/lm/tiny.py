"""Tiny transformers models and tokenizers built from a config, with no files and no downloads.

For tests, benchmarks and the `tiny_hf` config option: the real code paths (tokenize, forward, KV cache,
log-probs, FLOPs) run on a model of a few thousand to a few million random parameters in milliseconds.
Tokenizers: `ByT5Tokenizer()` (bytes; needs no vocabulary file) or a small BPE trained on the fly with
`tokenizers` (far fewer tokens per prompt, so closer to a real LM's prompt lengths).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from transformers import (
    ByT5Tokenizer,
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    PreTrainedTokenizerFast,
    T5Config,
    T5ForConditionalGeneration,
)

from londi.lm.usage import ComputeMeter

CAUSAL_ARCHS = ("llama", "gpt2")
SEQ2SEQ_ARCHS = ("t5",)

# Words of the BabyAI-Text and ScienceWorld prompts, so the on-the-fly BPE learns whole words for them.
_DEFAULT_CORPUS = (
    "Possible action of the agent: turn left, turn right, go forward, pick up, drop, toggle \n Goal of the agent: "
    "go to the red ball pick up a blue key put the green box next to the purple ball open the yellow door then "
    "after you \n Observation 0: You see a wall 2 steps forward, You see a red ball 1 step left and 3 steps "
    "right, You carry a grey key, You see a open locked closed door \n Action 0: "
    "Task: Your task is to boil water. First, focus on the substance. Then, take actions that will cause it to "
    "change its state of matter. This room is called the kitchen. In it, you see: the agent, a substance called "
    "air, a chair. On the chair is: nothing. a counter. On the counter is: a bowl (containing a red apple, a "
    "banana, an orange, a potato), a drawer. a cupboard. The cupboard door is closed. a freezer. The freezer door "
    "is closed. a fridge. a glass jar (containing a substance called sodium chloride) a lighter a oven, which is "
    "turned off. a sink, which is turned off. a stove, which is turned off. a table. On the table is: a glass cup "
    "(containing nothing). a thermometer, currently reading a temperature of 10 degrees celsius You also see: A "
    "door to the bathroom (that is open) A door to the hallway (that is open) A door to the outside (that is open) "
    "In your inventory, you see: an orange. look around open door to kitchen move pot to stove activate stove "
    "examine substance in metal pot focus on water wait wait1 pour connect disconnect eat read use mix teleport"
)


def byte_tokenizer() -> ByT5Tokenizer:
    """ByT5's byte tokenizer: 384 ids (pad 0, eos 1, unk 2, bytes from 3); needs no files."""
    return ByT5Tokenizer()


def bpe_tokenizer(texts: Iterable[str] | None = None, vocab_size: int = 512) -> PreTrainedTokenizerFast:
    """A byte-level BPE trained now on `texts` (default: a built-in BabyAI/ScienceWorld word list).

    Deterministic for the same texts; special tokens <pad>=0, </s>=1, <unk>=2, <s>=3.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<pad>", "</s>", "<unk>", "<s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(texts) if texts is not None else [_DEFAULT_CORPUS] * 4, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>", bos_token="<s>"
    )


def make_tokenizer(kind: str = "byte", vocab_size: int = 512) -> PreTrainedTokenizerBase:
    """`kind`: "byte" (ByT5) or "bpe" (trained on the built-in corpus)."""
    if kind == "byte":
        return byte_tokenizer()
    if kind == "bpe":
        return bpe_tokenizer(vocab_size=vocab_size)
    raise ValueError(f"unknown tiny tokenizer kind {kind!r}: use 'byte' or 'bpe'")


def tiny_model(
    arch: str = "llama",
    tokenizer: PreTrainedTokenizerBase | None = None,
    d_model: int = 32,
    n_layer: int = 2,
    n_head: int = 2,
    d_ff: int | None = None,
    max_positions: int = 4096,
    seed: int = 0,
) -> PreTrainedModel:
    """A randomly initialised model of `arch` ("llama", "gpt2" causal; "t5" seq2seq) sized for `tokenizer`.

    Deterministic given `seed`; eval mode; float32. Attention is "eager" for causal models so that
    left-padded batches never produce NaNs on fully masked rows.
    """
    tokenizer = tokenizer or byte_tokenizer()
    vocab = len(tokenizer)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    eos = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else pad
    bos = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else eos
    d_ff = d_ff or 4 * d_model
    if arch == "llama":
        cfg = LlamaConfig(
            vocab_size=vocab, hidden_size=d_model, intermediate_size=d_ff, num_hidden_layers=n_layer,
            num_attention_heads=n_head, num_key_value_heads=n_head, max_position_embeddings=max_positions,
            pad_token_id=pad, bos_token_id=bos, eos_token_id=eos, tie_word_embeddings=True,
        )
        cls = LlamaForCausalLM
    elif arch == "gpt2":
        cfg = GPT2Config(
            vocab_size=vocab, n_embd=d_model, n_layer=n_layer, n_head=n_head, n_inner=d_ff, n_positions=max_positions,
            pad_token_id=pad, bos_token_id=bos, eos_token_id=eos,
        )
        cls = GPT2LMHeadModel
    elif arch == "t5":
        cfg = T5Config(
            vocab_size=vocab, d_model=d_model, d_kv=max(d_model // n_head, 1), d_ff=d_ff, num_layers=n_layer,
            num_decoder_layers=n_layer, num_heads=n_head, pad_token_id=pad, eos_token_id=eos,
            decoder_start_token_id=pad, feed_forward_proj="relu", tie_word_embeddings=False,
        )
        cls = T5ForConditionalGeneration
    else:
        raise ValueError(f"unknown tiny arch {arch!r}: use one of {CAUSAL_ARCHS + SEQ2SEQ_ARCHS}")
    cfg._attn_implementation = "eager"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = cls(cfg)
    return model.eval()


def tiny_hf_policy(
    *,
    name: str,
    arch: str,
    tokenizer: str,
    d_model: int,
    n_layer: int,
    n_head: int,
    model_seed: int,
    device: str,
    mode: str,
    score: str,
    history: int,
    max_prompt_tokens: int,
    greedy: bool,
    temperature: float,
    max_new_tokens: int,
    seed: int | None,
    meter: ComputeMeter | None = None,
):
    """An `HFPolicy` (float32) on a random tiny model: the `tiny_hf` config option (real code path, no files).

    Its choices are meaningless (random weights); it exists to exercise and time the hf backend.
    """
    from londi.lm.hf import HFPolicy

    tok = make_tokenizer(tokenizer)
    model = tiny_model(arch, tok, d_model=d_model, n_layer=n_layer, n_head=n_head, seed=model_seed)
    return HFPolicy(name=name, model=model, tokenizer=tok, device=device, dtype="float32", mode=mode, score=score,
                    history=history, max_prompt_tokens=max_prompt_tokens, greedy=greedy, temperature=temperature,
                    max_new_tokens=max_new_tokens, seed=seed, meter=meter)
