"""Streams of text items for online cascade learning: file readers and the project's own streams.

An item carries its text, an optional gold label and an optional label of the expensive (final) model, so
a stream can stand in for an LLM's annotations ("labels given in the data"). Items are produced lazily and
in order: nothing downstream may look ahead (the cascade sees item t before it may learn from it).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class StreamItem:
    """One element of a stream. Labels are class indices into the stream's `labels`; None = unknown."""

    text: str
    gold: int | None = None
    final: int | None = None
    meta: dict[str, Any] = field(default_factory=dict, compare=False)


@dataclass
class Stream:
    """A named, re-iterable sequence of items over a fixed label set (`labels[i]` names class i)."""

    name: str
    labels: list[str]
    make_iter: Callable[[], Iterator[StreamItem]]
    length: int | None = None

    def __iter__(self) -> Iterator[StreamItem]:
        return self.make_iter()

    def __len__(self) -> int:
        if self.length is None:
            raise TypeError(f"stream {self.name!r} has no known length")
        return self.length

    @property
    def num_classes(self) -> int:
        return len(self.labels)


def from_items(name: str, labels: Sequence[str], items: Sequence[StreamItem]) -> Stream:
    """A stream over an in-memory list (tests, generated streams)."""
    items = list(items)
    return Stream(name=name, labels=list(labels), make_iter=lambda: iter(items), length=len(items))


# --------------------------------------------------------------------------------------------------
# File readers
# --------------------------------------------------------------------------------------------------


def _label_index(value: Any, labels: list[str], where: str) -> int | None:
    if value is None or (isinstance(value, str) and value.strip() == ""):
        return None
    s = str(value).strip()
    if s in labels:
        return labels.index(s)
    try:
        i = int(float(s))
    except ValueError:
        raise ValueError(f"{where}: label {s!r} is not one of {labels} nor a class index") from None
    if not 0 <= i < len(labels):
        raise ValueError(f"{where}: class index {i} out of range for {len(labels)} labels {labels}")
    return i


def _scan_labels(rows: Iterable[dict], cols: Sequence[str]) -> list[str]:
    """Label names in order of first appearance in the label columns only (the text is never read)."""
    seen: dict[str, None] = {}
    for r in rows:
        for c in cols:
            v = r.get(c)
            if v is not None and str(v).strip() != "":
                seen.setdefault(str(v).strip(), None)
    return sorted(seen) if all(s.lstrip("-").isdigit() for s in seen) and seen else list(seen)


def _rows_stream(
    name: str,
    read_rows: Callable[[], Iterator[dict]],
    text_col: str,
    gold_col: str | None,
    final_col: str | None,
    labels: Sequence[str] | None,
    limit: int | None,
) -> Stream:
    label_cols = [c for c in (gold_col, final_col) if c]
    if not label_cols:
        raise ValueError(f"{name}: give gold_col and/or final_col, or nothing can be learnt or scored")
    label_list = list(labels) if labels else _scan_labels(read_rows(), label_cols)
    if not label_list:
        raise ValueError(f"{name}: found no labels in columns {label_cols}; pass labels=[...] explicitly")

    def it() -> Iterator[StreamItem]:
        for n, r in enumerate(read_rows()):
            if limit is not None and n >= limit:
                return
            if text_col not in r:
                raise KeyError(f"{name} row {n}: no text column {text_col!r} (columns: {sorted(r)})")
            where = f"{name} row {n}"
            yield StreamItem(
                text=str(r[text_col]),
                gold=_label_index(r.get(gold_col), label_list, where) if gold_col else None,
                final=_label_index(r.get(final_col), label_list, where) if final_col else None,
            )

    return Stream(name=name, labels=label_list, make_iter=it)


