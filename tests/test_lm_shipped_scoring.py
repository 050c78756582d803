"""The shipped word-level models read exactly the ids they were distilled and measured with.

They were trained and evaluated when the scorer tokenized prompt and action apart; it now reads prompt +
action as one text, split where the prompt ends (`londi.lm.scoring`). For their word-level tokenizers that is
the same split, so their scores are unchanged: checked here on real BabyAI-Text prompts (history and the
Named line of DEEPTHINK's prompt included).
"""

from __future__ import annotations

import pytest

import envs
from londi import build
from londi.lm.state import EpisodeHistory

LEVELS = ("BabyAI-Text-GoToLocal-v0", "BabyAI-Text-PutNextLocal-v0")
if not set(LEVELS) <= set(envs.text_env_ids()):
    pytest.skip("BabyAI-Text is not registered by `import envs`", allow_module_level=True)


@pytest.mark.parametrize("role", ["quick", "deepthink"])
def test_shipped_models_score_the_ids_they_were_trained_on(role):
    policy = build.model(build.config([f"model@{role}=distilled", "device=cpu"]), role)  # londi-assets:models/babyai_<role>
    tok = policy.tokenizer
    prompts = []
    for level in LEVELS:
        env = envs.make(level)
        hist = EpisodeHistory(policy.history_needed)
        obs, info = env.reset(seed=11)
        hist.reset(obs, info)
        for _ in range(5):
            state = hist.state(obs, info, env=env)
            prompt = policy.prompt(state)
            ids, cands = policy.scorer.encode(prompt, state.admissible_actions)
            # the ids of prompt and action tokenized apart, with no special tokens: the old scorer's
            assert ids == tok(prompt, add_special_tokens=False)["input_ids"], prompt
            assert cands == [tok(a, add_special_tokens=False)["input_ids"] for a in state.admissible_actions]
            assert policy.count_tokens(prompt) == len(ids)  # what the prompt builder counted before, too
            prompts.append(prompt)
            action = env.unwrapped.expert_action()
            obs, _, terminated, truncated, info = env.step(state.admissible_actions.index(action))
            hist.record(action, obs, info)
            if terminated or truncated:
                break
        env.close()
    assert len(prompts) >= 6
    if role == "deepthink":  # its prompts carry a past step and the Named line
        assert any("Action 0: " in p and "Named:" in p for p in prompts)
