"""`londi-distill`: behaviour-clone an env's expert into a small transformers causal LM.

There are no pretrained weights on a laptop or in CI, so the project makes its own QUICK and DEEPTHINK
models the way SwiftSage made its fast model: expert (and noise-injected expert) trajectories, then DAgger
rounds on the learner's own states, all labelled by `env.unwrapped.expert_action()`. The model is a
transformers causal LM (built from a config, or a checkpoint to fine-tune) trained on prompt -> expert
action text with the loss on the action tokens only; so the hf backend's action scoring (sum of the
candidate's token log-probs after the prompt) is exactly the trained policy, and the output directory
loads like any hub model (`AutoModelForCausalLM.from_pretrained(out/"model")`, safetensors + tokenizer).

    londi-distill distill_model=quick out=outputs/distill/quick
    londi-distill distill_model=deepthink 'envs=[BabyAI-Text-GoToLocal-v0,BabyAI-Text-PickupLocal-v0]'
    londi-distill distill_model=deepthink init_from=path/to/model out=DIR      # fine-tune a saved model
    londi-distill evaluate_only=londi/assets/models/babyai_quick eval_episodes=100   # re-measure a saved model
    londi-distill --help / --cfg job

`distill_model` is a config group (configs/distill_model/: architecture + training recipe); every key is
checked by the `DistillConfig` schema. Several envs train one model on all of them (the BabyAI-Text
skills at once); each is evaluated on its own. With `history_chunk` > 1 the prompts of consecutive steps
extend one another, and `pack=true` trains all the steps of such a run as one sequence (one forward pass
for several labels, the model seeing exactly the prompts `HFPolicy` will build).

Rerunning the same command resumes from out/checkpoint.pt; the data of each round is kept in out/data/;
the learning curve (success per env against training samples, FLOPs and CPU seconds) grows in
out/curve.jsonl. Deterministic given `seed` (one CPU thread, seeded shuffles, no dropout).
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import re
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, ListConfig, OmegaConf

from londi.checkpoints import read_json_record
from londi.config import override_key
from londi.lm.demonstrations import CollectionStats, Demonstration, collect, evaluate
from londi.lm.heldout import DAGGER_SEED_STRIDE, NOISY_SEED_OFFSET, SEED_STRIDE, distill_seed_ranges, union
from londi.lm.prompts import PromptBuilder, get_prompt_builder
from londi.lm.scoring import ActionScorer
from londi.lm.state import TextState
from londi.lm.tokenization import build_word_tokenizer, split_words
from londi.rundir import hardware

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pt"
MODEL_DIR = "model"
CURVE = "curve.jsonl"
LONDI_META = "londi_distill.json"  # saved beside the model: the prompt settings it was trained with
# Keys that may change between a run and its resume without changing what is trained.
RESUMABLE_KEYS = frozenset({"progress", "stop_at", "finish_at", "out", "evaluate_only", "eval_episodes",
                            "eval_temperature", "threads", "why"})


# ----------------------------------------------------------------------------------------------- config
def env_ids(env: Any) -> list[str]:
    """`env` as a list of ids (the config takes one id or a list)."""
    if isinstance(env, (list, tuple, ListConfig)):
        ids = [str(e) for e in env]
    else:
        ids = [str(env)]
    if not ids:
        raise ValueError("env must name at least one env id")
    return ids


def short_env(env_id: str) -> str:
    """"BabyAI-Text-GoToLocal-v0" -> "GoToLocal" (table and progress-bar labels)."""
    parts = env_id.split("-")
    return parts[2] if len(parts) >= 4 and parts[1] == "Text" else env_id


# ------------------------------------------------------------------------------------------ reproducibility
def seed_everything(seed: int, threads: int = 1) -> None:
    """Seed python, numpy and torch, and pin torch to `threads` CPU threads (bitwise-reproducible runs)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True, warn_only=True)


# ---------------------------------------------------------------------------------------------- the model
def build_model(arch_cfg: Any, tokenizer: Any) -> torch.nn.Module:
    """A causal LM from `arch_cfg` (a transformers config: model_type + sizes); vocab from the tokenizer."""
    from transformers import AutoConfig, AutoModelForCausalLM

    arch = OmegaConf.to_container(arch_cfg, resolve=True) if isinstance(arch_cfg, DictConfig) else dict(arch_cfg)
    assert isinstance(arch, dict)
    model_type = arch.pop("model_type", "llama")
    config = AutoConfig.for_model(
        model_type,
        vocab_size=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        **arch,
    )
    return AutoModelForCausalLM.from_config(config)


def num_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# ----------------------------------------------------------------------------------------------- the data
class Sequences:
    """Demonstrations as token sequences with the expert actions' token spans as labels.

    Each demonstration is tokenized by the scorer itself (`ActionScorer.encode`: the prompt and its admissible
    actions, the label being the expert's), so training sees exactly the ids `ActionScorer` scores at run
    time, where the prompt ends and the action begins included. With `pack`, consecutive steps of one episode
    whose prompt extends the previous prompt + action (a `history_chunk` window) become one sequence with
    one label span per step.
    """

    def __init__(self, demos: Sequence[Demonstration], scorer: ActionScorer, pack: bool = True):
        self.pad_id = scorer.pad_id
        self.tokens: list[np.ndarray] = []
        self.spans: list[np.ndarray] = []
        self.labels = 0
        cur: list[int] | None = None
        spans: list[tuple[int, int]] = []
        key = None
        for d in demos:
            p, cands = scorer.encode(d.prompt, d.actions)
            a = cands[d.label]
            k = (d.env, d.source, d.episode)
            if pack and cur is not None and k == key and len(p) >= len(cur) and p[: len(cur)] == cur:
                cur = p + a
                spans.append((len(p), len(p) + len(a)))
            else:
                self._flush(cur, spans)
                cur, spans, key = p + a, [(len(p), len(p) + len(a))], k
            self.labels += 1
        self._flush(cur, spans)
        self.lengths = np.array([len(t) for t in self.tokens], dtype=np.int64)

    def _flush(self, seq: list[int] | None, spans: list[tuple[int, int]]) -> None:
        if seq is not None:
            self.tokens.append(np.asarray(seq, dtype=np.int32))
            self.spans.append(np.asarray(spans, dtype=np.int32))

    def __len__(self) -> int:
        return len(self.tokens)

    def batch(self, indices: Sequence[int]) -> dict[str, torch.Tensor]:
        """Right-padded input_ids, attention_mask, labels that are -100 everywhere but the actions, and
        `action_mask` (1 on action tokens) for `loss`."""
        width = int(max(self.lengths[i] for i in indices))
        ids = torch.full((len(indices), width), self.pad_id, dtype=torch.long)
        labels = torch.full((len(indices), width), -100, dtype=torch.long)
        mask = torch.zeros((len(indices), width), dtype=torch.long)
        for row, i in enumerate(indices):
            seq = torch.from_numpy(self.tokens[i].astype(np.int64))
            ids[row, : len(seq)] = seq
            mask[row, : len(seq)] = 1
            for lo, hi in self.spans[i]:
                labels[row, lo:hi] = seq[lo:hi]
        return {"input_ids": ids, "attention_mask": mask, "labels": labels, "action_mask": (labels != -100).long()}


