"""Benchmark action scoring: shared-prompt batched scorer vs naive per-candidate forwards, same process.

Two workloads: BabyAI-Text (GLAM prompt with 2 history steps, the 6 actions) and ScienceWorld-sized
(a look-around observation with 3 history steps, 100 candidate actions). Reports candidates scored per
second for:
  shared  - londi.lm.scoring.ActionScorer: prompt encoded once per state, candidates batched on its KV cache
  naive   - one full forward of prompt+candidate per candidate (batch 1), the straightforward loop
  padded  - all prompt+candidate sequences of a state in one padded batch (prompt recomputed per candidate)
and checks that shared and naive give the same log-probs.

    .venv/bin/python scripts/bench_scoring.py                   # CPU, 1 thread, small Llama + BPE tokenizer
    .venv/bin/python scripts/bench_scoring.py --device cuda --d-model 512 --layers 8
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from londi.lm.prompts import build_prompt  # noqa: E402
from londi.lm.scoring import ActionScorer  # noqa: E402
from londi.lm.state import Step, TextState  # noqa: E402
from londi.lm.tiny import _DEFAULT_CORPUS, bpe_tokenizer, tiny_model  # noqa: E402

BABYAI_ACTIONS = ("turn left", "turn right", "go forward", "pick up", "drop", "toggle")
SW_ROOM = (
    "This room is called the kitchen. In it, you see: the agent, a substance called air, a chair. On the chair is: "
    "nothing. a counter. On the counter is: a bowl (containing a red apple, a banana, an orange, a potato), a "
    "drawer. a cupboard. The cupboard door is closed. a freezer. The freezer door is closed. a fridge. The fridge "
    "door is closed. a glass jar (containing a substance called sodium chloride) a lighter a oven, which is turned "
    "off. The oven door is closed. a painting a sink, which is turned off. In the sink is: nothing. a soap bar a "
    "stove, which is turned off. On the stove is: nothing. a table. On the table is: a glass cup (containing "
    "nothing). a thermometer, currently reading a temperature of 10 degrees celsius You also see: A door to the "
    "bathroom (that is open) A door to the hallway (that is open) A door to the outside (that is open)\n"
    "In your inventory, you see: an orange"
)
SW_OBJECTS = ("stove", "sink", "fridge", "freezer", "oven", "cupboard", "drawer", "table", "counter", "chair",
              "glass cup", "bowl", "thermometer", "lighter", "orange", "banana", "potato", "red apple", "glass jar",
              "soap bar")
SW_VERBS = ("open", "close", "activate", "deactivate", "focus on", "pick up", "look at", "examine", "move")


def babyai_state() -> TextState:
    hist = (
        Step("", ("You see a wall 2 steps forward", "You see a red ball 1 step left and 1 step forward"), "turn left"),
        Step("", ("You see a wall 3 steps left", "You see a red ball 1 step forward"), "go forward"),
    )
    return TextState(obs="", mission="pick up the red ball", admissible_actions=BABYAI_ACTIONS, family="babyai_text",
                     descriptions=("You see a wall 1 step forward", "You see a red ball 1 step forward"),
                     history=hist)


def scienceworld_state(n_candidates: int = 100) -> TextState:
    cands = [f"{v} {o}" for v in SW_VERBS for o in SW_OBJECTS if v != "move"]
    cands += [f"move {a} to {b}" for a in SW_OBJECTS[10:] for b in SW_OBJECTS[:10]]
    hist = tuple(Step(SW_ROOM, None, a) for a in ("look around", "open cupboard", "pick up glass cup"))
    return TextState(obs=SW_ROOM, mission="Your task is to boil water. First, focus on the substance. Then, take "
                     "actions that will cause it to change its state of matter.",
                     admissible_actions=tuple(cands[:n_candidates]), family="scienceworld", history=hist)


@torch.inference_mode()
def naive_scores(scorer: ActionScorer, prompt: str, cands, padded: bool) -> np.ndarray:
    """Per-candidate full forwards (batch 1) or one padded batch of full sequences; no cache reuse."""
    model = scorer.model
    p, c_ids = scorer.encode(prompt, cands)
    dev = scorer.device
    if not padded:
        out = []
        for ids in c_ids:
            logits = model(input_ids=torch.tensor([p + ids], device=dev)).logits[0, len(p) - 1 : -1]
            out.append(torch.log_softmax(logits.float(), -1)[torch.arange(len(ids)), ids].sum().item())
        return np.array(out)
    seqs, mask = scorer._pad([p + ids for ids in c_ids], left=False)
    lp = torch.log_softmax(model(input_ids=seqs, attention_mask=mask).logits.float(), -1)
    return np.array([lp[r, torch.arange(len(p) - 1, len(p) - 1 + len(ids)), torch.tensor(ids)].sum().item()
                     for r, ids in enumerate(c_ids)])


def timed(fn, min_seconds: float, sync) -> float:
    """Seconds per call: one warm-up, then repeat until `min_seconds` elapsed (at least 2 calls)."""
    fn()
    sync()
    n, t0 = 0, time.perf_counter()
    while n < 2 or time.perf_counter() - t0 < min_seconds:
        fn()
        n += 1
    sync()
    return (time.perf_counter() - t0) / n


def run(args) -> dict:
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    tok = bpe_tokenizer([_DEFAULT_CORPUS, SW_ROOM] * 4, vocab_size=args.vocab)
    model = tiny_model("llama", tok, d_model=args.d_model, n_layer=args.layers, n_head=args.heads, seed=0).to(device)
    if device.type == "cuda":
        model.set_attn_implementation("sdpa")
    scorer = ActionScorer(model, tok)
    params = sum(p.numel() for p in model.parameters())
    rows = []
    for name, state in (("babyai_6", babyai_state()), ("scienceworld_100", scienceworld_state(args.candidates))):
        prompt = build_prompt(state)
        cands = state.admissible_actions
        p_ids, c_ids = scorer.encode(prompt, cands)
        k, p_len = len(cands), len(p_ids)
        c_len = float(np.mean([len(c) for c in c_ids]))
        shared = scorer.score([prompt], [cands]).scores[0]
        ref = naive_scores(scorer, prompt, cands, padded=False)
        err = float(np.abs(shared - ref).max())
        t_shared = timed(lambda p=prompt, c=cands: scorer.score([p], [c]), args.min_seconds, sync)
        t_batch = timed(lambda p=prompt, c=cands: scorer.score([p] * args.states, [c] * args.states),
                        args.min_seconds, sync) / args.states
        t_naive = timed(lambda p=prompt, c=cands: naive_scores(scorer, p, c, False), args.min_seconds, sync)
        t_pad = timed(lambda p=prompt, c=cands: naive_scores(scorer, p, c, True), args.min_seconds, sync)
        row = {
            "workload": name, "candidates": k, "prompt_tokens": p_len, "mean_candidate_tokens": round(c_len, 2),
            "max_abs_logprob_diff_vs_naive": err,
            "cands_per_s_shared": k / t_shared, f"cands_per_s_shared_{args.states}_states": k / t_batch,
            "cands_per_s_naive": k / t_naive, "cands_per_s_padded": k / t_pad,
            "speedup_vs_naive": t_naive / t_shared, "speedup_vs_padded": t_pad / t_shared,
        }
        rows.append(row)
    return {"device": str(device) if device.type == "cpu" else torch.cuda.get_device_name(device),
            "threads": args.threads, "torch": torch.__version__, "python": platform.python_version(),
            "model": f"llama d_model={args.d_model} layers={args.layers} heads={args.heads} vocab={len(tok)}",
            "parameters": params, "rows": rows}


def markdown(res: dict) -> str:
    lines = [f"device: {res['device']} (torch threads {res['threads']}), torch {res['torch']}; model: {res['model']}, "
             f"{res['parameters']:,} parameters", "",
             "| workload | cands | prompt tok | cand tok | shared cands/s | shared, batch of states | naive cands/s | "
             "padded cands/s | speed-up vs naive | vs padded | max abs diff |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in res["rows"]:
        batch_key = next(k for k in r if k.startswith("cands_per_s_shared_"))
        lines.append(f"| {r['workload']} | {r['candidates']} | {r['prompt_tokens']} | {r['mean_candidate_tokens']} | "
                     f"{r['cands_per_s_shared']:,.0f} | {r[batch_key]:,.0f} | {r['cands_per_s_naive']:,.0f} | "
                     f"{r['cands_per_s_padded']:,.0f} | {r['speedup_vs_naive']:.1f}x | {r['speedup_vs_padded']:.1f}x | "
                     f"{r['max_abs_logprob_diff_vs_naive']:.1e} |")
    return "\n".join(lines)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--d-model", type=int, default=128)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--vocab", type=int, default=1024)
    ap.add_argument("--candidates", type=int, default=100)
    ap.add_argument("--states", type=int, default=8, help="states per batch for the batched-states figure")
    ap.add_argument("--min-seconds", type=float, default=1.0, help="time each variant at least this long")
    ap.add_argument("--json", default=None, help="also write the results here")
    args = ap.parse_args(argv)
    res = run(args)
    print(markdown(res))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=2)
    return res


if __name__ == "__main__":
    main()
