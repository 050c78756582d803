"""State encoders: turn a text state (and optionally QUICK's output) into the switcher's observation vector.

Three kinds, swappable through the `encoder` config group:
- `HashedNgramEncoder` (default): hashed bag of word n-grams of mission + observation (sklearn's
  `HashingVectorizer`, no fitting, no look-ahead), cached per text because text envs revisit states.
- `QuickHiddenEncoder`: QUICK's own hidden state (`act(..., return_hidden=True)`): no extra model, but
  QUICK must run on every state first (the env then counts that call).
- `SentenceEmbeddingEncoder`: mean-pooled last hidden state of any local transformers model given by path.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import numpy as np

from londi.lm.policy import ActResult, LMPolicy
from londi.lm.state import TextState

HISTORY_STEPS = 2  # past steps the history features read (the env may keep more for an LM's prompt)


class Encoder:
    """Base: `dim` output features; `needs_quick_output`/`needs_quick_hidden` ask the env to run QUICK first;
    `episode_features` asks the env to append its episode features (step-limit share, observation repeats)."""

    dim: int = 0
    needs_quick_output: bool = False
    needs_quick_hidden: bool = False
    episode_features: bool = False

    def bind(self, quick: LMPolicy, deepthink: LMPolicy) -> None:  # noqa: B027 - optional hook
        """Learn dimensions from the policies (the hidden-state encoder reads QUICK's hidden size)."""

    def encode(self, state: TextState, quick: ActResult | None = None) -> np.ndarray:
        raise NotImplementedError

    def encode_batch(self, states: Sequence[TextState], quicks: Sequence[ActResult | None]) -> np.ndarray:
        """(N, dim) observations of many states at once (`SwitchingVecEnv` encodes a vector step in one call);
        the same rows as `encode` one by one. Override where one call for many is cheaper."""
        return np.stack([self.encode(s, q) for s, q in zip(states, quicks, strict=True)])


class NullEncoder(Encoder):
    """A constant one-feature observation, for switchers that never read the encoded state (`reads_obs=False`)."""

    dim = 1

    def encode(self, state: TextState, quick: ActResult | None = None) -> np.ndarray:
        return np.zeros(1, dtype=np.float32)


def state_text(state: TextState) -> str:
    """The text a bag-of-n-grams encoder reads: mission and current observation."""
    return f"{state.mission} \n {state.obs}"


def quick_summary(quick: ActResult | None) -> np.ndarray:
    """[entropy, max prob, margin between top-2 probs] of QUICK's action distribution (zeros if unknown)."""
    if quick is None or quick.probs is None:
        return np.zeros(3, dtype=np.float32)
    p = np.sort(quick.probs)[::-1]
    margin = p[0] - (p[1] if len(p) > 1 else 0.0)
    return np.array([quick.entropy, p[0], margin], dtype=np.float32)


class HashedNgramEncoder(Encoder):
    """Hashed bag of word n-grams (l2-normalised) of the state's text, plus optional extras.

    `quick_features=True` appends QUICK's entropy/max-prob/margin and hashes the action QUICK proposes
    (QUICK runs first, counted); `history_features=True` hashes the last actions taken and appends a flag
    for "this observation was already seen in the recent history" (loops are where a fixed QUICK fails).
    `goal_features=True` hashes again, under a `g_` prefix, the observation lines that name the goal (see
    `goal_lines`): a bag of n-grams cannot tell which object a distance belongs to, and whether QUICK's
    move is right depends on where the goal is, not on where the distractors are.
    `episode_features=True` has the `SwitchingEnv` append the share of the step limit used and how often
    this observation was already seen this episode (a QUICK looping for many steps is where to call).
    """

    def __init__(
        self,
        *,
        n_features: int,
        ngram_max: int,
        quick_features: bool,
        history_features: bool,
        goal_features: bool,
        episode_features: bool,
        cache_size: int = 50_000,
    ):
        from sklearn.feature_extraction.text import HashingVectorizer

        self._vec = HashingVectorizer(
            n_features=n_features, ngram_range=(1, ngram_max), alternate_sign=False, norm="l2", dtype=np.float32
        )
        self.n_features = n_features
        self.quick_features = quick_features
        self.history_features = history_features
        self.goal_features = goal_features
        self.episode_features = episode_features
        self.needs_quick_output = quick_features
        self.dim = n_features + (3 if quick_features else 0) + (1 if history_features else 0)
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_size = cache_size

    def _hash_many(self, texts: Sequence[str]) -> np.ndarray:
        """Hashed rows of `texts`, one vectorizer call for all the uncached ones (its per-call overhead is
        most of its cost on one short text)."""
        rows: list[np.ndarray | None] = [self._cache.get(t) for t in texts]
        missing = list(dict.fromkeys(t for t, r in zip(texts, rows, strict=True) if r is None))
        if missing:
            fresh = dict(zip(missing, self._vec.transform(missing).toarray().astype(np.float32), strict=True))
            for t in missing:
                self._cache[t] = fresh[t]
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
            rows = [fresh[t] if r is None else r for t, r in zip(texts, rows, strict=True)]
        return np.stack(rows)  # type: ignore[arg-type]

    def _text(self, state: TextState, quick: ActResult | None) -> str:
        recent = state.history[-HISTORY_STEPS:]  # the env may keep more for an LM's prompt; features see 2
        text = state_text(state)
        if self.goal_features:
            text += " " + " ".join("g_" + w for line in goal_lines(state) for w in line.split())
        if self.history_features:
            text += " " + " ".join(f"prev{k}_{_token(s.action)}" for k, s in enumerate(reversed(recent)))
        if self.quick_features and quick is not None:
            text += f" quick_proposes_{_token(quick.action)}"
        return text

    def _extras(self, state: TextState, quick: ActResult | None) -> list[np.ndarray]:
        parts = []
        if self.quick_features:
            parts.append(quick_summary(quick))
        if self.history_features:
            recent = state.history[-HISTORY_STEPS:]
            parts.append(np.array([float(any(s.obs == state.obs for s in recent))], dtype=np.float32))
        return parts

    def encode(self, state: TextState, quick: ActResult | None = None) -> np.ndarray:
        return self.encode_batch([state], [quick])[0]

    def encode_batch(self, states: Sequence[TextState], quicks: Sequence[ActResult | None]) -> np.ndarray:
        hashed = self._hash_many([self._text(s, q) for s, q in zip(states, quicks, strict=True)])
        if not (self.quick_features or self.history_features):
            return hashed
        extras = np.stack([np.concatenate(self._extras(s, q)) for s, q in zip(states, quicks, strict=True)])
        return np.concatenate([hashed, extras], axis=1)


_FILLER = frozenset("a an the to of in on at you see go put pick up open next and then after is this that".split())


def goal_lines(state: TextState, min_overlap: int = 2) -> list[str]:
    """Observation lines sharing at least `min_overlap` content words with the mission, filler words dropped.

    "go to the red key" + "You see a red key 2 steps right and 3 steps forward" -> "red key 2 steps right
    3 steps forward". Lexical overlap, so it works for any text env whose goal names the objects it concerns.
    """
    goal = {w for w in state.mission.lower().replace(",", " ").split() if w not in _FILLER}
    out = []
    for line in state.obs.lower().splitlines():
        words = line.replace(",", " ").split()
        if line.startswith("goal of the agent") or len(goal.intersection(words)) < min(min_overlap, len(goal)):
            continue
        out.append(" ".join(w for w in words if w not in _FILLER))
    return out


def _token(action: str) -> str:
    """An action string as one hashing token ("turn left" -> "turn_left")."""
    return "_".join(action.split())


class QuickHiddenEncoder(Encoder):
    """QUICK's hidden state for this state (zeros on terminal states, where QUICK is not run)."""

    needs_quick_output = True
    needs_quick_hidden = True

    def __init__(self, *, dim: int | None, quick_features: bool):
        self._hidden_dim = dim
        self.quick_features = quick_features
        self.dim = (dim or 0) + (3 if quick_features else 0)

    def bind(self, quick: LMPolicy, deepthink: LMPolicy) -> None:
        if self._hidden_dim is None:
            size = getattr(quick, "hidden_size", None)
            model = getattr(quick, "model", None)
            if size is None and model is not None:
                size = getattr(getattr(model, "config", None), "hidden_size", None)
            if size is None:
                raise ValueError(
                    f"QuickHiddenEncoder cannot tell {quick.name}'s hidden size: pass encoder dim=... "
                    "(or use a QUICK backend that returns hidden states, e.g. HFPolicy)"
                )
            self._hidden_dim = int(size)
        self.dim = self._hidden_dim + (3 if self.quick_features else 0)

    def encode(self, state: TextState, quick: ActResult | None = None) -> np.ndarray:
        if self._hidden_dim is None:
            raise RuntimeError("QuickHiddenEncoder.bind(quick, deepthink) must run before encode (SwitchingEnv does it)")
        h = np.zeros(self._hidden_dim, dtype=np.float32)
        if quick is not None:
            if quick.hidden is None:
                raise ValueError("QUICK returned no hidden state: its backend must support act(..., return_hidden=True)")
            h = np.asarray(quick.hidden, dtype=np.float32).reshape(-1)
            if h.shape[0] != self._hidden_dim:
                raise ValueError(f"QUICK hidden size {h.shape[0]} != encoder dim {self._hidden_dim}")
        return np.concatenate([h, quick_summary(quick)]) if self.quick_features else h


class SentenceEmbeddingEncoder(Encoder):
    """Mean-pooled last hidden state of a local transformers model (`path`: a directory, never a hub download)."""

    def __init__(self, *, path: str, max_length: int, device: str, cache_size: int = 50_000):
        import torch
        from transformers import AutoModel, AutoTokenizer

        self._torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        self.model = AutoModel.from_pretrained(path, local_files_only=True).to(device).eval()
        self.device = device
        self.max_length = max_length
        self.dim = int(self.model.config.hidden_size)
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_size = cache_size

    def encode(self, state: TextState, quick: ActResult | None = None) -> np.ndarray:
        text = state_text(state)
        v = self._cache.get(text)
        if v is None:
            torch = self._torch
            batch = self.tokenizer([text], return_tensors="pt", truncation=True, max_length=self.max_length).to(self.device)
            with torch.no_grad():
                out = self.model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(out.dtype)
            v = ((out * mask).sum(1) / mask.sum(1).clamp(min=1)).squeeze(0).float().cpu().numpy()
            self._cache[text] = v
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return v
