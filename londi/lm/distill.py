"""`londi-distill`: behaviour-clone an env's expert into a small transformers causal LM.

There are no pretrained weights on a laptop or in CI, so the project makes its own QUICK and DEEPTHINK
models the way SwiftSage made its fast model: expert (and noise-injected expert) trajectories, then DAgger
rounds on the learner's own states, all labelled by `env.unwrapped.expert_action()`. The model is a
transformers causal LM (built from a config, or a checkpoint to fine-tune) trained on prompt -> expert
action text with the loss on the action tokens only; so the hf backend's action scoring (sum of the
candidate's token log-probs after the prompt) is exactly the trained policy, and the output directory
loads like any hub model (`AutoModelForCausalLM.from_pretrained(out/"model")`, safetensors + tokenizer).

    londi-distill env=BabyAI-Text-GoToLocal-v0 model=quick episodes=2000 out=outputs/distill/quick
    londi-distill model=deepthink out=DIR dagger_rounds=3 seed=1      # any key of configs/distill.yaml
    londi-distill model=path/to/checkpoint out=DIR                     # fine-tune an existing model
    londi-distill evaluate_only=londi/assets/models/babyai_quick eval_episodes=100   # re-measure a saved model

`model` names a preset in configs/distill_model/ (architecture + training recipe, merged under the command
line) or is a path to a saved model. Overrides are Hydra-style key=value (OmegaConf dotlist). Rerunning the
same command resumes from out/checkpoint.pt; the data of each round is kept in out/data/. Deterministic
given `seed` (one CPU thread, seeded shuffles, no dropout).
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from londi.lm.demonstrations import CollectionStats, Demonstration, collect, evaluate
from londi.lm.prompts import build_prompt
from londi.lm.scoring import ActionScorer
from londi.lm.state import TextState
from londi.lm.tokenization import build_word_tokenizer

log = logging.getLogger(__name__)

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"
CHECKPOINT = "checkpoint.pt"
MODEL_DIR = "model"
LONDI_META = "londi_distill.json"  # saved beside the model: the prompt settings it was trained with


# ----------------------------------------------------------------------------------------------- config
def _kwargs_tag(env_kwargs: Any) -> str:
    """"-task=boil" style suffix for default output names, so two tasks of one env id do not collide."""
    return "".join(f"-{k}={v}" for k, v in sorted((env_kwargs or {}).items()))


def load_config(argv: Sequence[str] = (), config_dir: Path = CONFIG_DIR) -> DictConfig:
    """configs/distill.yaml, then the `model` preset (if `model` names one), then the key=value overrides."""
    base_path = config_dir / "distill.yaml"
    if not base_path.exists():
        raise FileNotFoundError(f"{base_path} is missing: londi-distill needs its primary config there")
    base = OmegaConf.load(base_path)
    cli = OmegaConf.from_dotlist(list(argv))
    unknown = [k for k in cli if k not in base]
    if unknown:
        raise KeyError(f"unknown londi-distill key(s) {unknown}; valid keys: {sorted(base)} (see {base_path})")
    name = str(cli.get("model", base.model))
    preset_path = config_dir / "distill_model" / f"{name}.yaml"
    if preset_path.exists():
        preset = OmegaConf.load(preset_path)
        bad = [k for k in preset if k not in base]
        if bad:
            raise KeyError(f"{preset_path}: unknown key(s) {bad}")
        cfg = OmegaConf.merge(base, preset, cli)
    elif Path(name).expanduser().is_dir():
        cfg = OmegaConf.merge(base, cli)
    else:
        presets = sorted(p.stem for p in (config_dir / "distill_model").glob("*.yaml"))
        raise FileNotFoundError(f"model={name!r} is neither a preset {presets} nor a saved model directory")
    if cfg.out is None:
        cfg.out = f"outputs/distill/{Path(name).name}-{cfg.env}{_kwargs_tag(cfg.env_kwargs)}-s{cfg.seed}"
    return cfg


# ------------------------------------------------------------------------------------------ reproducibility
def seed_everything(seed: int, threads: int = 1) -> None:
    """Seed python, numpy and torch, and pin torch to `threads` CPU threads (bitwise-reproducible runs)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True, warn_only=True)