def read_csv(
    path: str | Path,
    text_col: str = "text",
    gold_col: str | None = "gold",
    final_col: str | None = "final",
    labels: Sequence[str] | None = None,
    limit: int | None = None,
) -> Stream:
    """CSV with a text column and gold / final-model label columns (names or class indices; blank = unknown).

    Without `labels`, the label set is read from the label columns (never the text) before streaming.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"stream file {path} does not exist")

    def rows() -> Iterator[dict]:
        with path.open(newline="") as f:
            yield from csv.DictReader(f)

    return _rows_stream(path.name, rows, text_col, gold_col if gold_col else None, final_col or None, labels, limit)


def read_jsonl(
    path: str | Path,
    text_col: str = "text",
    gold_col: str | None = "gold",
    final_col: str | None = "final",
    labels: Sequence[str] | None = None,
    limit: int | None = None,
) -> Stream:
    """JSON-lines with the same fields as `read_csv`; missing/null labels are unknown."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"stream file {path} does not exist")

    def rows() -> Iterator[dict]:
        with path.open() as f:
            for line in f:
                if line.strip():
                    yield json.loads(line)

    return _rows_stream(path.name, rows, text_col, gold_col or None, final_col or None, labels, limit)


def write_jsonl(stream: Stream, path: str | Path) -> Path:
    """Save a stream (label names, not indices) so it can be replayed with `read_jsonl`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as f:
        for it in stream:
            row = {
                "text": it.text,
                "gold": stream.labels[it.gold] if it.gold is not None else None,
                "final": stream.labels[it.final] if it.final is not None else None,
            }
            f.write(json.dumps(row) + "\n")
    return path


def read_hf_dataset(
    name: str,
    split: str = "train",
    text_col: str = "text",
    gold_col: str | None = "label",
    final_col: str | None = None,
    config_name: str | None = None,
    labels: Sequence[str] | None = None,
    limit: int | None = None,
    shuffle_seed: int | None = None,
) -> Stream:
    """A Hugging Face dataset (e.g. "imdb") for users who have it locally or online.

    Label names come from the dataset's ClassLabel feature when present.
    """
    try:
        import datasets
    except ImportError as e:  # pragma: no cover - optional dependency
        raise ImportError("read_hf_dataset needs the `datasets` package: pip install datasets") from e
    ds = datasets.load_dataset(name, config_name, split=split)  # pragma: no cover - needs the hub or a cache
    if shuffle_seed is not None:  # pragma: no cover
        ds = ds.shuffle(seed=shuffle_seed)
    if labels is None:  # pragma: no cover
        feat = ds.features.get(gold_col or final_col or "")
        labels = list(getattr(feat, "names", []) or [])
    return _rows_stream(f"hf:{name}", lambda: iter(ds), text_col, gold_col, final_col, labels, limit)  # pragma: no cover


# --------------------------------------------------------------------------------------------------
# The project's own streams
# --------------------------------------------------------------------------------------------------


def synthetic_drifting(
    n: int = 10_000,
    num_classes: int = 4,
    seed: int = 0,
    words_per_class: int = 40,
    length: int = 14,
    drift_every: int = 2_500,
    drift_fraction: float = 0.3,
    hard_fraction: float = 0.25,
    final_accuracy: float = 0.92,
) -> Stream:
    """A text-classification stream whose class vocabularies drift, labelled by a noisy "expensive model".

    Each class owns `words_per_class` topic words; an item mixes topic words of its class with shared filler
    and (for hard items) topic words of a confusing class. Every `drift_every` items, `drift_fraction` of
    every class's topic words are replaced by unseen words, so a model fitted early goes stale and must keep
    learning online. The final model's label equals the gold label with probability `final_accuracy`, its
    errors falling mostly on hard items (as an LLM's would). Fully determined by `seed`.
    """
    if num_classes < 2:
        raise ValueError("synthetic_drifting needs num_classes >= 2")
    labels = [f"topic{c}" for c in range(num_classes)]

    def it() -> Iterator[StreamItem]:
        rng = np.random.default_rng(seed)
        fresh = iter(range(10**9))
        vocab = [[f"w{next(fresh)}" for _ in range(words_per_class)] for _ in range(num_classes)]
        filler = [f"f{i}" for i in range(200)]
        # errors of the expensive model concentrate on hard items: solve for the two error rates
        err = 1.0 - final_accuracy
        err_hard = min(0.9, 3.0 * err) if hard_fraction > 0 else 0.0
        err_easy = max(0.0, (err - hard_fraction * err_hard) / max(1e-9, 1.0 - hard_fraction))
        for t in range(n):
            if t and drift_every and t % drift_every == 0:
                for c in range(num_classes):
                    k = int(round(drift_fraction * words_per_class))
                    for j in rng.choice(words_per_class, size=k, replace=False):
                        vocab[c][j] = f"w{next(fresh)}"
            y = int(rng.integers(num_classes))
            hard = bool(rng.random() < hard_fraction)
            n_topic = int(rng.integers(2, 5)) if not hard else 2
            words = list(rng.choice(vocab[y], size=n_topic))
            if hard:  # as much evidence for a confusing class as for the true one
                other = int((y + 1 + rng.integers(num_classes - 1)) % num_classes)
                words += list(rng.choice(vocab[other], size=int(rng.integers(1, 3))))
            words += list(rng.choice(filler, size=max(0, length - len(words))))
            rng.shuffle(words)
            final = y
            if rng.random() < (err_hard if hard else err_easy):
                final = int((y + 1 + rng.integers(num_classes - 1)) % num_classes)
            yield StreamItem(text=" ".join(words), gold=y, final=final, meta={"t": t, "hard": hard})

    return Stream(name=f"synthetic_drifting(seed={seed})", labels=labels, make_iter=it, length=n)


BABYAI_ACTIONS = ["turn left", "turn right", "go forward", "pick up", "drop", "toggle"]
# ScienceWorld's action set varies per state: its stream is labelled by the gold action's verb instead
SCIENCEWORLD_VERBS = [
    "open", "close", "activate", "deactivate", "connect", "disconnect", "use", "look", "examine", "read",
    "move", "pick", "put", "pour", "dunk", "mix", "go", "teleport", "eat", "flush", "focus", "wait", "other",
]


def babyai_state_text(mission: str, descriptions: Sequence[str]) -> str:
    """The text a cascade level reads for a BabyAI-Text state: the goal, then every description."""
    return f"Goal of the agent: {mission}. " + ". ".join(descriptions)


def env_expert_stream(
    env_id: str = "BabyAI-Text-GoToLocal-v0",
    n: int = 10_000,
    seed: int = 0,
    noise: float = 0.2,
    text_fn: Callable[[str, dict], str] | None = None,
    env_kwargs: dict | None = None,
) -> Stream:
    """States of a londi text env labelled by its expert (`env.unwrapped.expert_action()`).

    The final model is the expert: gold = final = the expert's action. With probability `noise` the agent
    takes a random admissible action instead (DAgger-style), so the stream also visits states off the
    expert's path. Labels are the env's admissible action strings (BabyAI-Text: its six actions);
    ScienceWorld labels are the verb of the gold action (its action set varies per state). Episodes
    are reset with seeds `seed, seed+1, ...`, so the stream is reproducible.
    """

    def default_text(obs: str, info: dict) -> str:
        if info.get("descriptions") is not None:
            return babyai_state_text(str(info.get("mission", "")), info["descriptions"])
        return f"Task: {info.get('mission', info.get('task', ''))}. {obs}"

    make_text = text_fn or default_text
    is_babyai = env_id.startswith("BabyAI")
    labels = list(BABYAI_ACTIONS) if is_babyai else list(SCIENCEWORLD_VERBS)

    def it() -> Iterator[StreamItem]:
        import envs  # registers the ids

        env = envs.make(env_id, **(env_kwargs or {}))
        rng = np.random.default_rng(seed)
        produced, episode = 0, 0
        try:
            while produced < n:
                obs, info = env.reset(seed=seed + episode)
                episode += 1
                done = False
                while not done and produced < n:
                    admissible = list(info["admissible_actions"])
                    try:
                        expert = env.unwrapped.expert_action()
                    except Exception:  # the BabyAI bot can fail after off-path actions: end the episode
                        break
                    if expert is None or expert not in admissible:
                        break
                    label = expert if is_babyai else (expert.split() or ["other"])[0]
                    y = labels.index(label) if label in labels else labels.index("other")
                    yield StreamItem(text=make_text(obs, info), gold=y, final=y, meta={"episode": episode})
                    produced += 1
                    a = admissible.index(expert) if rng.random() >= noise else int(rng.integers(len(admissible)))
                    obs, _, terminated, truncated, info = env.step(a)
                    done = terminated or truncated
        finally:
            env.close()

    return Stream(name=f"{env_id}(expert, seed={seed})", labels=labels, make_iter=it, length=n)
