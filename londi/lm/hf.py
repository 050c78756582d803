"""`HFPolicy`: a transformers causal or seq2seq LM acting by action scoring or by generation.

Load a model by local directory, by hub name (for users who have network or a populated cache), or pass
an already-built model + tokenizer (tests, `tiny_hf`). Directories saved by `londi-distill` carry a
`londi_distill.json` with the prompt settings the model was trained on; those become the defaults here.

Compute accounting (filled into the `Usage` of every call; the meter adds wall/device seconds):
    FLOPs = 2 x N x T  +  2 x n_layer x d_model x C
where T is the tokens the model processed (prompt tokens once per state, plus candidate tokens, or
generated tokens), N the non-embedding parameters that process them (the LM head counts: its matmul is
real compute; for seq2seq, encoder parameters for prompt tokens and decoder parameters for candidate
tokens), and C the sum over processed tokens of the positions each attended to (the attention term, which
dominates only for long prompts on small models). Usage: one call per state; `prompt_tokens` = prompt
tokens, `completion_tokens` = scored candidate tokens (score mode) or generated tokens (generate mode).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from londi.lm.matching import match_action
from londi.lm.policy import ActResult, LMPolicy, PolicyError
from londi.lm.prompts import PromptBuilder, get_prompt_builder
from londi.lm.scoring import ActionScorer, ScoreOutput, context_length
from londi.lm.state import TextState
from londi.lm.usage import ComputeMeter, Usage

DISTILL_META = "londi_distill.json"
MODES = ("score", "generate")
_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


class ModelLoadError(OSError):
    """A model could not be loaded (missing local path, hub name while offline, broken directory)."""


def _offline() -> bool:
    return any(os.environ.get(k, "").lower() in ("1", "true", "yes", "on") for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


@contextlib.contextmanager
def _quiet_local_load(quiet: bool) -> Iterator[None]:
    """No "Loading weights" bar for a local directory (a bar per job floods sweep logs); hub downloads keep theirs."""
    from transformers.utils import logging as hf_logging

    was_on = hf_logging.is_progress_bar_enabled()
    if quiet and was_on:
        hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if quiet and was_on:
            hf_logging.enable_progress_bar()


def _looks_like_path(name: str) -> bool:
    """Hub ids are "name" or "org/name"; anything else (absolute, ./, ~, deeper folders) is a local path."""
    return name.startswith(("/", ".", "~")) or name.count("/") > 1 or "\\" in name


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def resolve_dtype(dtype: str | torch.dtype, device: torch.device) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if dtype not in _DTYPES:
        raise ValueError(f"dtype must be one of {sorted(_DTYPES)} or 'auto', got {dtype!r}")
    return _DTYPES[dtype]


ASSET_PREFIX = "londi-assets:"


def resolve_model_path(path: str) -> str:
    """Expand "londi-assets:REL" to the installed package's londi/assets/REL (the shipped models); else as is."""
    if path.startswith(ASSET_PREFIX):
        return str(Path(__file__).resolve().parents[1] / "assets" / path[len(ASSET_PREFIX) :])
    return path


def load_model(path: str, device: torch.device, dtype: torch.dtype, trust_remote_code: bool = False):
    """(model, tokenizer) from a local directory or a hub name; clear errors when neither is available.

    Weights load through transformers (safetensors first; `.bin` files go through torch.load with
    weights_only=True), so a checkpoint cannot run code.
    """
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

    path = resolve_model_path(path)
    local = Path(path).expanduser()
    if local.is_dir():
        source, local_only = str(local), True
    elif local.exists():
        raise ModelLoadError(f"model path {str(local)!r} is a file; point `path` at the directory holding config.json")
    elif _looks_like_path(path):
        raise ModelLoadError(
            f"model path {str(local)!r} does not exist; point `path` at a directory holding config.json + weights "
            "(e.g. one written by `londi-distill ... out=DIR`: use DIR/model)"
        )
    else:
        source, local_only = path, _offline()
    try:
        config = AutoConfig.from_pretrained(source, local_files_only=local_only, trust_remote_code=trust_remote_code)
        cls = AutoModelForSeq2SeqLM if getattr(config, "is_encoder_decoder", False) else AutoModelForCausalLM
        tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=local_only, trust_remote_code=trust_remote_code)
        with _quiet_local_load(local.is_dir()):
            model = cls.from_pretrained(source, dtype=dtype, local_files_only=local_only, use_safetensors=None,
                                        trust_remote_code=trust_remote_code)
    except OSError as e:
        if source is path and local_only:
            raise ModelLoadError(
                f"{path!r} is not a local directory and is not in the Hugging Face cache, and HF_HUB_OFFLINE=1 "
                "forbids downloading it. Point `path` at a local model directory (config.json + weights, e.g. "
                "from model.save_pretrained or londi-distill), or unset HF_HUB_OFFLINE on a machine with "
                f"network access. ({type(e).__name__}: {e})"
            ) from e
        raise ModelLoadError(f"could not load model {path!r}: {e}") from e
    return model.to(device).eval(), tokenizer


