"""Prompt building, one builder per env family, chosen by `TextState.family`.

Every LM backend (scoring, generation, distillation, simulated cost) turns a `TextState` into text here and
nowhere else, so the prompt a model was trained on is the prompt it is evaluated on. The prompt length
dominates the cost of a call, so each builder keeps only the last `history` steps, and drops the oldest
of those first until the prompt fits `max_tokens` (measured by `count_tokens`: pass the counter the model's
backend limits with, e.g. `HFPolicy.count_tokens`, special tokens included; the default counts
whitespace-separated words, a rough stand-in).

    >>> build_prompt(state)                      # registry lookup by state.family, default settings
    >>> get_prompt_builder("babyai_text", history=0, max_tokens=256, count_tokens=tok_count).build(state)
"""

from __future__ import annotations

import abc
import inspect
import re
from collections.abc import Callable, Sequence

from londi.lm.state import Step, TextState

TokenCounter = Callable[[str], int]


def count_words(text: str) -> int:
    """Default token counter: whitespace-separated words (no tokenizer needed; underestimates BPE tokens)."""
    return len(text.split())


class PromptBuilder(abc.ABC):
    """Formats a state (plus its recent history) as one prompt string that ends where the action goes.

    `history`: how many past (observation, action) steps to show. `history_chunk` (C): with C = 1 the
    window slides by one step per step (the last `history` steps); with C > 1 it moves C steps at a time,
    so a prompt shows between `history` and `history + C - 1` past steps and the prompts of C consecutive
    steps extend one another (one training sequence can then teach all C; see `londi.lm.distill`).
    `max_tokens`: drop the oldest shown steps until `count_tokens(prompt) <= max_tokens` (the current
    observation is always kept, even if it alone is longer: the backend decides; `HFPolicy` refuses such a
    prompt with an error that names the fix, since cutting it would drop its head, the goal or the task).
    """

    family: str = ""

    def __init__(self, history: int = 2, max_tokens: int | None = None, count_tokens: TokenCounter | None = None,
                 history_chunk: int = 1):
        if history < 0:
            raise ValueError(f"history must be >= 0 (number of past steps in the prompt), got {history}")
        if history_chunk < 1:
            raise ValueError(f"history_chunk must be >= 1 (steps the history window moves at once), got {history_chunk}")
        self.history = history
        self.history_chunk = history_chunk
        self.max_tokens = max_tokens
        self.count_tokens = count_tokens or count_words

    @property
    def history_needed(self) -> int:
        """Past steps a state must carry for this builder (what an `EpisodeHistory` must keep)."""
        return self.history + self.history_chunk - 1 if self.history > 0 else 0

    def steps_shown(self, state: TextState, history: int | None = None) -> int:
        """How many past steps the prompt of `state` shows (before `max_tokens` drops any)."""
        n = self.history if history is None else history
        t = max(state.step, len(state.history))  # states built by hand may carry history without a step count
        if n <= 0:
            return 0
        shown = t if t <= n else n + (t - n) % self.history_chunk
        if shown > len(state.history):
            raise ValueError(
                f"the prompt shows {shown} past steps at episode step {t}, but the state carries only "
                f"{len(state.history)}: keep at least {self.history_needed} steps of history where the state is "
                "built (EpisodeHistory(max_steps=...), SwitchingEnv(history_steps=...))"
            )
        return shown

    def build(self, state: TextState, history: int | None = None) -> str:
        """The prompt for `state`, with the past steps of the history window (default size: the builder's)
        that fit in `max_tokens`."""
        n = self.steps_shown(state, history)
        steps = tuple(state.history[-n:]) if n > 0 else ()
        while True:
            text = self.format(state, steps)
            if self.max_tokens is None or not steps or self.count_tokens(text) <= self.max_tokens:
                return text
            steps = steps[1:]

    @abc.abstractmethod
    def format(self, state: TextState, steps: Sequence[Step]) -> str:
        """Render exactly these past `steps` then the current state; the next action is left blank."""

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(history={self.history}, history_chunk={self.history_chunk}, "
                f"max_tokens={self.max_tokens})")