def distill_loss(model: torch.nn.Module, batch: Mapping[str, torch.Tensor], aux_lm_weight: float = 0.0
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss to minimise, action loss): mean cross-entropy on the expert actions' tokens, plus
    `aux_lm_weight` x the mean next-token cross-entropy on every other real token.

    Why the auxiliary term: predicting the next observation from the previous one and the action taken
    teaches what the policy needs (find the goal's object among the descriptions, read its offset, know what
    an action does to it) on every token of the sequence, where the action loss only sees a few.
    """
    ids, actions, real = batch["input_ids"], batch["action_mask"], batch["attention_mask"]
    # Right padding after every real token: causal attention needs no mask, and SDPA runs faster without.
    logits = model(input_ids=ids).logits[:, :-1].float()
    target = ids[:, 1:]
    ce = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1),
                                           reduction="none").view_as(target)
    act = actions[:, 1:].float()
    action_loss = (ce * act).sum() / act.sum().clamp(min=1)
    if aux_lm_weight <= 0:
        return action_loss, action_loss.detach()
    other = real[:, 1:].float() * (1 - act)
    return action_loss + aux_lm_weight * (ce * other).sum() / other.sum().clamp(min=1), action_loss.detach()


class BatchStream:
    """An endless stream of batches over seeded per-epoch permutations, bucketed by length.

    Each epoch is cut into groups of `bucket` batches whose members are sorted by length (little padding),
    and the batches are shuffled. `batch(step)` is a pure function of (lengths, batch_size, seed, step), so
    a resumed run draws exactly the batches the first run would have.
    """

    def __init__(self, lengths: np.ndarray, batch_size: int, seed: int, bucket: int = 64):
        if len(lengths) == 0:
            raise ValueError("no training sequences: the demonstrations are empty")
        self.lengths, self.batch_size, self.seed, self.bucket = np.asarray(lengths), int(batch_size), seed, bucket
        n, span = len(lengths), self.batch_size * bucket
        self.per_epoch = sum(math.ceil(min(span, n - lo) / self.batch_size) for lo in range(0, n, span))
        self._epoch: int | None = None
        self._batches: list[np.ndarray] = []

    def epoch_batches(self, epoch: int) -> list[np.ndarray]:
        rng = np.random.default_rng([self.seed, epoch])
        perm = rng.permutation(len(self.lengths))
        span = self.batch_size * self.bucket
        batches: list[np.ndarray] = []
        for lo in range(0, len(perm), span):
            chunk = perm[lo : lo + span]
            chunk = chunk[np.argsort(self.lengths[chunk], kind="stable")]
            batches.extend(chunk[i : i + self.batch_size] for i in range(0, len(chunk), self.batch_size))
        return [batches[i] for i in rng.permutation(len(batches))]

    def batch(self, step: int) -> list[int]:
        epoch, k = divmod(step, self.per_epoch)
        if epoch != self._epoch:
            self._epoch, self._batches = epoch, self.epoch_batches(epoch)
        return [int(i) for i in self._batches[k]]


def lr_lambda(total_steps: int, warmup: int, min_ratio: float) -> Callable[[int], float]:
    """Linear warm-up then cosine decay to `min_ratio` x the peak learning rate."""

    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / max(warmup, 1)
        t = min(1.0, (step - warmup) / max(total_steps - warmup, 1))
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * t))

    return f


# ------------------------------------------------------------------------------------------ the learner
class CausalLMActor:
    """Greedy policy of a causal LM: the admissible action with the highest summed token log-prob.

    It scores with the hf backend's own `ActionScorer` (sum reduction) and prompt builder, so DAgger and
    the evaluation here measure exactly the policy that `HFPolicy` will run.
    """

    def __init__(self, model: torch.nn.Module, tokenizer: Any, prompt: PromptBuilder | None = None,
                 max_prompt_tokens: int = 512, history: int = 0):
        self.scorer = ActionScorer(model, tokenizer, reduction="sum", max_prompt_tokens=max_prompt_tokens)
        self.prompt = prompt
        self.history = history  # used only without `prompt` (the family's builder with this many steps)

    @property
    def history_needed(self) -> int:
        return self.prompt.history_needed if self.prompt is not None else self.history

    def build(self, state: TextState) -> str:
        if self.prompt is not None:
            return self.prompt.build(state)
        return get_prompt_builder(state.family, history=self.history).build(state)

    def scores(self, state: TextState) -> np.ndarray:
        model = self.scorer.model
        was_training = model.training
        model.eval()
        try:
            return self.scorer.score([self.build(state)], [state.admissible_actions]).scores[0]
        finally:
            model.train(was_training)

    def __call__(self, state: TextState) -> int:
        return int(np.argmax(self.scores(state)))


# ------------------------------------------------------------------------------------------- the trainer
def _plain(node: Any) -> Any:
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, (DictConfig, ListConfig)) else node


def _make_env_factory(env_id: str, env_kwargs: Any = None) -> Callable[[], Any]:
    kwargs = dict(_plain(env_kwargs) or {})

    def make():
        import envs

        return envs.make(env_id, **kwargs)

    return make


def _save_demos(path: Path, demos: Sequence[Demonstration]) -> None:
    tmp = path.with_suffix(".tmp")
    with tmp.open("w") as f:
        for d in demos:
            f.write(json.dumps(d.to_dict()) + "\n")
    tmp.replace(path)


def _load_demos(path: Path) -> list[Demonstration]:
    with path.open() as f:
        return [Demonstration.from_dict(json.loads(line)) for line in f]


def _adds_bos(scorer: ActionScorer) -> bool:
    """Whether the scorer put a BOS before the prompts the model was trained on (recorded for HFPolicy)."""
    probe = "a"
    return len(scorer.prompt_ids(probe)) > len(scorer.tokenizer(probe, add_special_tokens=False)["input_ids"])


@dataclass
class Progress:
    """Training counters kept in the checkpoint (the learning curve's x axes)."""

    step: int = 0
    samples: int = 0  # labelled states seen (a packed sequence counts each of its labels)
    tokens: int = 0  # real (non-pad) tokens processed
    train_flops: float = 0.0  # 6 x non-embedding params x tokens (forward + backward; attention not counted)
    train_cpu_seconds: float = 0.0  # process CPU seconds in optimizer steps
    cpu_seconds: float = 0.0  # process CPU seconds in all (collection, DAgger rollouts, evaluation included)
    wall_seconds: float = 0.0


class Distiller:
    """One distillation run in `cfg.out`: collect -> train -> (DAgger collect -> train) x rounds -> save.

    Every round's data is written to out/data/round{r}.jsonl before training on it, and the model,
    optimizer, schedule and counters to out/checkpoint.pt every `checkpoint_every` steps, so `run()` on
    the same config continues where a previous run stopped and ends with the same weights.
    """

    def __init__(self, cfg: DictConfig, command: str = ""):
        self.cfg = cfg
        self.command = command
        self.out = Path(cfg.out)
        self.envs = env_ids(cfg.envs)
        self.eval_envs = env_ids(cfg.eval_envs) if cfg.get("eval_envs") else list(self.envs)
        self.summary: dict[str, Any] = {}
        self.progress = Progress()
        self.last_eval: dict[str, float] = {}

    def make_env(self, env_id: str | None = None) -> Any:
        return _make_env_factory(env_id or self.envs[0], self.cfg.env_kwargs)()

    # -- pieces -------------------------------------------------------------------------------------------
    def _round_steps(self) -> list[int]:
        return [int(self.cfg.steps)] + [int(self.cfg.dagger_steps)] * int(self.cfg.dagger_rounds)

    def prompt_builder(self, tokenizer: Any | None) -> PromptBuilder:
        """The builder `HFPolicy` will use for this model (history window, token budget, token counter)."""
        probe = self.make_env(self.envs[0])  # the env says which prompt builder its states use
        try:
            family = str(getattr(probe.unwrapped, "family", "generic"))
        finally:
            probe.close()
        if tokenizer is not None:
            def count(text: str) -> int:  # special tokens included, as the scorer's budget counts a BOS (an
                return len(tokenizer(text)["input_ids"])  # EOS it drops: at worst one token to spare)
        else:  # the word tokenizer built later makes exactly one token per word or punctuation mark
            merges = self._merges()

            def count(text: str) -> int:
                return len(split_words(text, **merges))
        return get_prompt_builder(family, history=int(self.cfg.history), history_chunk=int(self.cfg.history_chunk),
                                  max_tokens=int(self.cfg.max_prompt_tokens), count_tokens=count,
                                  **self.prompt_options())

    def prompt_options(self) -> dict[str, Any]:
        """The prompt builder's own options (saved in londi_distill.json for HFPolicy)."""
        return dict(_plain(self.cfg.get("prompt_options")) or {})

    def _merges(self) -> dict[str, bool]:
        """Which phrases the word tokenizer makes one token (see `londi.lm.tokenization`)."""
        return {k: bool(self.cfg.get(k, False)) for k in ("merge_objects", "merge_offsets", "compact")}

    def _collect_round(self, r: int, actor: CausalLMActor | None, prompt: PromptBuilder) -> list[Demonstration]:
        path = self.out / "data" / f"round{r}.jsonl"
        if path.exists():
            return _load_demos(path)
        cfg, seed = self.cfg, int(self.cfg.seed) * SEED_STRIDE
        t0 = time.perf_counter()
        demos: list[Demonstration] = []
        stats: dict[str, Any] = {}
        for env_id in self.envs:
            make = _make_env_factory(env_id, cfg.env_kwargs)
            tag = short_env(env_id)
            if r == 0:
                n_noisy = int(round(cfg.episodes * cfg.noisy_fraction))
                clean, s1 = collect(make, cfg.episodes - n_noisy, seed=seed, prompt=prompt, source="expert",
                                    env_id=env_id, progress=cfg.progress)
                noisy, s2 = collect(make, n_noisy, seed=seed + NOISY_SEED_OFFSET, noise=cfg.noise, prompt=prompt,
                                    source="noisy", env_id=env_id, progress=cfg.progress)
                demos += clean + noisy
                stats[f"{tag}/expert"], stats[f"{tag}/noisy"] = s1.as_dict(), s2.as_dict()
            else:
                assert actor is not None
                beta = float(cfg.dagger_beta) ** r
                d, s = collect(make, cfg.dagger_episodes, seed=seed + DAGGER_SEED_STRIDE * (r + 1), learner=actor, beta=beta,
                               prompt=prompt, source=f"dagger{r}", env_id=env_id, progress=cfg.progress)
                demos += d
                stats[f"{tag}/dagger{r}"] = {**s.as_dict(), "beta": beta}
        path.parent.mkdir(parents=True, exist_ok=True)
        _save_demos(path, demos)
        self.summary.setdefault("collection", {}).update(stats)
        log.info("round %d: %d labelled states in %.1fs", r, len(demos), time.perf_counter() - t0)
        return demos

    def _tokenizer(self, demos: Sequence[Demonstration]) -> Any:
        from transformers import AutoTokenizer

        tok_dir = self.out / "tokenizer"
        if tok_dir.exists():
            return AutoTokenizer.from_pretrained(tok_dir)
        if self._init_path() is not None:
            tok = AutoTokenizer.from_pretrained(self._init_path())
        else:
            tok = build_word_tokenizer((d.prompt for d in demos), **self._merges())
        tok.save_pretrained(tok_dir)
        return AutoTokenizer.from_pretrained(tok_dir)

    def _init_path(self) -> Path | None:
        if not self.cfg.get("init_from"):
            return None
        p = Path(str(self.cfg.init_from)).expanduser()
        if not p.is_dir():
            raise FileNotFoundError(f"init_from={p} is not a directory; point it at a saved model (config.json + weights)")
        return p

    def _model(self, tokenizer: Any) -> torch.nn.Module:
        from transformers import AutoModelForCausalLM

        init = self._init_path()
        if init is not None:
            return AutoModelForCausalLM.from_pretrained(init, dtype=torch.float32)
        if not self.cfg.arch:
            raise ValueError("no model: set `arch` (choose a distill_model preset) or `init_from`")
        return build_model(self.cfg.arch, tokenizer)

    def evaluate(self, actor: CausalLMActor, episodes: int) -> dict[str, float]:
        """Greedy success of the learner per eval env (seeds eval_seed..), as {env id: rate}."""
        out = {}
        for env_id in self.eval_envs:
            s = evaluate(_make_env_factory(env_id, self.cfg.env_kwargs), actor, episodes, seed=int(self.cfg.eval_seed),
                         history=actor.history_needed, progress=False)
            out[env_id] = s.success_rate
        return out

    def _check_config(self) -> None:
        """Refuse to resume an out dir that holds a run of another config (data and weights would mix)."""
        path = self.out / "config.yaml"
        mine = {k: v for k, v in _plain(self.cfg).items() if k not in RESUMABLE_KEYS}
        if path.exists():
            theirs = {k: v for k, v in (OmegaConf.to_container(OmegaConf.load(path)) or {}).items()
                      if k not in RESUMABLE_KEYS}
            from londi.config import DistillConfig

            defaults = DistillConfig()  # a key added since that run started: it ran with the default
            diff = sorted(k for k in set(mine) | set(theirs)
                          if mine.get(k) != theirs.get(k, getattr(defaults, k, None)))
            if diff:
                raise ValueError(
                    f"{self.out} holds a distillation run with other settings ({', '.join(diff)}); "
                    "rerun with the same settings to resume it, or choose another out=")
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "config.yaml").write_text(OmegaConf.to_yaml(self.cfg, resolve=True))

    # -- the run ------------------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        cfg = self.cfg
        seed_everything(int(cfg.seed), int(cfg.threads))
        self._check_config()
        round_steps = self._round_steps()
        total = sum(round_steps)
        init_tok = None
        if self._init_path() is not None:
            from transformers import AutoTokenizer

            init_tok = AutoTokenizer.from_pretrained(self._init_path())
        prompt = self.prompt_builder(init_tok)
        t_wall, t_cpu = time.perf_counter(), time.process_time()

        demos = self._collect_round(0, None, prompt)
        tokenizer = self._tokenizer(demos)
        model = self._model(tokenizer)
        model.train()
        from londi.lm.hf import compute_parameters

        n_dense = sum(compute_parameters(model))
        opt = torch.optim.AdamW(model.parameters(), lr=float(cfg.lr), weight_decay=float(cfg.weight_decay),
                                betas=(0.9, 0.98))
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(total, int(cfg.warmup_steps), float(cfg.min_lr_ratio)))
        ckpt_path = self.out / CHECKPOINT
        if ckpt_path.exists():
            ckpt = torch.load(ckpt_path, weights_only=True)
            model.load_state_dict(ckpt["model"])
            opt.load_state_dict(ckpt["optimizer"])
            sched.load_state_dict(ckpt["scheduler"])
            self.progress = Progress(**ckpt["progress"])
            self.summary = json.loads(ckpt["summary"])
            self.last_eval = json.loads(ckpt.get("last_eval", "{}"))
            log.info("resumed from %s at step %d/%d", ckpt_path, self.progress.step, total)
            print(f"londi-distill: resumed from step {self.progress.step}/{total} ({ckpt_path})")
        self._trim_curve(self.progress.step)
        actor = CausalLMActor(model, tokenizer, prompt, int(cfg.max_prompt_tokens))
        self.summary["parameters"] = num_parameters(model)
        self.summary["dense_parameters"] = n_dense
        p = self.progress

        def tick() -> None:
            nonlocal t_wall, t_cpu
            now_wall, now_cpu = time.perf_counter(), time.process_time()
            p.wall_seconds += now_wall - t_wall
            p.cpu_seconds += now_cpu - t_cpu
            t_wall, t_cpu = now_wall, now_cpu

        def checkpoint() -> None:
            tick()
            tmp = ckpt_path.with_suffix(".tmp")
            torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                        "progress": p.__dict__, "summary": json.dumps(self.summary, default=float),
                        "last_eval": json.dumps(self.last_eval)}, tmp)
            tmp.replace(ckpt_path)

        from tqdm.auto import tqdm

        bar = tqdm(total=total, initial=p.step, desc="distill", unit="step", disable=not cfg.progress,
                   dynamic_ncols=True)

        def postfix(r: int, loss: float | None = None) -> None:
            fields: dict[str, Any] = {"round": r}
            if loss is not None:
                fields["loss"] = f"{loss:.3f}"
            fields.update({short_env(k): f"{v:.2f}" for k, v in self.last_eval.items()})
            bar.set_postfix(fields, refresh=False)

        def evaluate_now(r: int) -> None:
            tick()
            self.last_eval = self.evaluate(actor, int(cfg.eval_episodes_round))
            tick()
            row = {"round": r, **p.__dict__, "success": self.last_eval}
            with (self.out / CURVE).open("a") as f:
                f.write(json.dumps(row) + "\n")
            log.info("step %d: %s", p.step, {short_env(k): round(v, 3) for k, v in self.last_eval.items()})

        round_start = 0
        all_demos: list[Demonstration] = []
        eval_every = int(cfg.eval_every)
        stop_at = int(cfg.stop_at) if cfg.stop_at is not None else None
        finish_at = int(cfg.finish_at) if cfg.finish_at is not None else None
        for r, n_steps in enumerate(round_steps):
            if finish_at is not None and finish_at <= p.step <= round_start:  # before collecting round r's data
                self.summary["finished_early"] = {"step": p.step, "planned_steps": total, "rounds_done": r}
                log.info("finish_at=%d: the model as trained after %d rounds is saved and measured", finish_at, r)
                break
            round_end = round_start + n_steps
            all_demos = all_demos + (demos if r == 0 else self._collect_round(r, actor, prompt))
            if p.step >= round_end:  # finished before a resume
                round_start = round_end
                continue
            data = Sequences(all_demos, actor.scorer, pack=bool(cfg.pack))
            stream = BatchStream(data.lengths, int(cfg.batch_size), int(cfg.seed) * 100 + r)
            log.info("round %d: %d labelled states in %d sequences (%.0f tokens each on average)", r, data.labels,
                     len(data), float(data.lengths.mean()))
            postfix(r)
            t0, losses = time.perf_counter(), []
            while p.step < round_end:
                if finish_at is not None and p.step >= finish_at:
                    break
                if stop_at is not None and p.step >= stop_at:
                    checkpoint()
                    bar.close()
                    log.info("stopped at step %d (stop_at); rerun without stop_at to resume", p.step)
                    return {"stopped_at": p.step, **self.summary}
                idx = stream.batch(p.step - round_start)
                batch = data.batch(idx)
                c0 = time.process_time()
                loss, action_loss = distill_loss(model, batch, float(cfg.aux_lm_weight))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.grad_clip:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), float(cfg.grad_clip))
                opt.step()
                sched.step()
                p.train_cpu_seconds += time.process_time() - c0
                n_tok = int(batch["attention_mask"].sum())
                p.step += 1
                p.tokens += n_tok
                p.samples += int(sum(len(data.spans[i]) for i in idx))
                p.train_flops += 6.0 * n_dense * n_tok
                losses.append(float(action_loss))
                bar.update(1)
                if p.step % 10 == 0:
                    postfix(r, float(np.mean(losses[-50:])))
                if eval_every > 0 and p.step % eval_every == 0 and p.step != round_end:
                    evaluate_now(r)
                    postfix(r, float(np.mean(losses[-50:])))
                if p.step % int(cfg.checkpoint_every) == 0 or p.step == round_end:
                    checkpoint()
            self.summary.setdefault("rounds", {})[str(r)] = {
                "samples": data.labels, "sequences": len(data), "steps": p.step - round_start,  # < n_steps: finish_at
                "train_seconds": time.perf_counter() - t0,
                "first_loss": float(np.mean(losses[:10])) if losses else None,
                "final_loss": float(np.mean(losses[-10:])) if losses else None,
            }
            if int(cfg.eval_episodes_round) > 0:
                evaluate_now(r)
                self.summary["rounds"][str(r)]["eval_success"] = dict(self.last_eval)
                postfix(r, float(np.mean(losses[-50:])) if losses else None)
            checkpoint()
            round_start = round_end
        bar.close()
        tick()
        self.summary["training"] = {**p.__dict__, "hardware": hardware(), "threads": int(cfg.threads)}
        return self.finish(model, tokenizer, actor)

    def _trim_curve(self, step: int) -> None:
        """Drop learning-curve rows written after the checkpoint a resumed run starts from."""
        path = self.out / CURVE
        if path.exists():
            rows = [ln for ln in path.read_text().splitlines() if ln.strip() and json.loads(ln)["step"] <= step]
            path.write_text("".join(ln + "\n" for ln in rows))

    def finish(self, model: torch.nn.Module, tokenizer: Any, actor: CausalLMActor) -> dict[str, Any]:
        """Save out/model (safetensors + tokenizer + prompt settings), then measure it as `HFPolicy` runs it."""
        cfg = self.cfg
        model_dir = self.out / MODEL_DIR
        model.save_pretrained(model_dir, safe_serialization=True)
        tokenizer.save_pretrained(model_dir)
        meta = {
            "env": self.envs,
            "env_kwargs": _plain(cfg.env_kwargs) or {},
            "prompt": {"family": self.prompt_builder(None).family, "history": int(cfg.history),
                       "history_chunk": int(cfg.history_chunk), "max_prompt_tokens": int(cfg.max_prompt_tokens),
                       "add_bos": _adds_bos(actor.scorer), "options": self.prompt_options()},
            "scoring": "sum",
            "tokenizer": {k: v for k, v in self._merges().items() if v},
            "command": self.command,
            "why": str(cfg.why),
            "arch": _plain(cfg.arch) or {},
            "recipe": {k: _plain(cfg[k]) for k in ("episodes", "noisy_fraction", "noise", "dagger_rounds",
                                                    "dagger_episodes", "dagger_beta", "steps", "dagger_steps",
                                                    "batch_size", "lr", "min_lr_ratio", "warmup_steps", "pack",
                                                    "aux_lm_weight")},
            **self.summary,
        }
        init = self._init_path()
        ranges = distill_seed_ranges(int(cfg.seed), int(cfg.episodes), float(cfg.noisy_fraction),
                                     int(cfg.dagger_rounds), int(cfg.dagger_episodes))
        meta["train_seeds"] = {e: [list(r) for r in ranges] for e in self.envs}
        if init is not None:
            meta["init"] = init_lineage(init)
            init_meta = read_json_record(Path(init) / LONDI_META, "rebuild the initial model with londi-distill")
            meta["train_seeds"] = union(meta["train_seeds"], init_meta.get("train_seeds") or {})
        (model_dir / LONDI_META).write_text(json.dumps(meta, indent=2, default=float))
        if cfg.eval_episodes > 0:
            meta = evaluate_model_dir(model_dir, self.eval_envs, int(cfg.eval_episodes), int(cfg.eval_seed),
                                      progress=bool(cfg.progress), env_kwargs=cfg.env_kwargs)
            if cfg.get("eval_temperature") is not None:
                meta = evaluate_model_dir(model_dir, self.eval_envs, int(cfg.eval_episodes), int(cfg.eval_seed),
                                          progress=bool(cfg.progress), env_kwargs=cfg.env_kwargs,
                                          temperature=float(cfg.eval_temperature))
        (self.out / "summary.json").write_text(json.dumps(meta, indent=2, default=float))
        return meta


