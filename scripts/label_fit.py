"""How learnable an expert's GoToLocal labels are from the prompt: a distilled LM against trees on the parsed view.

Held-out states come from the expert's own episodes (every step replaced by a random action with probability
`--noise`, as in `londi-distill`'s noisy round). Three measurements, per expert action:
- whether the label is a function of the prompt text: states whose prompt was also seen at another agent
  direction (the bot breaks ties between equal paths by absolute direction, which the text does not show),
  and the share of them whose label is that prompt's majority label;
- decision trees / gradient boosting (scikit-learn) trained on the demonstrations of a `londi-distill` run
  (its data/round0.jsonl), reading the view as parsed numbers: the goal object's offset, the straight-line
  wall distances, and which cells of the 7x7 view hold an object;
- a distilled model's accuracy (`--model`, the greedy HFPolicy choice) on the same states and on a sample
  of its own training states (does it fit them?).

    .venv/bin/python scripts/label_fit.py outputs/distill/goto_only_myopic_h0/data/round0.jsonl \\
        --model outputs/distill/goto_only_myopic_h0/model --expert myopic
"""

from __future__ import annotations

import argparse
import collections
import json
import random
import re
from collections.abc import Sequence

import gymnasium as gym
import numpy as np
import torch

import envs  # noqa: F401 - registers the BabyAI-Text ids
from londi.lm.demonstrations import Demonstration
from londi.lm.state import EpisodeHistory

_DESC = re.compile(r"You see an? ([a-z ]+?) (\d.*)$")  # "You see a red key 2 steps left and 1 step forward"
_SIDE = re.compile(r"(\d+) steps? (left|right)")
_FORWARD = re.compile(r"(\d+) steps? forward")
_GOAL = re.compile(r"Goal of the agent: go to (?:the|a) (\w+) (\w+)")


def view_features(prompt: str) -> np.ndarray:
    """The current observation of a GoTo prompt as numbers: goal offset (right, forward; -9 forward when not
    in view) and whether in view, wall distances (forward, left, right), 7x7 object occupancy."""
    goal = _GOAL.search(prompt)
    occ, walls, targets = np.zeros((7, 7)), [0, 0, 0], []
    obs = prompt[prompt.rindex("Observation"):]
    for part in obs.split("You see")[1:]:
        m = _DESC.match("You see" + part.split(",")[0].rstrip())
        if m is None:
            continue
        name, place = m.groups()
        side, fwd = _SIDE.search(place), _FORWARD.search(place)
        dx = (int(side.group(1)) * (-1 if side.group(2) == "left" else 1)) if side else 0
        dy = int(fwd.group(1)) if fwd else 0
        if name == "wall":
            walls[0 if dx == 0 else 1 if dx < 0 else 2] = dy if dx == 0 else abs(dx)
            continue
        if -3 <= dx <= 3 and 0 <= dy <= 6:
            occ[dx + 3, dy] = 1
        if goal is not None and name == " ".join(goal.groups()):
            targets.append((abs(dx) + dy, dx, dy))
    t = min(targets) if targets else (0, 0, -9)
    return np.concatenate([[t[1], t[2], bool(targets)], walls, occ.ravel()])


def held_out(env_id: str, expert: str, episodes: int, seed: int, noise: float):
    """(prompts, admissible actions, labels, agent directions) along the expert's noisy episodes."""
    from londi.lm.prompts import build_prompt

    env = gym.make(env_id, expert=expert)
    rng = np.random.default_rng(seed)
    prompts, candidates, labels, dirs = [], [], [], []
    for ep in range(episodes):
        obs, info = env.reset(seed=seed + ep)
        hist = EpisodeHistory(max_steps=0)
        hist.reset(obs, info)
        while True:
            action = env.unwrapped.expert_action()
            if action is None:
                break
            state = hist.state(obs, info, env=env)
            actions = state.admissible_actions
            prompts.append(build_prompt(state, history=0))
            candidates.append(actions)
            labels.append(action)
            dirs.append(int(env.unwrapped.level.agent_dir))
            i = int(rng.integers(len(actions))) if rng.random() < noise else actions.index(action)
            obs, _, terminated, truncated, info = env.step(i)
            hist.record(actions[i], obs, info)
            if terminated or truncated:
                break
    env.close()
    return prompts, candidates, np.array(labels), dirs


