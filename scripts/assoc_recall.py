"""Can a small transformers LM, trained from scratch on one CPU core, learn to look a key up in its context?

Every BabyAI-Text move needs that look-up: find, among ~8 descriptions, the one whose object the mission names,
and read its place. This script isolates it as associative recall: a sequence of `pairs` (key, value) tokens,
then a query key; the target is the query's value (chance among the values shown: 1/pairs). The model is the
Llama (or GPT-2) that `londi-distill` builds, at the given size, trained with AdamW on fresh random sequences;
held-out accuracy is printed every `--every` CPU seconds. Measured here (results/distill.md): at DEEPTHINK's
sizes the accuracy stays at chance for thousands of steps, which is why the DEEPTHINK prompt puts the
mission's objects on a line of their own (`prompt_options.named_objects`).

    .venv/bin/python scripts/assoc_recall.py --hidden 96 --layers 4 --heads 4 --minutes 4
    .venv/bin/python scripts/assoc_recall.py --layout named --minutes 4    # the value right before the query
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from transformers import AutoConfig, AutoModelForCausalLM

KEYS, VALUES = 18, 48  # BabyAI: 6 colours x 3 kinds of object; 48 places in view
PAD, SEP, QUERY, FIRST = 0, 1, 2, 4  # special ids; keys and values follow


def batch(rng: np.random.Generator, size: int, pairs: int, layout: str) -> tuple[torch.Tensor, torch.Tensor]:
    """`size` sequences "k1 v1 , ... , kP vP , ? kq" and their targets vq.

    layout "named" also repeats the queried pair right before the query (what the Named line does), so the
    answer sits at a fixed place and no look-up is needed.
    """
    ids, target = [], []
    for _ in range(size):
        keys = rng.choice(KEYS, pairs, replace=False)
        vals = rng.integers(0, VALUES, pairs)
        q = int(rng.integers(pairs))
        seq = [t for k, v in zip(keys, vals, strict=True) for t in (FIRST + k, FIRST + KEYS + v, SEP)]
        if layout == "named":
            seq += [FIRST + keys[q], FIRST + KEYS + vals[q], SEP]
        ids.append(seq + [QUERY, FIRST + keys[q]])
        target.append(FIRST + KEYS + vals[q])
    return torch.tensor(ids), torch.tensor(target)


def build_model(kind: str, hidden: int, layers: int, heads: int) -> torch.nn.Module:
    vocab = FIRST + KEYS + VALUES
    if kind == "llama":
        cfg = AutoConfig.for_model("llama", vocab_size=vocab, hidden_size=hidden, intermediate_size=3 * hidden,
                                   num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=heads,
                                   max_position_embeddings=128, tie_word_embeddings=True)
    else:
        cfg = AutoConfig.for_model("gpt2", vocab_size=vocab, n_embd=hidden, n_layer=layers, n_head=heads,
                                   n_positions=128, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                                   bos_token_id=None, eos_token_id=None, tie_word_embeddings=True)
    return AutoModelForCausalLM.from_config(cfg)


def main(argv: list[str] | None = None) -> list[dict[str, float]]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", choices=("llama", "gpt2"), default="llama")
    ap.add_argument("--hidden", type=int, default=96)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--pairs", type=int, default=8)
    ap.add_argument("--layout", choices=("plain", "named"), default="plain")
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--minutes", type=float, default=4.0, help="CPU minutes of training")
    ap.add_argument("--steps", type=int, default=None, help="stop after this many steps instead (deterministic)")
    ap.add_argument("--every", type=float, default=30.0, help="CPU seconds between held-out measurements")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    model = build_model(args.model, args.hidden, args.layers, args.heads)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.98))
    held_x, held_y = batch(np.random.default_rng(10_000 + args.seed), 500, args.pairs, args.layout)
    rows: list[dict[str, float]] = []
    t0, step, next_eval = time.process_time(), 0, args.every
    while True:
        x, y = batch(rng, args.batch_size, args.pairs, args.layout)
        loss = torch.nn.functional.cross_entropy(model(input_ids=x).logits[:, -1], y)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        spent = time.process_time() - t0
        done = step >= args.steps if args.steps is not None else spent >= args.minutes * 60
        if spent >= next_eval or done:
            next_eval += args.every
            with torch.no_grad():
                acc = float((model(input_ids=held_x).logits[:, -1].argmax(-1) == held_y).float().mean())
            rows.append({"cpu_s": round(spent, 1), "step": step, "loss": round(loss.item(), 3), "accuracy": acc})
            print(f"{spent:6.0f} CPU-s  step {step:6d}  loss {loss.item():.3f}  held-out accuracy {acc:.3f} "
                  f"(chance among the values shown: {1 / args.pairs:.3f})", flush=True)
            if done:
                return rows


if __name__ == "__main__":
    main()