def init_lineage(init: str | Path) -> dict[str, Any]:
    """What a fine-tuning run started from: the initial model's command, training and measured success.

    Read from its londi_distill.json (nested when that model was itself fine-tuned), so the model card and
    the learning curve count the whole training, not only the last stage.
    """
    init = Path(init)
    path = init / LONDI_META
    if not path.exists():
        return {"from": str(init)}
    m = json.loads(path.read_text())
    return {"from": str(init), **{k: m[k] for k in ("command", "training", "eval", "init") if k in m}}


def _stages(meta: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """A model's metadata, then its initial model's, and so on down the `init` chain (latest stage first)."""
    chain, node = [], meta
    while isinstance(node, Mapping):
        chain.append(node)
        node = node.get("init")
    return chain


def lineage_training(meta: Mapping[str, Any]) -> dict[str, float]:
    """Training compute of every earlier stage of a model (its `init` chain), summed."""
    keys = ("step", "train_flops", "cpu_seconds", "wall_seconds")
    earlier = [stage.get("training") or {} for stage in _stages(meta)[1:]]
    return {k: sum(float(t.get(k, 0.0)) for t in earlier) for k in keys}


def rebuild_commands(meta: Mapping[str, Any]) -> list[str]:
    """The commands that rebuild a model from nothing: each earlier stage's, then its own.

    A stage's `init_from` is pointed at the previous stage's output (`out=.../model`), since the path it
    was run with may since hold another model (e.g. a shipped asset that this model replaced).
    """
    chain = [str(stage["command"]) for stage in reversed(_stages(meta)) if stage.get("command")]
    for i in range(1, len(chain)):
        prev_out = re.search(r"(?:^|\s)out=(\S+)", chain[i - 1])
        if prev_out:
            chain[i] = re.sub(r"(^|\s)init_from=\S+", rf"\1init_from={prev_out.group(1)}/{MODEL_DIR}", chain[i])
    return chain or ["?"]


def evaluate_model_dir(model_dir: str | Path, env_id: str | Iterable[str], episodes: int = 100, seed: int = 424242,
                       progress: bool = False, env_kwargs: Any = None, temperature: float | None = None) -> dict[str, Any]:
    """Success per env and compute per call of a saved model run by `HFPolicy` (1 torch thread).

    Greedy by default (key "eval" of the directory's londi_distill.json); with `temperature`, actions sampled
    from softmax(scores / temperature), seeded by `seed`, on the same episodes (key "eval_sampled", one entry
    per temperature), since a greedy policy that loops is a different agent from the same model sampled.
    Writes the result into londi_distill.json and regenerates MODEL_CARD.md. Returns the updated metadata.
    """
    from londi import build

    if temperature is not None and temperature <= 0:
        raise ValueError(f"eval_temperature must be > 0 (got {temperature}); leave it unset for greedy decoding")
    model_dir = Path(model_dir)
    meta_path = model_dir / LONDI_META
    meta = read_json_record(meta_path, "rebuild the model with londi-distill")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        decoding = (["quick.greedy=true"] if temperature is None
                    else ["quick.greedy=false", f"quick.temperature={float(temperature)}"])
        cfg = build.config(["model@quick=hf", "device=cpu", "quick.device=cpu", "quick.dtype=float32",
                            f"quick.seed={int(seed)}", *decoding])
        cfg.quick.path = str(model_dir)  # set, not typed as an override: any path is fine
        policy = build.model(cfg, "quick")
        levels = {}
        for env in env_ids(list(env_id) if not isinstance(env_id, str) else env_id):
            stats: CollectionStats = evaluate(_make_env_factory(env, env_kwargs), lambda s: policy.act_one(s).index,
                                              episodes, seed=seed, history=policy.history_needed, progress=progress)
            levels[env] = {"success_rate": stats.success_rate, "mean_return": stats.as_dict()["mean_return"],
                           "episodes": stats.episodes}
    finally:
        torch.set_num_threads(threads)
    measured = {"episodes": episodes, "seed": seed, "env_kwargs": _plain(env_kwargs) or {}, "levels": levels}
    if temperature is not None:  # decoding changes success, not the compute per call: that stays greedy's
        meta.setdefault("eval_sampled", {})[f"{float(temperature):g}"] = {
            **measured, "temperature": float(temperature),
            "policy": f"HFPolicy(score=sum, sampled at temperature {float(temperature):g}, seed {seed}), 1 torch thread"}
    else:
        usage = policy.meter.total()
        calls = max(usage.calls, 1)
        meta["eval"] = {
            **measured, "policy": "HFPolicy(score=sum, greedy), 1 torch thread",
            "calls": usage.calls, "flops_per_call": usage.flops / calls,
            "prompt_tokens_per_call": usage.prompt_tokens / calls,
            "candidate_tokens_per_call": usage.completion_tokens / calls,
            "cpu_seconds_per_call": usage.device_seconds / calls, "parameters": policy.num_parameters,
            "hardware": hardware(),
        }
    meta_path.write_text(json.dumps(meta, indent=2, default=float))
    write_model_card(model_dir, meta)
    return meta


def write_model_card(model_dir: str | Path, meta: Mapping[str, Any]) -> Path:
    """MODEL_CARD.md from the run's metadata: command, data, training, measured success and compute."""
    ev = meta.get("eval", {})
    arch = meta.get("arch", {})
    rounds = meta.get("rounds", {})
    coll = meta.get("collection", {})
    prompt = meta.get("prompt", {})
    train = meta.get("training", {})
    envs = meta.get("env", [])
    envs = [envs] if isinstance(envs, str) else list(envs)
    lines = [
        f"# {Path(model_dir).name}: a behaviour-cloned policy for {', '.join(short_env(e) for e in envs) or '?'}"
        + "".join(f" {k}={v}" for k, v in meta.get("env_kwargs", {}).items()),
        "",
        "Made by `londi-distill` (londi/lm/distill.py); every number below was measured by that command.",
        "",
        "## Rebuild",
        "```",
        *rebuild_commands(meta),
        "```",
        ("Deterministic given the seed on one CPU thread; the last output directory's `model/` is this directory. "
         "Rerunning a command after an interruption resumes from its last checkpoint."
         + (" The commands are stages: each fine-tunes the model the one before made (`init_from`)."
            if meta.get("init") else "")),
        "",
        "## Model",
        f"- transformers causal LM, {ev.get('parameters', meta.get('parameters', '?'))} parameters; "
        f"config: `{json.dumps(arch)}`",
        "- word-level tokenizer built from the env's text (londi/lm/tokenization.py"
        + "".join(f", {k}" for k in meta.get("tokenizer", {})) + "), "
        f"{'a BOS token before' if prompt.get('add_bos') else 'no special tokens around'} the prompt",
        f"- prompt: the {prompt.get('family')} builder (londi/lm/prompts.py) with history={prompt.get('history')} "
        f"past steps, history_chunk={prompt.get('history_chunk', 1)} (so {prompt.get('history')} to "
        f"{(prompt.get('history') or 0) + prompt.get('history_chunk', 1) - 1} past steps are shown), at most "
        f"{prompt.get('max_prompt_tokens')} tokens"
        + "".join(f", {k}={v}" for k, v in (prompt.get("options") or {}).items())
        + "; action = the admissible action with the highest sum of token "
        "log-probs after the prompt (`HFPolicy`, score=sum). The settings are in londi_distill.json, which "
        "HFPolicy reads.",
    ]
    if meta.get("status"):
        lines += ["", "## Status", meta["status"]]
    if meta.get("why"):
        lines += ["", "## Why this size", meta["why"]]
    lines += ["", "## Data and training"]
    for k, v in coll.items():
        lines.append(f"- {k}: {v.get('episodes')} episodes, {v.get('steps')} labelled states"
                     + (f", beta={v['beta']:.2f}" if "beta" in v else "")
                     + f" (executed-trajectory success {v.get('success_rate', 0):.2f})")
    for r, v in rounds.items():
        es = v.get("eval_success")
        es_txt = ""
        if isinstance(es, Mapping):
            es_txt = ", quick check " + ", ".join(f"{short_env(k)} {x:.2f}" for k, x in es.items())
        loss_txt = (f", loss {v['first_loss']:.3f} -> {v['final_loss']:.3f}, {v.get('train_seconds', 0):.0f} s"
                    if v.get("first_loss") is not None and v.get("final_loss") is not None
                    else " (loss and time not recorded: the run was resumed at this round's last checkpoint)")
        lines.append(f"- round {r}: {v.get('steps')} optimizer steps on {v.get('samples')} states "
                     f"({v.get('sequences', '?')} sequences){loss_txt}{es_txt}")
    early = meta.get("finished_early")
    if early:
        lines.append(f"- ended early by `finish_at` at step {early['step']} of the recipe's {early['planned_steps']} "
                     f"(after {early['rounds_done']} rounds; the learning-rate schedule is the full recipe's)")
    if train:
        lines.append(f"- in all: {train.get('step')} optimizer steps, {train.get('samples')} labelled states seen, "
                     f"{train.get('train_flops', 0):.3g} training FLOPs (6 x dense params x tokens), "
                     f"{train.get('wall_seconds', 0) / 3600:.2f} h wall, {train.get('cpu_seconds', 0) / 3600:.2f} CPU-hours "
                     f"on {train.get('hardware', '?')} at {train.get('threads', 1)} torch thread(s); no GPU")
        before = lineage_training(meta)
        if before["step"] > 0:
            lines.append(f"- with the earlier stages (`init_from`: {before['step']:.0f} steps, {before['train_flops']:.3g} "
                         f"FLOPs, {before['cpu_seconds'] / 3600:.2f} CPU-hours): "
                         f"{before['step'] + float(train.get('step', 0)):.0f} optimizer steps, "
                         f"{before['train_flops'] + float(train.get('train_flops', 0)):.3g} training FLOPs, "
                         f"{(before['cpu_seconds'] + float(train.get('cpu_seconds', 0))) / 3600:.2f} CPU-hours")
    if ev:
        levels = ev.get("levels", {})
        sampled = [v for v in (meta.get("eval_sampled") or {}).values()
                   if v.get("episodes") == ev["episodes"] and v.get("seed") == ev["seed"]]  # same episodes only
        sampled.sort(key=lambda v: v["temperature"])

        def row(env: str, v: Mapping[str, Any]) -> str:
            cells = [f"{v['success_rate']:.2f}"]
            for smp in sampled:
                x = smp["levels"].get(env)
                cells.append(f"{x['success_rate']:.2f}" if x else "-")
            return f"| {short_env(env)} | " + " | ".join(cells) + " |"

        lines += [
            "",
            "## Measured",
            f"Success over {ev['episodes']} episodes per level (reset seeds {ev['seed']}..{ev['seed'] + ev['episodes'] - 1}, "
            f"disjoint from the training seeds), {ev.get('policy', '')}"
            + ("; sampled: the same episodes, actions drawn from softmax(scores / T) "
               "(`HFPolicy` greedy=false, `londi-distill evaluate_only=... eval_temperature=T`)" if sampled else "") + ":",
            "",
            "| level | " + " | ".join(["success (greedy)"] + [f"sampled, T={v['temperature']:g}" for v in sampled]) + " |",
            "|---|" + "---|" * (1 + len(sampled)),
            *[row(k, v) for k, v in levels.items()],
            "",
            f"Per call (one state): {ev['flops_per_call']:.3g} FLOPs (HFPolicy's formula), "
            f"{ev['prompt_tokens_per_call']:.1f} prompt + {ev['candidate_tokens_per_call']:.1f} candidate tokens, "
            f"{1000 * ev['cpu_seconds_per_call']:.2f} CPU-ms at 1 torch thread on {ev.get('hardware', '?')}; "
            "no GPU was used (GPU seconds: not measured).",
        ]
    for title, text in (meta.get("sections") or {}).items():  # hand-written sections (e.g. where it is the default)
        lines += ["", f"## {title}", str(text)]
    path = Path(model_dir) / "MODEL_CARD.md"
    path.write_text("\n".join(lines) + "\n")
    return path


ENV_KEYS = frozenset({"envs", "eval_envs", "env_kwargs"})


def override_keys(overrides: Iterable[str]) -> set[str]:
    """The top-level config keys that command-line overrides set ("+env_kwargs.task=x" -> "env_kwargs")."""
    return {override_key(o).split(".", 1)[0] for o in overrides}


def evaluate_only_envs(cfg: DictConfig, model_dir: Path, given: Iterable[str] = ()) -> tuple[list[str], Any, bool]:
    """(env ids, env_kwargs, whether they are the model's own) that `evaluate_only` measures a saved model on.

    The model's own envs unless `envs` or `eval_envs` is among the keys `given` on the command line, and its own
    env_kwargs unless `env_kwargs` is: the config's values are otherwise the `distill_model` preset's, another
    model's, and measuring on them would rewrite this model's card with them. Its own: the envs its card was
    measured on, else those it was trained on, with their env_kwargs (londi_distill.json); a directory without
    that file takes the config's.
    """
    given = set(given)
    meta = read_json_record(model_dir / LONDI_META, "rebuild the model with londi-distill")
    measured = meta.get("eval") or {}
    if measured.get("levels"):
        own, own_kwargs = list(measured["levels"]), measured.get("env_kwargs", meta.get("env_kwargs"))
    else:
        own, own_kwargs = (env_ids(meta["env"]) if meta.get("env") else []), meta.get("env_kwargs")
    kwargs = cfg.env_kwargs if "env_kwargs" in given or not meta else (own_kwargs or {})
    if "eval_envs" in given and cfg.get("eval_envs"):
        return env_ids(cfg.eval_envs), kwargs, False
    if "envs" in given:
        return env_ids(cfg.envs), kwargs, False
    if own:
        return own, kwargs, True
    return (env_ids(cfg.eval_envs) if cfg.get("eval_envs") else env_ids(cfg.envs)), kwargs, False


def run_config(cfg: DictConfig, command: str = "", given: Iterable[str] = ()) -> dict[str, Any]:
    """Distil (or, with `evaluate_only`, measure) as the config says; the Python entry of `londi-distill`.

    `given`: the top-level keys set on the command line (`londi-distill` passes them; `override_keys`). With
    `evaluate_only`, the model is measured on its own envs and env_kwargs unless they are given
    (`evaluate_only_envs`).
    """
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if cfg.evaluate_only:
        path = Path(str(cfg.evaluate_only)).expanduser()
        if not path.is_dir():
            raise FileNotFoundError(f"evaluate_only={path} is not a model directory")
        envs, env_kwargs, own = evaluate_only_envs(cfg, path, given)
        if own:
            print(f"{path}: measuring on its own envs ({LONDI_META}): {', '.join(envs)}"
                  + "".join(f" {k}={v}" for k, v in dict(env_kwargs).items()) + "; eval_envs=[...] chooses others")
        temperature = cfg.get("eval_temperature")
        meta = evaluate_model_dir(path, envs, int(cfg.eval_episodes), int(cfg.eval_seed),
                                  progress=bool(cfg.progress), env_kwargs=env_kwargs, temperature=temperature)
        measured = meta["eval"] if temperature is None else meta["eval_sampled"][f"{float(temperature):g}"]
        how = "greedy" if temperature is None else f"sampled at T={float(temperature):g}"
        for env, v in measured["levels"].items():
            print(f"{path}: success {v['success_rate']:.2f} ({how}) over {v['episodes']} episodes of {env}")
        if "eval" in meta:
            print(f"{path}: {meta['eval']['flops_per_call']:.3g} FLOPs and "
                  f"{1000 * meta['eval']['cpu_seconds_per_call']:.2f} CPU-ms per call")
        return meta
    meta = Distiller(cfg, command=command).run()
    for env, v in meta.get("eval", {}).get("levels", {}).items():
        print(f"{cfg.out}/{MODEL_DIR}: {meta['parameters']} parameters, success {v['success_rate']:.2f} "
              f"over {v['episodes']} episodes of {env}")
    return meta


def command_line() -> str:
    """The command as typed, for the model card's rebuild line."""
    return " ".join(["londi-distill", *sys.argv[1:]])


def _hydra_main() -> Callable[[], Any]:
    import hydra

    import londi.config  # noqa: F401 - registers the schemas
    from londi.paths import CONFIG_DIR

    @hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="distill")
    def app(cfg: DictConfig) -> None:
        from hydra.core.hydra_config import HydraConfig

        run_config(cfg, command=command_line(), given=override_keys(HydraConfig.get().overrides.task))

    return app


def cli() -> None:
    """Console script `londi-distill` (a Hydra app: --help, --cfg job, overrides)."""
    _hydra_main()()


if __name__ == "__main__":
    cli()