def compute_parameters(model: torch.nn.Module) -> tuple[int, int]:
    """(N_encoder, N_decoder): non-embedding parameters that process encoder / decoder tokens.

    Input and position embedding tables are lookups, not matmuls, so they are excluded; the LM head is
    included (counted again when tied to the input embedding). Decoder-only models return (0, N).
    """
    emb_modules = [m for m in model.modules() if isinstance(m, torch.nn.Embedding)]
    emb_ids = {id(m.weight) for m in emb_modules}
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    head_n = head.weight.numel() if head is not None and id(head.weight) in emb_ids else 0

    def dense(module: torch.nn.Module) -> int:
        return sum(p.numel() for p in module.parameters() if id(p) not in emb_ids)

    total = dense(model) + head_n
    if getattr(model.config, "is_encoder_decoder", False):
        enc = dense(model.get_encoder())
        return enc, total - enc
    return 0, total


class HFPolicy(LMPolicy):
    """A transformers LM as a policy (see the module doc for the FLOPs formula).

    Settings come from the `model` config group (configs/model/hf.yaml, distilled.yaml); the arguments
    that default to None mean "as the model directory's londi_distill.json says, else the builder's".

    Args:
        path: local model directory, "londi-assets:models/NAME" (a model shipped in the package), or hub
            name (or None with `model` and `tokenizer` given).
        device: "cpu", "cuda", "cuda:1", "auto". dtype: "float32", "bfloat16", "float16", "auto".
        max_prompt_tokens: prompt budget in tokens, special tokens included (None: the model directory's
            londi_distill.json, else the model's context length (config.max_position_embeddings or n_positions)
            less `max_new_tokens`, the room for the action or reply): old history is dropped to fit; a prompt
            whose current observation alone is longer, or a prompt and action longer than the model's context,
            raises `PromptTooLongError` naming the fix (a prompt is never cut: that would drop its head, the
            goal or the task).
        score: "sum" or "mean" (length-normalised) candidate log-probs. mode: "score" or "generate".
        history: past steps in the prompt (None: the prompt builder's / distilled model's default).
        history_chunk: steps the history window moves at once (None: the distilled model's, else 1; see
            `londi.lm.prompts.PromptBuilder`).
        prompt_options: options of the prompt builder of the model's env family, e.g. {"named_objects": True}
            (None: the distilled model's, else none).
        temperature, greedy: greedy picks the argmax (score) or decodes greedily (generate); otherwise
            samples from softmax(scores / temperature) or with that sampling temperature.
        max_new_tokens: generation length in `generate` mode. Sampled generation draws each state's reply alone
            from its own generator (`seed()`), so a reply does not depend on the batch, and leaves the global
            torch RNG as it was.
    """

    def __init__(
        self,
        *,
        name: str,
        device: str,
        dtype: str,
        mode: str,
        greedy: bool,
        temperature: float,
        max_new_tokens: int,
        path: str | None = None,
        model: Any = None,
        tokenizer: Any = None,
        max_prompt_tokens: int | None = None,
        score: str | None = None,
        history: int | None = None,
        history_chunk: int | None = None,
        prompt_options: Mapping[str, Any] | None = None,
        candidate_eos: bool = False,
        add_bos: bool | None = None,
        seed: int | None = None,
        trust_remote_code: bool = False,
        meter: ComputeMeter | None = None,
    ):
        super().__init__(name, meter)
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if not greedy and temperature <= 0:
            raise ValueError(f"sampling needs temperature > 0, got {temperature}; or set greedy=true")
        self.device = resolve_device(device)
        if self.device.type not in ("cpu", "cuda"):  # before loading: the meter could not time a single call
            raise ValueError(f"{name}: device={device!r}; the compute meter times models on cpu or cuda[:N] only")
        meta: dict[str, Any] = {}
        if model is not None:
            if tokenizer is None:
                raise ValueError("HFPolicy(model=...) also needs its tokenizer=")
            self.model = model.to(self.device).eval()
            self.tokenizer = tokenizer
        elif path is not None:
            self.model, self.tokenizer = load_model(str(path), self.device, resolve_dtype(dtype, self.device),
                                                    trust_remote_code)
            meta_path = Path(resolve_model_path(str(path))).expanduser() / DISTILL_META
            if meta_path.is_file():
                meta = json.loads(meta_path.read_text())
        else:
            raise ValueError("HFPolicy needs `path` (local directory or hub name) or `model` + `tokenizer`")
        prompt_meta = meta.get("prompt") or {}
        if meta and add_bos is None:
            add_bos = bool(prompt_meta.get("add_bos", False))  # londi-distill trains without special tokens
        self.path = str(path) if path is not None else None
        self.mode = mode
        self.history = history if history is not None else prompt_meta.get("history")
        self.history_chunk = int(history_chunk if history_chunk is not None else prompt_meta.get("history_chunk", 1))
        self.trained_family = prompt_meta.get("family")  # a distilled model knows one env family's text only
        self._train_seeds: dict[str, list] = dict(meta.get("train_seeds") or {})  # londi.lm.heldout
        self.prompt_options = dict(prompt_options if prompt_options is not None else prompt_meta.get("options") or {})
        self.max_prompt_tokens = max_prompt_tokens if max_prompt_tokens is not None else prompt_meta.get("max_prompt_tokens")
        self.temperature = float(temperature)
        self.greedy = bool(greedy)
        self.max_new_tokens = int(max_new_tokens)
        context = context_length(self.model)
        if self.max_prompt_tokens is None and context is not None:
            # the model's context, less room after the prompt for the action (score) or the reply (generate)
            self.max_prompt_tokens = max(context - self.max_new_tokens, 1)
        self.scorer = ActionScorer(self.model, self.tokenizer, reduction=score or meta.get("scoring", "sum"),
                                   max_prompt_tokens=self.max_prompt_tokens, candidate_eos=candidate_eos,
                                   add_bos=add_bos, name=f"{name} ({self.path or type(self.model).__name__})",
                                   setting=f"{name}.max_prompt_tokens")
        self.is_seq2seq = self.scorer.is_seq2seq
        self._n_enc, self._n_dec = compute_parameters(self.model)
        cfg = self.model.config
        self._n_layer = int(getattr(cfg, "num_hidden_layers", None) or getattr(cfg, "num_layers", 0) or 0)
        self._d_model = int(getattr(cfg, "hidden_size", None) or getattr(cfg, "d_model", 0) or 0)
        self._builders: dict[str, PromptBuilder] = {}
        self.seed(seed)

    # ---- public helpers -----------------------------------------------------------------------------
    @property
    def num_parameters(self) -> int:
        return int(sum(p.numel() for p in self.model.parameters()))

    def trained_episode_seeds(self, env_id: str) -> list[tuple[int, int]]:
        """The reset seeds of `env_id` this model was distilled on, as [first, end) ranges (`londi.lm.heldout`)."""
        return [(int(a), int(b)) for a, b in self._train_seeds.get(env_id, ())]

    @property
    def compute_device(self) -> str:
        """The model's device: a CPU model is timed on the calling thread even when CUDA runs beside it."""
        return str(self.device)

    def fingerprint(self) -> str:
        """sha256 over every tensor's name, shape and first 4,096 values (cheap for an 8B model too)."""
        import hashlib

        h = hashlib.sha256()
        for name, t in sorted(self.model.state_dict().items()):
            h.update(f"{name}{tuple(t.shape)}{t.dtype}".encode())
            h.update(t.detach().reshape(-1)[:4096].float().cpu().numpy().tobytes())
        return h.hexdigest()[:16]

    @property
    def reduction(self) -> str:
        return self.scorer.reduction

    def count_tokens(self, text: str) -> int:
        """Prompt tokens as the scorer counts them against `max_prompt_tokens` (special tokens included), so the
        prompt builder drops history exactly until the prompt fits."""
        return self.scorer.count_prompt_tokens(text)

    def builder(self, family: str) -> PromptBuilder:
        """The prompt builder this policy uses for states of `family` (made once per family)."""
        builder = self._builders.get(family)
        if builder is None:
            kwargs: dict[str, Any] = {"max_tokens": self.max_prompt_tokens, "count_tokens": self.count_tokens,
                                      "history_chunk": self.history_chunk}
            if self.history is not None:
                kwargs["history"] = int(self.history)
            if self.prompt_options and family == (self.trained_family or family):
                kwargs.update(self.prompt_options)
            builder = self._builders[family] = get_prompt_builder(family, **kwargs)
        return builder

    @property
    def history_needed(self) -> int:
        if self.history is None:  # the family builder's default; the largest of the registered ones
            from londi.lm.prompts import prompt_families

            return max(self.builder(f).history_needed for f in prompt_families())
        return int(self.history) + self.history_chunk - 1 if int(self.history) > 0 else 0

    def prompt(self, state: TextState) -> str:
        """The exact prompt this policy shows the model for `state` (history trimmed to the budget)."""
        if self.trained_family and state.family != self.trained_family:
            raise ValueError(
                f"{self.name}: {self.path} was distilled on {self.trained_family} states and cannot act on a "
                f"{state.family} state; choose a model for this env, e.g. model@{self.name}=hf {self.name}.path=... "
                f"or model@{self.name}=expert")
        return self.builder(state.family).build(state)

    def flops(self, prompt_tokens: int, completion_tokens: int, attention_context: int) -> float:
        """The module-doc formula for one batch."""
        if self.is_seq2seq:
            dense = 2.0 * (self._n_enc * prompt_tokens + self._n_dec * completion_tokens)
        else:
            dense = 2.0 * self._n_dec * (prompt_tokens + completion_tokens)
        return dense + 2.0 * self._n_layer * self._d_model * attention_context

    def scores(self, states: Sequence[TextState], return_hidden: bool = False) -> ScoreOutput:
        """Raw candidate scores without choosing or metering (for analysis; `act` is the metered path)."""
        return self.scorer.score([self.prompt(s) for s in states], [s.admissible_actions for s in states],
                                 return_hidden)

    # ---- the backend --------------------------------------------------------------------------------
    def _act(self, states: Sequence[TextState], usage: Usage, return_hidden: bool) -> list[ActResult]:
        if self.mode == "generate":
            return self._generate(states, usage, return_hidden)
        out = self.scores(states, return_hidden)
        usage.calls += len(states)
        usage.prompt_tokens += out.prompt_tokens
        usage.completion_tokens += out.candidate_tokens
        usage.flops += self.flops(out.prompt_tokens, out.candidate_tokens, out.attention_context)
        results = []
        for i, (s, sc) in enumerate(zip(states, out.scores, strict=True)):
            idx = self._choose(sc, i)
            p_tok, c_tok, ctx = out.per_state[i]
            results.append(ActResult(
                index=idx, action=s.admissible_actions[idx], scores=sc,
                hidden=out.hidden[i] if out.hidden is not None else None,
                usage=Usage(model=self.name, calls=1, prompt_tokens=p_tok, completion_tokens=c_tok,
                            flops=self.flops(p_tok, c_tok, ctx)),
            ))
        return results

    def _choose(self, scores: np.ndarray, i: int = 0) -> int:
        if self.greedy:
            return int(np.argmax(scores))
        z = scores / self.temperature
        p = np.exp(z - z.max())
        return int(self.rng(i).choice(len(p), p=p / p.sum()))

    def generate_text(self, states: Sequence[TextState]) -> list[str]:
        """The raw generated replies, without mapping or metering (for analysis; `act` is the metered path)."""
        return self._generate_raw(states, return_hidden=False)[0]

    @torch.inference_mode()
    def _generate_raw(self, states: Sequence[TextState], return_hidden: bool):
        """(texts, hidden, per state (prompt tokens, generated tokens, attention context)) for a batch."""
        # the prompt exactly as the scorer reads it (with a BPE tokenizer, without the trailing space token)
        prompts = [self.scorer.encode(self.prompt(s), s.admissible_actions)[0] for s in states]
        if not self.is_seq2seq:
            for p_ids in prompts:
                self.scorer.check_positions(len(p_ids), self.max_new_tokens, f"{self.name}.max_new_tokens")
        if self.greedy:
            rows, hidden = self._generate_ids(prompts, return_hidden)
        else:  # each state alone, from its own generator, as score mode samples: a reply does not depend on the batch
            rows, hiddens = [], []
            for i, p_ids in enumerate(prompts):
                with self._sampling_rng(int(self.rng(i).integers(2**63))):
                    row, h = self._generate_ids([p_ids], return_hidden)
                rows += row
                hiddens.append(h)
            hidden = np.concatenate(hiddens) if return_hidden else None
        pad = self.scorer.pad_id
        eos = self.tokenizer.eos_token_id
        texts, per_state = [], []
        for p_ids, row in zip(prompts, rows, strict=True):
            toks = []
            for t in row:
                if t == eos or t == pad:
                    break
                toks.append(t)
            n_new = len(toks) + (1 if len(toks) < len(row) else 0)  # the EOS step was computed too
            p = len(p_ids)
            per_state.append((p, n_new, p * (p + 1) // 2 + sum(p + k + 1 for k in range(len(toks)))))
            texts.append(self.tokenizer.decode(toks, skip_special_tokens=True))
        return texts, hidden, per_state

    def _generate_ids(self, prompts: list[list[int]], return_hidden: bool) -> tuple[list[list[int]], np.ndarray | None]:
        """One `generate` call on these prompts: the new token ids of each, and the prompt encodings if asked."""
        ids, mask = self.scorer._pad(prompts, left=not self.is_seq2seq)
        kwargs: dict[str, Any] = {
            "input_ids": ids, "attention_mask": mask, "max_new_tokens": self.max_new_tokens,
            "do_sample": not self.greedy, "pad_token_id": self.scorer.pad_id, "return_dict_in_generate": True,
            "output_hidden_states": return_hidden,
        }
        if not self.greedy:
            kwargs["temperature"] = self.temperature
        gen = self.model.generate(**kwargs)
        # seq2seq output starts with the decoder start token; causal output repeats the prompt
        new = gen.sequences[:, 1:] if self.is_seq2seq else gen.sequences[:, ids.shape[1] :]
        hidden = None
        if return_hidden:
            if self.is_seq2seq:
                hidden = gen.decoder_hidden_states[0][-1][:, 0].float().cpu().numpy()
            else:
                hidden = gen.hidden_states[0][-1][:, -1].float().cpu().numpy()
        return new.tolist(), hidden

    @contextlib.contextmanager
    def _sampling_rng(self, seed: int) -> Iterator[None]:
        """torch's generator on the model's device seeded with `seed` inside, restored after: sampling does not
        move the global torch RNG that other code (PPO's action sampling) draws from."""
        cuda = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda):
            torch.default_generator.manual_seed(seed)
            for device in cuda:
                with torch.cuda.device(device):
                    torch.cuda.manual_seed(seed)
            yield

    def _generate(self, states: Sequence[TextState], usage: Usage, return_hidden: bool) -> list[ActResult]:
        texts, hidden, per_state = self._generate_raw(states, return_hidden)
        usage.calls += len(states)  # tokens and FLOPs stay recorded after a mapping error; `act` drops the calls
        for p, n, ctx in per_state:
            usage.prompt_tokens += p
            usage.completion_tokens += n
            usage.flops += self.flops(p, n, ctx)
        results = []
        for i, (s, text) in enumerate(zip(states, texts, strict=True)):
            idx = match_action(text, s.admissible_actions)
            if idx is None:
                raise PolicyError(f"{self.name}: generated {text!r}, which matches none of the admissible actions")
            p, n, ctx = per_state[i]
            results.append(ActResult(index=idx, action=s.admissible_actions[idx],
                                     hidden=hidden[i] if hidden is not None else None, info={"generated": text},
                                     usage=Usage(model=self.name, calls=1, prompt_tokens=p, completion_tokens=n,
                                                 flops=self.flops(p, n, ctx))))
        return results

    def __repr__(self) -> str:
        src = self.path or type(self.model).__name__
        return (f"HFPolicy(name={self.name!r}, model={src!r}, params={self.num_parameters}, mode={self.mode!r}, "
                f"score={self.reduction!r}, device={str(self.device)!r})")