def per_label(pred: Sequence[str], labels: np.ndarray, in_view: np.ndarray | None = None) -> str:
    """Accuracy overall, per label (those with >= 20 states) and, given `in_view`, where the goal object is
    in view and where it is not."""
    pred = np.asarray(pred)
    parts = [f"{a} {np.mean(pred[labels == a] == a):.2f}" for a in sorted(set(labels)) if np.sum(labels == a) >= 20]
    if in_view is not None:
        parts += [f"goal in view {np.mean(pred[in_view] == labels[in_view]):.2f}",
                  f"not in view {np.mean(pred[~in_view] == labels[~in_view]):.2f}"]
    return f"{np.mean(pred == labels):.3f} ({', '.join(parts)})"


def model_choices(model_dir: str, prompts: Sequence[str], candidates: Sequence[Sequence[str]]) -> list[str]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from londi.lm.scoring import ActionScorer

    scorer = ActionScorer(AutoModelForCausalLM.from_pretrained(model_dir).eval(), AutoTokenizer.from_pretrained(model_dir),
                          reduction="sum", max_prompt_tokens=512)
    out = []
    for i in range(0, len(prompts), 32):
        scores = scorer.score(prompts[i : i + 32], candidates[i : i + 32]).scores
        out += [candidates[i + k][int(np.argmax(s))] for k, s in enumerate(scores)]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("train", help="a londi-distill run's data/round0.jsonl (history 0 prompts)")
    ap.add_argument("--model", help="a distilled model dir to measure on the same states")
    ap.add_argument("--env", default="BabyAI-Text-GoToLocal-v0")
    ap.add_argument("--expert", default="myopic", help="the teacher of the training data (bot or myopic)")
    ap.add_argument("--episodes", type=int, default=300)
    ap.add_argument("--seed", type=int, default=900_000)
    ap.add_argument("--noise", type=float, default=0.3)
    args = ap.parse_args()
    torch.set_num_threads(1)
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.tree import DecisionTreeClassifier

    train = [Demonstration.from_dict(json.loads(line)) for line in open(args.train)]
    prompts, candidates, labels, dirs = held_out(args.env, args.expert, args.episodes, args.seed, args.noise)
    print(f"{args.env}, {args.expert} expert: {len(train)} training states, {len(labels)} held-out states "
          f"(reset seeds {args.seed}.., noise {args.noise})")
    seen = collections.defaultdict(list)
    for p, a, d in zip(prompts, labels, dirs, strict=True):
        seen[p].append((a, d))
    multi = [v for v in seen.values() if len({d for _, d in v}) > 1]
    n = sum(len(v) for v in multi)
    agree = sum(collections.Counter(a for a, _ in v).most_common(1)[0][1] for v in multi)
    print(f"label a function of the text: {len(multi)} prompts seen at several agent directions ({n} states), "
          f"majority label on {agree / max(n, 1):.3f} of them")
    x_train = np.array([view_features(d.prompt) for d in train])
    y_train = np.array([d.action for d in train])
    x_test = np.array([view_features(p) for p in prompts])
    in_view = x_test[:, 2] == 1
    for name, clf in [("tree, depth 6", DecisionTreeClassifier(max_depth=6, random_state=0)),
                      ("tree, depth 12", DecisionTreeClassifier(max_depth=12, random_state=0)),
                      ("gradient boosting", HistGradientBoostingClassifier(random_state=0))]:
        clf.fit(x_train, y_train)
        print(f"{name} on the parsed view: train {clf.score(x_train, y_train):.3f}, held-out "
              f"{per_label(clf.predict(x_test), labels, in_view)}")
    if args.model:
        print(f"model {args.model}: held-out {per_label(model_choices(args.model, prompts, candidates), labels, in_view)}")
        sample = random.Random(0).sample(train, min(1500, len(train)))
        fit = model_choices(args.model, [d.prompt for d in sample], [d.actions for d in sample])
        print(f"  on 1,500 of its training states: {per_label(fit, np.array([d.action for d in sample]))}")


if __name__ == "__main__":
    main()