# ---------------------------------------------------------------------------------------------- the model
def build_model(cfg: DictConfig, tokenizer: Any) -> torch.nn.Module:
    """A causal LM from `cfg.arch` (a transformers config: model_type + sizes); vocab from the tokenizer."""
    from transformers import AutoConfig, AutoModelForCausalLM

    arch = OmegaConf.to_container(cfg.arch, resolve=True)
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
class Encoded:
    """Demonstrations as token ids, tokenized by the scorer itself (BOS + prompt, then the expert action),
    so training sees exactly the sequences `ActionScorer` scores at run time."""

    def __init__(self, demos: Sequence[Demonstration], scorer: ActionScorer):
        self.prompts: list[list[int]] = [scorer.prompt_ids(d.prompt)[0] for d in demos]
        self.actions: list[list[int]] = [scorer.candidate_ids(d.action) for d in demos]
        self.pad_id = scorer.pad_id

    def __len__(self) -> int:
        return len(self.prompts)

    def batch(self, indices: Sequence[int]) -> dict[str, torch.Tensor]:
        """Right-padded input_ids, attention_mask, and labels that are -100 everywhere but the action."""
        seqs = [self.prompts[i] + self.actions[i] for i in indices]
        width = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), width), self.pad_id, dtype=torch.long)
        labels = torch.full((len(seqs), width), -100, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for row, (i, s) in enumerate(zip(indices, seqs, strict=True)):
            ids[row, : len(s)] = torch.tensor(s)
            mask[row, : len(s)] = 1
            start = len(self.prompts[i])
            labels[row, start : len(s)] = torch.tensor(self.actions[i])
        return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def batch_indices(n: int, batch_size: int, seed: int, step: int) -> list[int]:
    """The `step`-th batch of an endless stream of seeded per-epoch permutations of range(n).

    A pure function of its arguments, so a resumed run draws exactly the batches the first run would have.
    """
    out: list[int] = []
    pos = step * batch_size
    while len(out) < batch_size:
        epoch, offset = divmod(pos, n)
        perm = np.random.default_rng([seed, epoch]).permutation(n)
        take = perm[offset : offset + batch_size - len(out)]
        out.extend(int(i) for i in take)
        pos += len(take)
    return out


def lr_lambda(total_steps: int, warmup: int, min_ratio: float):
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

    It scores with the hf backend's own `ActionScorer` (sum reduction), so DAgger and the evaluation
    here measure exactly the policy that `HFPolicy` will run.
    """

    def __init__(self, model: torch.nn.Module, tokenizer: Any, history: int = 0, max_prompt_tokens: int = 512):
        self.scorer = ActionScorer(model, tokenizer, reduction="sum", max_prompt_tokens=max_prompt_tokens)
        self.history = history

    def scores(self, state: TextState) -> np.ndarray:
        model = self.scorer.model
        was_training = model.training
        model.eval()
        try:
            prompt = build_prompt(state, history=self.history)
            return self.scorer.score([prompt], [state.admissible_actions]).scores[0]
        finally:
            model.train(was_training)

    def __call__(self, state: TextState) -> int:
        return int(np.argmax(self.scores(state)))


# ------------------------------------------------------------------------------------------- the trainer
def _plain(env_kwargs: Any) -> dict[str, Any]:
    return dict(OmegaConf.to_container(env_kwargs, resolve=True) if isinstance(env_kwargs, DictConfig)
                else env_kwargs or {})


def _make_env_factory(env_id: str, env_kwargs: Any = None):
    kwargs = _plain(env_kwargs)

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
    return len(scorer.prompt_ids(probe)[0]) > len(scorer.tokenizer(probe, add_special_tokens=False)["input_ids"])


class Distiller:
    """One distillation run in `cfg.out`: collect -> train -> (DAgger collect -> train) x rounds -> save.

    Every round's data is written to out/data/round{r}.jsonl before training on it, and the model,
    optimizer and schedule to out/checkpoint.pt every `checkpoint_every` steps, so `run()` on the same
    config continues where a previous run stopped and ends with the same weights.
    """

    def __init__(self, cfg: DictConfig, command: str = ""):
        self.cfg = cfg
        self.command = command
        self.out = Path(cfg.out)
        self.make_env = _make_env_factory(cfg.env, cfg.env_kwargs)
        self.summary: dict[str, Any] = {}

    # -- pieces -------------------------------------------------------------------------------------------
    def _round_steps(self) -> list[int]:
        return [int(self.cfg.steps)] + [int(self.cfg.dagger_steps)] * int(self.cfg.dagger_rounds)

    def _collect_round(self, r: int, actor: CausalLMActor | None) -> list[Demonstration]:
        path = self.out / "data" / f"round{r}.jsonl"
        if path.exists():
            return _load_demos(path)
        cfg, seed = self.cfg, int(self.cfg.seed) * 1_000_003
        t0 = time.perf_counter()
        if r == 0:
            n_noisy = int(round(cfg.episodes * cfg.noisy_fraction))
            clean, s1 = collect(self.make_env, cfg.episodes - n_noisy, seed=seed, history=cfg.history,
                                source="expert", progress=cfg.progress)
            noisy, s2 = collect(self.make_env, n_noisy, seed=seed + 500_000, noise=cfg.noise, history=cfg.history,
                                source="noisy", progress=cfg.progress)
            demos, stats = clean + noisy, {"expert": s1.as_dict(), "noisy": s2.as_dict()}
        else:
            assert actor is not None
            beta = float(cfg.dagger_beta) ** r
            demos, s = collect(self.make_env, cfg.dagger_episodes, seed=seed + 1_000_000 * (r + 1), learner=actor,
                               beta=beta, history=cfg.history, source=f"dagger{r}", progress=cfg.progress)
            stats = {f"dagger{r}": {**s.as_dict(), "beta": beta}}
        path.parent.mkdir(parents=True, exist_ok=True)
        _save_demos(path, demos)
        self.summary.setdefault("collection", {}).update(stats)
        log.info("round %d: %d labelled states in %.1fs %s", r, len(demos), time.perf_counter() - t0, stats)
        return demos

    def _tokenizer(self, demos: Sequence[Demonstration]) -> Any:
        from transformers import AutoTokenizer

        tok_dir = self.out / "tokenizer"
        if tok_dir.exists():
            return AutoTokenizer.from_pretrained(tok_dir)
        if self._init_path() is not None:
            tok = AutoTokenizer.from_pretrained(self._init_path())
        else:
            tok = build_word_tokenizer(d.prompt for d in demos)
        tok.save_pretrained(tok_dir)
        return AutoTokenizer.from_pretrained(tok_dir)

    def _init_path(self) -> Path | None:
        p = Path(str(self.cfg.model)).expanduser()
        return p if p.is_dir() else None

    def _model(self, tokenizer: Any) -> torch.nn.Module:
        from transformers import AutoModelForCausalLM

        init = self._init_path()
        if init is not None:
            return AutoModelForCausalLM.from_pretrained(init, dtype=torch.float32)
        return build_model(self.cfg, tokenizer)

    def evaluate(self, actor: CausalLMActor, episodes: int) -> CollectionStats:
        return evaluate(self.make_env, actor, episodes, seed=int(self.cfg.eval_seed), history=int(self.cfg.history),
                        progress=bool(self.cfg.progress))

    # -- the run ------------------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        cfg = self.cfg
        seed_everything(int(cfg.seed), int(cfg.threads))
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
        round_steps = self._round_steps()
        total = sum(round_steps)

        demos = self._collect_round(0, None)
        tokenizer = self._tokenizer(demos)
        model = self._model(tokenizer)
        model.train()
        opt = torch.optim.AdamW(model.parameters(), lr=float(cfg.lr), weight_decay=float(cfg.weight_decay),
                                betas=(0.9, 0.98))
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(total, int(cfg.warmup_steps), float(cfg.min_lr_ratio)))
        step = 0
        ckpt_path = self.out / CHECKPOINT
        if ckpt_path.exists():
            ckpt = torch.load(ckpt_path, weights_only=False)
            model.load_state_dict(ckpt["model"])
            opt.load_state_dict(ckpt["optimizer"])
            sched.load_state_dict(ckpt["scheduler"])
            step = int(ckpt["step"])
            self.summary = ckpt.get("summary", {})
            log.info("resumed from %s at step %d/%d", ckpt_path, step, total)
        actor = CausalLMActor(model, tokenizer, int(cfg.history), int(cfg.max_prompt_tokens))
        self.summary["parameters"] = num_parameters(model)

        def checkpoint() -> None:
            tmp = ckpt_path.with_suffix(".tmp")
            torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                        "step": step, "summary": self.summary}, tmp)
            tmp.replace(ckpt_path)

        from tqdm.auto import tqdm

        bar = tqdm(total=total, initial=step, desc="distill", unit="step", disable=not cfg.progress)
        round_start = 0
        all_demos: list[Demonstration] = []
        for r, n_steps in enumerate(round_steps):
            round_end = round_start + n_steps
            all_demos = all_demos + (demos if r == 0 else self._collect_round(r, actor))
            if step >= round_end:  # finished before a resume
                round_start = round_end
                continue
            data = Encoded(all_demos, actor.scorer)
            t0, losses = time.perf_counter(), []
            stop_at = int(cfg.stop_at) if cfg.stop_at is not None else None
            while step < round_end:
                if stop_at is not None and step >= stop_at:
                    checkpoint()
                    bar.close()
                    log.info("stopped at step %d (stop_at); rerun without stop_at to resume", step)
                    return {"stopped_at": step, **self.summary}
                batch = data.batch(batch_indices(len(data), int(cfg.batch_size), int(cfg.seed) * 100 + r,
                                                 step - round_start))
                loss = model(**batch).loss
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.grad_clip:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), float(cfg.grad_clip))
                opt.step()
                sched.step()
                step += 1
                losses.append(float(loss.detach()))
                bar.update(1)
                if step % 20 == 0:
                    bar.set_postfix(round=r, loss=f"{np.mean(losses[-20:]):.3f}", lr=f"{sched.get_last_lr()[0]:.2e}")
                if step % int(cfg.checkpoint_every) == 0 or step == round_end:
                    checkpoint()
            self.summary.setdefault("rounds", {})[str(r)] = {
                "samples": len(data), "steps": n_steps, "train_seconds": time.perf_counter() - t0,
                "first_loss": float(np.mean(losses[:10])) if losses else None,
                "final_loss": float(np.mean(losses[-10:])) if losses else None,
            }
            if cfg.eval_each_round and cfg.eval_episodes_round > 0:
                s = self.evaluate(actor, int(cfg.eval_episodes_round))
                self.summary["rounds"][str(r)]["eval_success"] = s.success_rate
                log.info("round %d: success %.2f over %d episodes", r, s.success_rate, s.episodes)
            checkpoint()
            round_start = round_end
        bar.close()
        return self.finish(model, tokenizer, actor)

    def finish(self, model: torch.nn.Module, tokenizer: Any, actor: CausalLMActor) -> dict[str, Any]:
        """Save out/model (safetensors + tokenizer + prompt settings), then measure it as `HFPolicy` runs it."""
        cfg = self.cfg
        model_dir = self.out / MODEL_DIR
        model.save_pretrained(model_dir, safe_serialization=True)
        tokenizer.save_pretrained(model_dir)
        meta = {
            "env": cfg.env,
            "env_kwargs": _plain(cfg.env_kwargs),
            "prompt": {"family": "babyai_text" if "BabyAI" in cfg.env else None, "history": int(cfg.history),
                       "max_prompt_tokens": int(cfg.max_prompt_tokens), "add_bos": _adds_bos(actor.scorer)},
            "scoring": "sum",
            "command": self.command,
            "arch": OmegaConf.to_container(cfg.arch, resolve=True),
            **self.summary,
        }
        (model_dir / LONDI_META).write_text(json.dumps(meta, indent=2, default=float))
        if cfg.eval_episodes > 0:
            meta = evaluate_model_dir(model_dir, cfg.env, int(cfg.eval_episodes), int(cfg.eval_seed),
                                      progress=bool(cfg.progress), env_kwargs=cfg.env_kwargs)
        (self.out / "summary.json").write_text(json.dumps(meta, indent=2, default=float))
        return meta


def evaluate_model_dir(model_dir: str | Path, env_id: str, episodes: int = 100, seed: int = 424242,
                       progress: bool = False, env_kwargs: Any = None) -> dict[str, Any]:
    """Greedy success and compute of a saved model run by `HFPolicy` (the project's hf backend).

    Writes the result into the directory's londi_distill.json (key "eval") and regenerates MODEL_CARD.md.
    Returns the updated metadata.
    """
    from londi.lm.hf import HFPolicy

    model_dir = Path(model_dir)
    meta_path = model_dir / LONDI_META
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    policy = HFPolicy(name="distilled", path=str(model_dir))
    stats = evaluate(_make_env_factory(env_id, env_kwargs), lambda s: policy.act_one(s).index, episodes, seed=seed,
                     history=int(policy.history or 0), progress=progress)
    usage = policy.meter.total()
    calls = max(usage.calls, 1)
    meta["eval"] = {
        "env": env_id, "env_kwargs": _plain(env_kwargs), "episodes": stats.episodes, "seed": seed, "policy": "HFPolicy(score=sum, greedy)",
        "success_rate": stats.success_rate, "mean_return": stats.as_dict()["mean_return"],
        "calls": usage.calls, "flops_per_step": usage.flops / calls, "prompt_tokens_per_step": usage.prompt_tokens / calls,
        "candidate_tokens_per_step": usage.completion_tokens / calls,
        "cpu_seconds_per_step": usage.device_seconds / calls, "parameters": policy.num_parameters,
    }
    meta_path.write_text(json.dumps(meta, indent=2, default=float))
    write_model_card(model_dir, meta)
    return meta


def write_model_card(model_dir: str | Path, meta: dict[str, Any]) -> Path:
    """MODEL_CARD.md from the run's metadata: command, data, parameters, measured success and FLOPs."""
    ev = meta.get("eval", {})
    arch = meta.get("arch", {})
    rounds = meta.get("rounds", {})
    coll = meta.get("collection", {})
    lines = [
        f"# {Path(model_dir).name}: a behaviour-cloned policy for {meta.get('env', '?')}"
        + "".join(f" {k}={v}" for k, v in meta.get("env_kwargs", {}).items()),
        "",
        "Made by `londi-distill` (londi/lm/distill.py); every number below was measured by that command.",
        "",
        "## Rebuild",
        "```",
        meta.get("command", "?"),
        "```",
        "Deterministic given the seed on one CPU thread; the output directory's `model/` is this directory.",
        "",
        "## Model",
        f"- transformers causal LM, {ev.get('parameters', meta.get('parameters', '?'))} parameters; "
        f"config: `{json.dumps(arch)}`",
        "- word-level tokenizer built from the env's text (londi/lm/tokenization.py), "
        f"{'a BOS token before' if meta.get('prompt', {}).get('add_bos') else 'no special tokens around'} the prompt",
        f"- prompt: {meta.get('prompt', {}).get('family')} builder (londi/lm/prompts.py) with "
        f"history={meta.get('prompt', {}).get('history')} past steps; action = the admissible action with the highest "
        "sum of token log-probs after the prompt (`HFPolicy`, score=sum); the settings are in londi_distill.json, "
        "which HFPolicy reads.",
        "",
        "## Data and training",
    ]
    for k, v in coll.items():
        lines.append(f"- {k}: {v.get('episodes')} episodes, {v.get('steps')} labelled states"
                     + (f", beta={v['beta']:.2f}" if "beta" in v else "")
                     + f" (executed-trajectory success {v.get('success_rate', 0):.2f})")
    for r, v in rounds.items():
        es = v.get("eval_success")
        lines.append(f"- round {r}: {v.get('steps')} steps on {v.get('samples')} states, "
                     f"loss {v.get('first_loss') or float('nan'):.3f} -> {v.get('final_loss') or float('nan'):.3f}, "
                     f"{v.get('train_seconds', 0):.0f} s" + (f", success {es:.2f} (quick check)" if es is not None else ""))
    if ev:
        lines += [
            "",
            "## Measured",
            f"- success {ev['success_rate']:.2f} over {ev['episodes']} episodes of {ev['env']} "
            f"(reset seeds {ev['seed']}..{ev['seed'] + ev['episodes'] - 1}, {ev.get('policy', '')})",
            f"- per step: {ev['flops_per_step']:.3g} FLOPs (HFPolicy's formula), {ev['prompt_tokens_per_step']:.1f} "
            f"prompt + {ev['candidate_tokens_per_step']:.1f} candidate tokens, {1000 * ev['cpu_seconds_per_step']:.2f} "
            "CPU-ms (shared machine)",
        ]
    path = Path(model_dir) / "MODEL_CARD.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Entry point of `londi-distill KEY=VALUE ...` (see the module docstring)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    args = list(sys.argv[1:] if argv is None else argv)
    cfg = load_config(args)
    if cfg.evaluate_only:
        meta = evaluate_model_dir(cfg.evaluate_only, cfg.env, int(cfg.eval_episodes), int(cfg.eval_seed),
                                  progress=bool(cfg.progress), env_kwargs=cfg.env_kwargs)
        ev = meta["eval"]
        print(f"{cfg.evaluate_only}: success {ev['success_rate']:.2f} over {ev['episodes']} episodes of {cfg.env}, "
              f"{ev['flops_per_step']:.3g} FLOPs/step")
        return meta
    meta = Distiller(cfg, command=" ".join(["londi-distill", *args])).run()
    ev = meta.get("eval")
    if ev:
        print(f"{cfg.out}/{MODEL_DIR}: {meta['parameters']} parameters, success {ev['success_rate']:.2f} "
              f"over {ev['episodes']} episodes of {cfg.env}")
    return meta


def cli() -> None:
    """Console script `londi-distill`: exit status 0 on success (main's summary dict is not an exit code)."""
    main()


if __name__ == "__main__":
    cli()