_REGISTRY: dict[str, type[PromptBuilder]] = {}


def register_prompt_builder(family: str) -> Callable[[type[PromptBuilder]], type[PromptBuilder]]:
    """Class decorator: make `cls` the builder for states whose `family` is `family`."""

    def deco(cls: type[PromptBuilder]) -> type[PromptBuilder]:
        cls.family = family
        _REGISTRY[family] = cls
        return cls

    return deco


def prompt_families() -> list[str]:
    return sorted(_REGISTRY)


def get_prompt_builder(family: str, **kwargs) -> PromptBuilder:
    """A new builder for `family` (kwargs: history, history_chunk, max_tokens, count_tokens, and the
    family's own options, such as BabyAI-Text's `named_objects`)."""
    try:
        cls = _REGISTRY[family]
    except KeyError:
        raise KeyError(
            f"no prompt builder for env family {family!r}; registered: {prompt_families()}. "
            "Register one with @londi.lm.prompts.register_prompt_builder(family)."
        ) from None
    known = set(inspect.signature(cls.__init__).parameters) - {"self"}
    unknown = sorted(set(kwargs) - known)
    if unknown:
        raise TypeError(f"the {family} prompt builder has no option {unknown}; it takes {sorted(known)}")
    return cls(**kwargs)


def build_prompt(
    state: TextState,
    history: int | None = None,
    max_tokens: int | None = None,
    count_tokens: TokenCounter | None = None,
    history_chunk: int = 1,
) -> str:
    """One-shot helper: the prompt for `state` from its family's builder (default history if None)."""
    builder = get_prompt_builder(state.family, max_tokens=max_tokens, count_tokens=count_tokens,
                                 history_chunk=history_chunk)
    return builder.build(state, history=history)


def _descriptions(descriptions: Sequence[str] | None, obs: str) -> list[str]:
    """Description list of a BabyAI-Text observation; falls back to the obs lines when info had none."""
    if descriptions is not None:
        return list(descriptions)
    return [ln.strip() for ln in obs.splitlines() if ln.strip() and not ln.startswith("Goal of the agent")]


_COLOR = r"(red|green|blue|purple|yellow|grey)"
# An object the mission refers to: "the red ball", "a key", "the door" (colour optional).
_MISSION_OBJECT = re.compile(r"\b(?:the|a|an) (?:" + _COLOR + r" )?(key|ball|box|door)\b")
# A description of an object: "You see a locked red door 2 steps forward", "You carry a blue key".
_DESCRIBED_OBJECT = re.compile(r"^You (see|carry) an? (?:(?:open|closed|locked) )?" + _COLOR + r" (key|ball|box|door)\b")


def mission_objects(mission: str) -> list[tuple[str | None, str]]:
    """(colour or None, type) of each object a BabyAI mission names, in the mission's order."""
    return [(c or None, t) for c, t in _MISSION_OBJECT.findall(mission)]


def split_named(descriptions: Sequence[str], mission: str) -> tuple[list[str], list[str]]:
    """(other descriptions, descriptions of what the mission refers to) of one BabyAI-Text observation.

    Referred to: an object the mission names (same type, and same colour where the mission gives one),
    carried or seen, and a key of the colour of a named door (what opens it). The second list is in the
    mission's order (the carried object first), then the view's; the first keeps the view's order.
    """
    wanted = mission_objects(mission)
    door_colours = {c for c, t in wanted if t == "door" and c}
    parsed = [_DESCRIBED_OBJECT.match(d) for d in descriptions]
    door_colours |= {m.group(2) for m in parsed if m and m.group(3) == "door"
                     and any(t == "door" and c in (None, m.group(2)) for c, t in wanted)}
    other, named = [], []
    for d, m in zip(descriptions, parsed, strict=True):
        rank = None
        if m is not None:
            colour, kind = m.group(2), m.group(3)
            rank = next((i for i, (c, t) in enumerate(wanted) if t == kind and c in (None, colour)), None)
            if rank is None and kind == "key" and colour in door_colours:
                rank = len(wanted)
            if rank is not None and m.group(1) == "carry":
                rank = -1
        if rank is None:
            other.append(d)
        else:
            named.append((rank, len(named), d))
    return other, [d for _, _, d in sorted(named)]


