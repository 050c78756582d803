"""londi-distill and the scorer agree: training sequences hold the ids `ActionScorer` scores (a BPE tokenizer
too), and `evaluate_only=DIR` measures a saved model on its own envs unless the command names others."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from londi.config import compose
from londi.lm import distill
from londi.lm.demonstrations import Demonstration
from londi.lm.distill import LONDI_META, Sequences, override_keys, run_config
from londi.lm.scoring import ActionScorer
from londi.lm.tiny import bpe_tokenizer, tiny_model

ACTIONS = ("turn left", "turn right", "go forward")


def test_training_sequences_are_what_the_scorer_scores():
    """With a BPE tokenizer the action's tokens are " turn left" after "Action 0:", in training as in scoring."""
    tok = bpe_tokenizer()
    model = tiny_model("llama", tok, seed=5)
    scorer = ActionScorer(model, tok)
    prompts = ["Goal of the agent: go to the red ball \n Observation 0: You see a wall 2 steps forward, \n Action 0: ",
               "Goal of the agent: pick up a key \n Observation 0: You carry a grey key, \n Action 0: "]
    demos = [Demonstration(p, ACTIONS, label, episode=i) for i, (p, label) in enumerate(zip(prompts, (0, 2), strict=True))]
    data = Sequences(demos, scorer, pack=False)
    for d, seq, spans in zip(demos, data.tokens, data.spans, strict=True):
        ids, cands = scorer.encode(d.prompt, d.actions)
        assert seq.tolist() == ids + cands[d.label] == tok(d.prompt + d.action, add_special_tokens=False)["input_ids"]
        (lo, hi), = spans
        assert tok.decode(seq[lo:hi].tolist()) == " " + d.action  # the prompt's trailing space is the action's
        with torch.no_grad():
            lp = torch.log_softmax(model(input_ids=torch.tensor([seq.tolist()])).logits[0], -1)
        trained = sum(float(lp[t - 1, seq[t]]) for t in range(lo, hi))
        np.testing.assert_allclose(trained, scorer.score([d.prompt], [d.actions]).scores[0][d.label], rtol=1e-4)

OWN = ["BabyAI-Text-GoToLocal-v0", "BabyAI-Text-MixedTestLocal-v0"]


@pytest.fixture
def measured(tmp_path, monkeypatch):
    """A model dir with its own envs in londi_distill.json; records what evaluate_model_dir was asked."""
    (tmp_path / LONDI_META).write_text(json.dumps({
        "env": ["BabyAI-Text-GoToLocal-v0"], "env_kwargs": {"max_episode_steps": 9},
        "eval": {"levels": {e: {} for e in OWN}, "env_kwargs": {"max_episode_steps": 9}}}))
    calls = []

    def fake(model_dir, env_id, episodes, seed, progress=False, env_kwargs=None, temperature=None):
        calls.append((list(env_id), dict(env_kwargs or {})))
        return {"eval": {"levels": {}, "flops_per_call": 1.0, "cpu_seconds_per_call": 1e-3}}

    monkeypatch.setattr(distill, "evaluate_model_dir", fake)
    return tmp_path, calls


def test_evaluate_only_measures_on_the_models_own_envs_unless_given(measured):
    model_dir, calls = measured

    def run(*overrides: str) -> tuple[list[str], dict]:
        args = [f"evaluate_only={model_dir}", *overrides]  # the default preset (quick) sets 5 envs of its own
        run_config(compose("distill", args), given=override_keys(args))
        return calls[-1]

    assert run() == (OWN, {"max_episode_steps": 9})  # the envs its card was measured on, not the preset's
    assert run("distill_model=deepthink") == (OWN, {"max_episode_steps": 9})  # a preset is not a choice of envs
    assert run("eval_envs=[BabyAI-Text-PickupLocal-v0]")[0] == ["BabyAI-Text-PickupLocal-v0"]
    assert run("envs=BabyAI-Text-PutNextLocal-v0") == (["BabyAI-Text-PutNextLocal-v0"], {"max_episode_steps": 9})
    assert run("+env_kwargs.max_episode_steps=5") == (OWN, {"max_episode_steps": 5})
    assert override_keys(["+env_kwargs.task=boil", "~eval_envs", "envs=[a,b]"]) == {"env_kwargs", "eval_envs", "envs"}
    # a model directory without londi_distill.json: the config's envs, as before
    (model_dir / LONDI_META).unlink()
    cfg = compose("distill", [f"evaluate_only={model_dir}"])
    assert run() == (list(cfg.eval_envs), {})
