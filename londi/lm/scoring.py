"""Action scoring: the log-probability an LM gives each admissible action's tokens after the prompt.

What is scored (causal LMs): the tokens of prompt + action read as ONE text, split where the prompt ends, so
the model sees only sequences its tokenizer produces. Tokenized apart, a byte-level BPE or SentencePiece
prompt ending in "Action 0: " would end in a lone space token and the action would start without its
leading-space form: tokens the model never saw in that order, skewing every candidate. The split point is
the end of the prompt when its tokens stay the same with any candidate appended (word-level tokenizers, as
the shipped models', and bytes: then the ids are those of prompt and action tokenized apart); otherwise, as
lm-eval-harness does, the prompt's trailing whitespace moves into the candidates ("Action 0:" | " turn
left"). A tokenizer that changes the prompt's tokens even then is refused (`encode`). Only a short tail of
the prompt (its last line, or from the space before its last word) is tokenized with each candidate, so
hundreds of candidates cost what short texts cost; the text before it keeps its tokens (checked: the tail
alone must tokenize as it does inside the prompt, else the whole prompt is used). Seq2seq LMs read the
prompt in the encoder and the action in the decoder, each tokenized alone, as they were trained.

A prompt never gets cut: one longer than `max_prompt_tokens` (special tokens counted, as `count_prompt_tokens`
counts for the prompt builder, which drops old history first) or than the model's context raises
`PromptTooLongError` naming the fix.

The prompt is encoded ONCE per state and every candidate is scored against it, so the cost grows with
candidate tokens, not candidates x prompt tokens:
- causal LMs: one left-padded forward over the batch of prompts builds the KV cache; the cache is then
  indexed out to one row per (state, candidate) pair and a single forward over the right-padded candidate
  tokens (positions continuing each prompt) gives every candidate token's logits;
- seq2seq LMs: the encoder runs once over the prompts; its outputs are indexed out per pair and the decoder
  runs over the candidates only.
Scores are `log_softmax` log-probs (never raw logits); padded positions contribute exactly 0; `sum` adds a
candidate's token log-probs, `mean` divides by its token count (length-normalised).
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

REDUCTIONS = ("sum", "mean")
_CONTEXT_KEYS = ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length", "n_ctx")
_CACHE_LIMIT = 100_000  # cached tokenizations (last prompt lines, line + candidate) before the caches start over
_CACHED_TAIL_CHARS = 512  # longer last lines (a one-line prompt) are not cached


class PromptTooLongError(ValueError):
    """A prompt does not fit the model: longer than `max_prompt_tokens`, or than the positions it was trained on."""


def context_length(model: Any) -> int | None:
    """The positions the model was trained on (max_position_embeddings, n_positions, ...), or None when its
    config names none (T5's relative positions)."""
    cfg = model.config
    for key in _CONTEXT_KEYS:
        value = getattr(cfg, key, None)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


@dataclass
class ScoreOutput:
    """Scores of one batch of states.

    `scores[i][k]`: reduced log-prob of candidate k of state i. `hidden`: (n_states, d_model) prompt
    encodings (causal: last layer at the last prompt token; seq2seq: the decoder's first hidden state, as
    GLAM's value head reads), or None. Token counts are real (non-pad) tokens the model processed;
    `attention_context` is the sum over processed tokens of how many positions each attended to (for the
    attention FLOPs term). `per_state[i]` = (prompt tokens, candidate tokens, attention context) of state i.
    """

    scores: list[np.ndarray]
    hidden: np.ndarray | None
    prompt_tokens: int
    candidate_tokens: int
    attention_context: int
    per_state: list[tuple[int, int, int]] = field(default_factory=list)


def _shallow_copy(cache: Any) -> Any:
    """A cache whose layer objects are new but share the prompt's tensors (reorder_cache replaces them)."""
    if not hasattr(cache, "layers"):
        return copy.deepcopy(cache)
    out = copy.copy(cache)
    out.layers = [copy.copy(layer) for layer in cache.layers]
    return out


class ActionScorer:
    """Scores candidate continuations of prompts with a transformers causal or seq2seq LM.

    `max_prompt_tokens`: the most prompt tokens (special tokens included) the model reads; None: its context
    length (`context_length`). A longer prompt raises `PromptTooLongError`; builders in `londi.lm.prompts` drop
    old steps to fit first, when counting with `count_prompt_tokens`. `candidate_eos` appends EOS to every
    candidate, so one candidate that is a prefix of another is not favoured by `sum`. `add_bos`: None follows
    the tokenizer's own special tokens (see `prompt_ids`). `max_cache_mb` bounds the KV cache expanded to the
    (state, candidate) rows: above it, rows are scored in chunks (None: no bound). `name` and `setting` word
    the errors (the role, and the config key that sets the budget).
    """

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        reduction: str = "sum",
        max_prompt_tokens: int | None = None,
        candidate_eos: bool = False,
        add_bos: bool | None = None,
        max_cache_mb: float | None = 256.0,
        name: str | None = None,
        setting: str = "max_prompt_tokens",
    ):
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
        self.model = model
        self.tokenizer = tokenizer
        self.reduction = reduction
        self.name = name or getattr(model, "name_or_path", "") or type(model).__name__
        self.setting = setting
        self.context_length = context_length(model)
        if max_prompt_tokens is not None and max_prompt_tokens < 1:
            raise ValueError(f"{self.name}: {setting} must be >= 1, got {max_prompt_tokens}")
        if max_prompt_tokens is not None and self.context_length is not None and max_prompt_tokens > self.context_length:
            raise ValueError(
                f"{self.name}: {setting}={max_prompt_tokens} exceeds the {self.context_length} positions the model was "
                f"trained on (config.{self._context_key()}); set {setting} <= {self.context_length}")
        self.max_prompt_tokens = max_prompt_tokens if max_prompt_tokens is not None else self.context_length
        self.candidate_eos = candidate_eos
        self.max_cache_mb = max_cache_mb
        self.is_seq2seq = bool(getattr(model.config, "is_encoder_decoder", False))
        pad = tokenizer.pad_token_id
        if pad is None:
            pad = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else 0
        self.pad_id = int(pad)
        self._tails: dict[str, tuple[list[int], list[int]]] = {}  # prompt tail -> (its ids, its ids rstripped)
        self._joint: dict[tuple[str, str], list[int]] = {}  # (tail, candidate) -> ids of tail + candidate
        self._specials = self._special_ids(add_bos)
        params = inspect.signature(model.forward).parameters
        self._keeps_logits = "logits_to_keep" in params
        # transformers 5.x renamed the KV-cache argument and output from past_key_values to cache
        self._cache_kw = "cache" if "cache" in params else "past_key_values"

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    # ---- tokenization -------------------------------------------------------------------------------
    def _ids(self, texts: list[str]) -> list[list[int]]:
        return [list(ids) for ids in self.tokenizer(texts, add_special_tokens=False)["input_ids"]] if texts else []

    def _wrap(self, body: list[int]) -> list[int]:
        """Special tokens around a prompt's ids: causal LMs keep the prefix (e.g. Llama's BOS; none for GPT-2 or a
        londi word tokenizer) and drop any suffix (an EOS would end the prompt); seq2seq encoders keep both."""
        prefix, suffix = self._specials
        return prefix + body + (suffix if self.is_seq2seq else [])

    def count_prompt_tokens(self, prompt: str) -> int:
        """Tokens the model reads for `prompt`, special tokens included: the count `max_prompt_tokens` limits
        (pass it to the prompt builder so that it drops old history exactly as far as needed)."""
        return len(self._wrap(self._ids([prompt])[0]))

    def prompt_ids(self, prompt: str) -> list[int]:
        """Token ids of a prompt alone as the model reads it (special tokens as the tokenizer adds them:
        `tokenizer(prompt)`; `add_bos=True/False` forces a BOS / no prefix); `PromptTooLongError` when too long.
        Causal scoring and generation read `encode(prompt, candidates)[0]` instead."""
        ids = self._wrap(self._ids([prompt])[0])
        self._check_budget(len(ids))
        if not ids:
            raise ValueError("causal scoring needs at least one prompt token (empty prompt and no BOS token)")
        return ids

    def encode(self, prompt: str, candidates: Sequence[str]) -> tuple[list[int], list[list[int]]]:
        """(prompt ids, each candidate's ids) as the model reads them (the module doc says how and why).

        Training sequences (`londi.lm.distill.Sequences`) are built with it too, so training and scoring agree.
        """
        if self.is_seq2seq:
            cand_ids = self._ids(list(candidates))
            return self.prompt_ids(prompt), [self._candidate(c, i) for c, i in zip(candidates, cand_ids, strict=True)]
        body = self._ids([prompt])[0]
        self._check_budget(len(self._wrap(body)))
        head, tail, tail_ids = self._split_tail(prompt, body)
        joint = self._joint_ids(tail, candidates)
        context = tail_ids  # split where the prompt ends when its ids stay the same with every candidate after it
        if not all(j[: len(context)] == context for j in joint):
            context = self._tail(tail)[1]  # else its trailing whitespace belongs to the candidates (lm-eval-harness)
            bad = next((c for c, j in zip(candidates, joint, strict=True) if j[: len(context)] != context), None)
            if bad is not None:
                raise ValueError(
                    f"{self.name}: the tokenizer gives the prompt other tokens when candidate {bad!r} follows it (the "
                    f"prompt ends {tail[-40:]!r}), so the candidate has no log-probability after the prompt; end the "
                    "prompt with whitespace or a separator that the tokenizer keeps apart from what follows")
        ids = self._wrap(head + context)
        if not ids:
            raise ValueError("causal scoring needs at least one prompt token (empty prompt and no BOS token)")
        cands = [self._candidate(c, j[len(context):]) for c, j in zip(candidates, joint, strict=True)]
        self.check_positions(len(ids), max((len(c) for c in cands), default=0), "the longest candidate")
        return ids, cands

    def _split_tail(self, prompt: str, body: list[int]) -> tuple[list[int], str, list[int]]:
        """(head ids, tail text, tail ids) with head + tail ids = the prompt's ids, and the tail short: only the
        tail is tokenized with each candidate (the cost of hundreds of candidates stays that of short texts).

        The tail is the last line that holds text or, where a tokenizer marks a line's first word (SentencePiece's
        "▁"), the prompt from the space before its last word; it must tokenize alone as it does inside the
        prompt, else the tail is the whole prompt (exact, slower).
        """
        text = prompt.rstrip()
        for start in (text.rfind("\n") + 1, text.rfind(" ")):
            if start <= 0:
                continue
            tail_ids = self._tail(prompt[start:])[0]
            if tail_ids and len(tail_ids) <= len(body) and body[len(body) - len(tail_ids):] == tail_ids:
                return body[: len(body) - len(tail_ids)], prompt[start:], tail_ids
        return [], prompt, body

    def _candidate(self, candidate: str, ids: list[int]) -> list[int]:
        ids = list(ids)
        if self.candidate_eos and self.tokenizer.eos_token_id is not None:
            ids.append(int(self.tokenizer.eos_token_id))
        if not ids:
            raise ValueError(f"candidate {candidate!r} has no tokens to score")
        return ids

    def _tail(self, tail: str) -> tuple[list[int], list[int]]:
        """(ids of a prompt tail, ids of it without trailing whitespace), cached."""
        got = self._tails.get(tail)
        if got is None:
            full, stripped = self._ids([tail, tail.rstrip()])
            got = (full, stripped)
            if len(tail) <= _CACHED_TAIL_CHARS:
                if len(self._tails) >= _CACHE_LIMIT:
                    self._tails.clear()
                self._tails[tail] = got
        return got

    def _joint_ids(self, tail: str, candidates: Sequence[str]) -> list[list[int]]:
        """Ids of `tail + candidate` for every candidate (one tokenizer call for the uncached ones)."""
        if len(tail) > _CACHED_TAIL_CHARS:
            return self._ids([tail + c for c in candidates])
        missing = list(dict.fromkeys(c for c in candidates if (tail, c) not in self._joint))
        if len(self._joint) + len(missing) > _CACHE_LIMIT:
            self._joint.clear()
            missing = list(dict.fromkeys(candidates))
        for c, ids in zip(missing, self._ids([tail + c for c in missing]), strict=True):
            self._joint[(tail, c)] = ids
        return [self._joint[(tail, c)] for c in candidates]

    def _context_key(self) -> str:
        return next((k for k in _CONTEXT_KEYS if getattr(self.model.config, k, None) == self.context_length), "?")

    def _check_budget(self, n: int) -> None:
        limit, ctx = self.max_prompt_tokens, self.context_length
        if limit is None or n <= limit:
            return
        if limit == ctx:
            budget = f"the model reads at most {ctx} positions (config.{self._context_key()})"
            fix = "Use a model with a longer context"
        else:
            budget = f"{self.setting} is {limit}" + (
                f" (the model reads at most {ctx} positions, prompt and action together)" if ctx else "")
            fix = f"Raise {self.setting}, use a model with a longer context"
        raise PromptTooLongError(
            f"{self.name}: the prompt is {n} tokens (special tokens included) but {budget}; the prompt builder drops "
            f"old history to fit, so the current observation alone is too long. {fix}, or shorten the prompt (fewer "
            "history steps, a shorter observation or task text). A prompt is never cut: that would drop its head "
            "(the goal, the task)")

    def check_positions(self, n_prompt: int, n_more: int, what: str) -> None:
        """Refuse a prompt of `n_prompt` tokens followed by `n_more` more (`what`) beyond the model's context:
        positions past it are extrapolation, not the model."""
        if self.context_length is not None and n_prompt + n_more > self.context_length:
            raise PromptTooLongError(
                f"{self.name}: a prompt of {n_prompt} tokens and {what} ({n_more} tokens) need {n_prompt + n_more} "
                f"positions, but the model was trained on {self.context_length} (config.{self._context_key()}). Lower "
                f"{self.setting} to at most {max(self.context_length - n_more, 1)} (old history is then dropped to fit), "
                "use a model with a longer context, or shorten the prompt")

    def _special_ids(self, add_bos: bool | None) -> tuple[list[int], list[int]]:
        """The special ids the tokenizer puts before and after a text (found by encoding a probe)."""
        probe = "a b"
        bare = list(self.tokenizer(probe, add_special_tokens=False)["input_ids"])
        full = list(self.tokenizer(probe)["input_ids"])
        prefix, suffix = [], []
        for k in range(len(full) - len(bare) + 1):
            if full[k : k + len(bare)] == bare:
                prefix, suffix = full[:k], full[k + len(bare) :]
                break
        if add_bos is True:
            bos = self.tokenizer.bos_token_id
            if bos is None:
                raise ValueError("add_bos=True but the tokenizer has no bos_token_id")
            prefix = [int(bos)]
        elif add_bos is False:
            prefix = []
        return prefix, suffix

    # ---- scoring -----------------------------------------------------------------------------------
    @torch.inference_mode()
    def score(
        self, prompts: Sequence[str], candidates: Sequence[Sequence[str]], return_hidden: bool = False
    ) -> ScoreOutput:
        """Score `candidates[i]` after `prompts[i]` for every state i, in one batched pass."""
        if len(prompts) != len(candidates):
            raise ValueError(f"{len(prompts)} prompts but {len(candidates)} candidate lists")
        if any(not cs for cs in candidates):
            raise ValueError("every state needs at least one candidate to score")
        encoded = [self.encode(p, cs) for p, cs in zip(prompts, candidates, strict=True)]
        p_ids = [e[0] for e in encoded]
        c_ids = [e[1] for e in encoded]
        owner = torch.tensor([i for i, cs in enumerate(c_ids) for _ in cs], device=self.device)
        flat = [ids for cs in c_ids for ids in cs]
        cand, cand_mask = self._pad(flat, left=False)
        if self.is_seq2seq:
            token_lp, hidden, ctx = self._seq2seq(p_ids, owner, cand, cand_mask, return_hidden)
        else:
            token_lp, hidden, ctx = self._causal(p_ids, owner, cand, cand_mask, return_hidden)
        token_lp = token_lp * cand_mask  # padding contributes nothing
        lengths = cand_mask.sum(1)
        cand_per_state = torch.zeros(len(p_ids), dtype=torch.long).index_add_(0, owner.cpu(), lengths.cpu()).tolist()
        reduced = token_lp.sum(1)
        if self.reduction == "mean":
            reduced = reduced / lengths
        reduced = reduced.double().cpu().numpy()
        scores, start = [], 0
        for cs in c_ids:
            scores.append(reduced[start : start + len(cs)])
            start += len(cs)
        return ScoreOutput(
            scores=scores,
            hidden=hidden.float().cpu().numpy() if hidden is not None else None,
            prompt_tokens=sum(len(p) for p in p_ids),
            candidate_tokens=int(lengths.sum().item()),
            attention_context=sum(ctx),
            per_state=[(len(p), int(c), int(x)) for p, c, x in zip(p_ids, cand_per_state, ctx, strict=True)],
        )

    def _pad(self, seqs: Sequence[Sequence[int]], left: bool) -> tuple[torch.Tensor, torch.Tensor]:
        width = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for r, s in enumerate(seqs):
            if left:
                ids[r, width - len(s) :] = torch.tensor(s)
                mask[r, width - len(s) :] = 1
            else:
                ids[r, : len(s)] = torch.tensor(s)
                mask[r, : len(s)] = 1
        return ids.to(self.device), mask.to(self.device)

    def _causal(self, p_ids, owner, cand, cand_mask, return_hidden):
        prompt, p_mask = self._pad(p_ids, left=True)
        p_pos = (p_mask.cumsum(1) - 1).clamp(min=0)
        extra = {"logits_to_keep": 1} if self._keeps_logits else {}  # no vocab projection of the whole prompt
        out = self.model(
            input_ids=prompt, attention_mask=p_mask, position_ids=p_pos, use_cache=True,
            output_hidden_states=return_hidden, **extra,
        )
        hidden = out.hidden_states[-1][:, -1] if return_hidden else None
        first_lp = torch.log_softmax(out.logits[:, -1].float(), dim=-1)  # predicts each candidate's 1st token
        cache = out.cache if getattr(out, "cache", None) is not None else out.past_key_values
        p_len = p_mask.sum(1)
        pos = p_len[owner, None] + torch.arange(cand.shape[1], device=cand.device)[None]
        full_mask = torch.cat([p_mask[owner], cand_mask], 1)
        # The cache is indexed out to one row per (state, candidate): the prompt is not recomputed. Rows go in
        # chunks so that the expanded cache stays under `max_cache_mb`.
        rows = self._rows_per_chunk(cache, full_mask.shape[1], len(owner))
        logits = []
        for lo in range(0, len(owner), rows):
            sl = slice(lo, lo + rows)
            chunk_cache = cache if rows >= len(owner) else _shallow_copy(cache)
            chunk_cache.reorder_cache(owner[sl])  # index_select: new tensors, the prompt cache stays intact
            logits.append(self.model(
                input_ids=cand[sl], attention_mask=full_mask[sl], position_ids=pos[sl],
                use_cache=True, **{self._cache_kw: chunk_cache},
            ).logits[:, :-1].float())
        c_logits = torch.cat(logits, 0)
        rest_lp = torch.log_softmax(c_logits, dim=-1)  # token t+1 given candidate[:t+1]
        lp = torch.cat([first_lp[owner, None], rest_lp], 1)
        token_lp = lp.gather(-1, cand.unsqueeze(-1)).squeeze(-1)
        return token_lp, hidden, self._context(p_ids, owner, p_len, cand_mask, causal=True)

    @staticmethod
    def _context(p_ids, owner, p_len, cand_mask, causal: bool) -> list[int]:
        """Per state: positions attended over its prompt (causal triangle, or the full square for an encoder)
        plus, for each candidate token, the prompt and the candidate prefix it attends to."""
        rows = ((p_len[owner, None] + cand_mask.cumsum(1)) * cand_mask).sum(1).cpu()
        cand = torch.zeros(len(p_ids), dtype=torch.long).index_add_(0, owner.cpu(), rows).tolist()
        return [(n * (n + 1) // 2 if causal else n * n) + int(c) for n, c in zip((len(p) for p in p_ids), cand, strict=True)]

    def _rows_per_chunk(self, cache: Any, width: int, n_rows: int) -> int:
        """How many (state, candidate) rows of `width` cached positions fit in `max_cache_mb`."""
        layers = getattr(cache, "layers", None)
        if self.max_cache_mb is None or not layers or getattr(layers[0], "keys", None) is None:
            return n_rows
        per_pos = sum((lay.keys[0, :, 0].numel() + lay.values[0, :, 0].numel()) * lay.keys.element_size()
                      for lay in layers)
        return max(1, min(n_rows, int(self.max_cache_mb * 2**20 // max(per_pos * width, 1))))

    def _seq2seq(self, p_ids, owner, cand, cand_mask, return_hidden):
        prompt, p_mask = self._pad(p_ids, left=False)
        enc = self.model.get_encoder()(input_ids=prompt, attention_mask=p_mask)
        enc.last_hidden_state = enc.last_hidden_state[owner]  # encoder once; decoder per candidate
        start = self.model.config.decoder_start_token_id
        start = self.pad_id if start is None else int(start)
        dec_in = torch.cat([torch.full_like(cand[:, :1], start), cand[:, :-1]], 1)
        dec_mask = torch.cat([torch.ones_like(cand_mask[:, :1]), cand_mask[:, :-1]], 1)
        out = self.model(
            encoder_outputs=enc, attention_mask=p_mask[owner], decoder_input_ids=dec_in,
            decoder_attention_mask=dec_mask, use_cache=False, output_hidden_states=return_hidden,
        )
        token_lp = torch.log_softmax(out.logits.float(), dim=-1).gather(-1, cand.unsqueeze(-1)).squeeze(-1)
        hidden = None
        if return_hidden:
            first = torch.zeros(int(owner.max().item()) + 1, dtype=torch.long, device=owner.device)
            first = first.scatter_reduce(0, owner, torch.arange(len(owner), device=owner.device), "amin",
                                         include_self=False)
            hidden = out.decoder_hidden_states[-1][first, 0]
        # encoder: bidirectional; decoder: self-attention over the candidate prefix + cross-attention over the prompt
        return token_lp, hidden, self._context(p_ids, owner, p_mask.sum(1), cand_mask, causal=False)