@register_prompt_builder("babyai_text")
class BabyAITextPrompt(PromptBuilder):
    """GLAM's prompt (docs/babyai_text.md, "The prompt"), character for character by default.

    "Possible action of the agent: a1, ..., aK \\n Goal of the agent: {mission}" then per shown observation k:
    " \\n Observation k: " + each description + ", " and "\\n Action k: " + the action taken (blank for the
    current one). GLAM keeps 3 observations and 2 actions: `history=2` here (the default).

    `named_objects=True` moves the descriptions of what the mission refers to (`split_named`) out of the
    observation onto a line of their own right before the action, " \\n Named: " + each + ", ": the text is
    the same, in another order. Why: a small model trained from scratch does not learn in CPU-hours to find,
    among ~8 descriptions, the one whose object the goal names (a content look-up; results/distill.md), and
    every BabyAI move depends on it; where the line sits, the look-up becomes reading a fixed place.
    """

    def __init__(self, history: int = 2, max_tokens: int | None = None, count_tokens: TokenCounter | None = None,
                 history_chunk: int = 1, named_objects: bool = False):
        super().__init__(history, max_tokens, count_tokens, history_chunk)
        self.named_objects = named_objects

    def format(self, state: TextState, steps: Sequence[Step]) -> str:
        parts = [
            "Possible action of the agent: " + ", ".join(state.admissible_actions),
            " \n Goal of the agent: " + state.mission,
        ]
        shown = [(_descriptions(s.descriptions, s.obs), s.action) for s in steps]
        shown.append((_descriptions(state.descriptions, state.obs), ""))
        for k, (descs, action) in enumerate(shown):
            if self.named_objects:
                other, named = split_named(descs, state.mission)
                parts.append(f" \n Observation {k}: " + "".join(d + ", " for d in other)
                             + " \n Named: " + "".join(d + ", " for d in named))
            else:
                parts.append(f" \n Observation {k}: " + "".join(d + ", " for d in descs))
            parts.append(f"\n Action {k}: " + action)
        return "".join(parts)

    def __repr__(self) -> str:
        return super().__repr__()[:-1] + f", named_objects={self.named_objects})"


@register_prompt_builder("scienceworld")
class ScienceWorldPrompt(PromptBuilder):
    """Task, the recent (observation, action) steps, then the current observation (which ScienceWorld's
    env already fills with look-around and inventory). The action list is omitted by default (hundreds of
    candidates would dominate the cost; the scorer sees them as candidates anyway): `list_actions=True`
    adds it, which generation mode wants.
    """

    def __init__(self, history: int = 3, max_tokens: int | None = None, count_tokens: TokenCounter | None = None,
                 history_chunk: int = 1, list_actions: bool = False):
        super().__init__(history, max_tokens, count_tokens, history_chunk)
        self.list_actions = list_actions

    def format(self, state: TextState, steps: Sequence[Step]) -> str:
        parts = [f"Task: {state.mission.strip()}"]
        for k, s in enumerate(steps):
            parts.append(f"Observation {k}: {s.obs.strip()}")
            parts.append(f"Action {k}: {s.action}")
        k = len(steps)
        parts.append(f"Observation {k}: {state.obs.strip()}")
        if self.list_actions:
            parts.append("Possible actions: " + ", ".join(state.admissible_actions))
        parts.append(f"Action {k}: ")
        return "\n".join(parts)


@register_prompt_builder("generic")
class GenericPrompt(ScienceWorldPrompt):
    """Any other text env: the ScienceWorld layout with the possible actions listed."""

    def __init__(self, history: int = 2, max_tokens: int | None = None, count_tokens: TokenCounter | None = None,
                 history_chunk: int = 1, list_actions: bool = True):
        super().__init__(history, max_tokens, count_tokens, history_chunk, list_actions)
