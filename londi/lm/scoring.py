"""Action scoring: the log-probability an LM gives each admissible action's tokens after the prompt.

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
    truncated_prompts: int = 0
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

    `max_prompt_tokens` keeps the LAST tokens of a longer prompt (the most recent history; builders in
    `londi.lm.prompts` already drop old steps to fit, this is the hard guard). `candidate_eos` appends EOS
    to every candidate, so one candidate that is a prefix of another is not favoured by `sum`. `add_bos`:
    None follows the tokenizer's own special tokens (see `prompt_ids`). `max_cache_mb` bounds the KV cache
    expanded to the (state, candidate) rows: above it, rows are scored in chunks (None: no bound).
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
    ):
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
        self.model = model
        self.tokenizer = tokenizer
        self.reduction = reduction
        self.max_prompt_tokens = max_prompt_tokens
        self.candidate_eos = candidate_eos
        self.max_cache_mb = max_cache_mb
        self.is_seq2seq = bool(getattr(model.config, "is_encoder_decoder", False))
        pad = tokenizer.pad_token_id
        if pad is None:
            pad = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else 0
        self.pad_id = int(pad)
        self._cand_cache: dict[str, list[int]] = {}
        self._specials = self._special_ids(add_bos)
        params = inspect.signature(model.forward).parameters
        self._keeps_logits = "logits_to_keep" in params
        # transformers 5.x renamed the KV-cache argument and output from past_key_values to cache
        self._cache_kw = "cache" if "cache" in params else "past_key_values"

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    # ---- tokenization -------------------------------------------------------------------------------
    def prompt_ids(self, prompt: str) -> tuple[list[int], bool]:
        """Token ids of a prompt as the model was trained to see it, and whether it was cut.

        Special tokens follow the tokenizer (`tokenizer(prompt)`): causal LMs keep its prefix (e.g. Llama's
        BOS; none for GPT-2 or a londi word tokenizer) and drop any suffix (an EOS would end the prompt);
        seq2seq encoders keep both (T5's EOS). `add_bos=True/False` forces a BOS / no prefix. A prompt longer
        than `max_prompt_tokens` keeps its last tokens (the most recent history).
        """
        body = list(self.tokenizer(prompt, add_special_tokens=False)["input_ids"])
        prefix, suffix = self._specials
        if self.is_seq2seq:
            budget = None if self.max_prompt_tokens is None else self.max_prompt_tokens - len(prefix) - len(suffix)
        else:
            suffix = []
            budget = None if self.max_prompt_tokens is None else self.max_prompt_tokens - len(prefix)
        truncated = budget is not None and len(body) > budget
        if truncated:
            body = body[-budget:] if budget > 0 else []
        ids = prefix + body + suffix
        if not ids:
            raise ValueError("causal scoring needs at least one prompt token (empty prompt and no BOS token)")
        return ids, truncated

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

    def candidate_ids(self, candidate: str) -> list[int]:
        ids = self._cand_cache.get(candidate)
        if ids is None:
            ids = list(self.tokenizer(candidate, add_special_tokens=False)["input_ids"])
            if self.candidate_eos and self.tokenizer.eos_token_id is not None:
                ids.append(int(self.tokenizer.eos_token_id))
            if not ids:
                raise ValueError(f"candidate {candidate!r} has no tokens to score")
            if len(self._cand_cache) < 100_000:
                self._cand_cache[candidate] = ids
        return ids

    # ---- scoring -----------------------------------------------------------------------------------
    @torch.inference_mode()
    def score(
        self, prompts: Sequence[str], candidates: Sequence[Sequence[str]], return_hidden: bool = False
    ) -> ScoreOutput:
        """Score `candidates[i]` after `prompts[i]` for every state i, in one batched pass."""
        if len(prompts) != len(candidates):
            raise ValueError(f"{len(prompts)} prompts but {len(candidates)} candidate lists")
        encoded = [self.prompt_ids(p) for p in prompts]
        p_ids = [e[0] for e in encoded]
        c_ids = [[self.candidate_ids(c) for c in cands] for cands in candidates]
        if any(not cs for cs in c_ids):
            raise ValueError("every state needs at least one candidate to score")
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
            truncated_prompts=sum(e[1] for e in encoded),
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
