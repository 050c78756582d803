"""A word-level tokenizer built locally from an env's own text, saved as a transformers tokenizer.

There are no hub tokenizers on this machine, and text envs such as BabyAI-Text use a closed vocabulary of a
few dozen words, so one token per word (and per punctuation mark) keeps prompts short (prompt length
dominates the cost of every call). Whitespace only separates tokens: "Action 0: " + "turn left" encodes to
the same ids whether the prompt and the action are tokenized together or apart. The hf backend reads prompt
+ action as one text (`londi.lm.scoring`), which for this tokenizer is the split at the prompt's end, so the
shipped models score the very ids they were trained on (tests/test_lm_shipped_scoring.py).

    >>> tok = build_word_tokenizer(prompts)          # a transformers PreTrainedTokenizerFast
    >>> tok.save_pretrained(out_dir)                  # AutoTokenizer.from_pretrained(out_dir) loads it
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from collections.abc import Iterable
from typing import Any

from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers
from transformers import PreTrainedTokenizerFast

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<s>", "</s>"
SPECIAL_TOKENS = (PAD, UNK, BOS, EOS)

# A token is a run of word characters or a single other non-space character ("forward," -> "forward", ",").
_TOKEN_PATTERN = r"\w+|[^\w\s]"
_TOKEN_RE = re.compile(_TOKEN_PATTERN)

# Words every BabyAI-Text prompt can contain, so a vocabulary built from a few episodes still covers rare
# colours, objects, door states and distances (minigrid's COLOR_NAMES / OBJECT_TO_IDX, GLAM's templates).
BABYAI_WORDS: tuple[str, ...] = tuple(
    "Possible action of the agent Goal Observation Action You see carry a an the wall step steps left right "
    "forward turn go pick up drop toggle to put next open door key ball box locked closed then after and "
    "red green blue purple yellow grey Named".split()
) + tuple(str(i) for i in range(0, 32)) + (",", ":", ".")


COLORS = ("red", "green", "blue", "purple", "yellow", "grey")
OBJECTS = ("key", "ball", "box", "door")
# "red ball" -> one token "red_ball" (merge_objects): a goal's object then matches its description by one
# identical token, which a small model might learn sooner than binding two words (docs/design.md, results/distill.md).
OBJECT_PHRASES = tuple((f"{c} {o}", f"{c}_{o}") for c in COLORS for o in OBJECTS)


# "2 steps left" -> one token "left_2" (merge_offsets): an object's place is then two tokens whose embeddings
# can hold the offset, where words leave the model to bind a number to the direction after it. Distances in
# a 7x7 view are 1-6; the env writes "1 step" and "N steps".
OFFSET_PHRASES = tuple((f"{n} step{'s' if n > 1 else ''} {d}", f"{d}_{n}")
                       for n in range(1, 10) for d in ("left", "right", "forward"))


# compact: the words a BabyAI-Text prompt repeats without information go, and each object and each place becomes
# one token: "You see a red ball 2 steps right and 3 steps forward" -> "red_ball right2_f3". The fixed action
# list ("Possible action of the agent: ... \n") is dropped too (the candidates are scored anyway). A prompt is
# then ~3x shorter (~33 tokens instead of ~98 without history), so a call and a training step cost ~3x less.
def _steps(n: int) -> str:
    return f"{n} step{'s' if n > 1 else ''}"


PLACE_PHRASES = tuple((f"{_steps(n)} {d} and {_steps(m)} forward", f"{d}{n}_f{m}")
                      for n in range(1, 10) for d in ("left", "right") for m in range(1, 10)) + tuple(
    (f"{_steps(n)} {d}", f"{d}{n}") for n in range(1, 10) for d in ("left", "right")) + tuple(
    (f"{_steps(m)} forward", f"f{m}") for m in range(1, 10))
COMPACT_DROPS = ((r"Possible action of the agent:[^\n]*\n", ""), ("Goal of the agent:", "Goal:"), ("You see a ", ""))


def text_normalizer(merge_objects: bool = False, merge_offsets: bool = False, compact: bool = False) -> Any:
    """The tokenizer's normalizer for these options (a `tokenizers` Normalizer), or None for plain words.

    It is saved with the tokenizer, so every later load (HFPolicy included) rewrites the env's plain text the
    same way, and `split_words` counts tokens with the very same rules.
    """
    if compact and merge_offsets:
        raise ValueError("compact already makes each place one token; do not combine it with merge_offsets")
    rules: list[Any] = []
    if compact:
        rules += [normalizers.Replace(Regex(a) if a.startswith("Possible") else a, b) for a, b in COMPACT_DROPS]
    if merge_objects or compact:
        rules += [normalizers.Replace(a, b) for a, b in OBJECT_PHRASES]
    if merge_offsets:
        rules += [normalizers.Replace(a, b) for a, b in OFFSET_PHRASES]
    if compact:  # longest phrases first: "2 steps right and 3 steps forward" before "2 steps right"
        rules += [normalizers.Replace(a, b) for a, b in PLACE_PHRASES]
    return normalizers.Sequence(rules) if rules else None


def split_words(text: str, merge_objects: bool = False, merge_offsets: bool = False, compact: bool = False) -> list[str]:
    """The tokens this tokenizer produces for `text` (words and single punctuation marks, spaces dropped)."""
    norm = _normalizer(merge_objects, merge_offsets, compact)
    return _TOKEN_RE.findall(norm.normalize_str(text) if norm is not None else text)


@functools.lru_cache(maxsize=8)
def _normalizer(merge_objects: bool, merge_offsets: bool, compact: bool) -> Any:
    return text_normalizer(merge_objects, merge_offsets, compact)


def _merged_words(merge_objects: bool, merge_offsets: bool, compact: bool) -> tuple[str, ...]:
    pairs = ((OBJECT_PHRASES if merge_objects or compact else ()) + (OFFSET_PHRASES if merge_offsets else ())
             + (PLACE_PHRASES if compact else ()))
    return tuple(b for _, b in pairs) + (("Goal",) if compact else ())


def build_vocab(texts: Iterable[str], extra_words: Iterable[str] = BABYAI_WORDS, min_count: int = 1,
                merge_objects: bool = False, merge_offsets: bool = False, compact: bool = False) -> list[str]:
    """Special tokens first, then every word of `extra_words` and of `texts` seen at least `min_count` times.

    The order is deterministic (specials, then words sorted by descending count, then alphabetically), so
    the same texts always give the same ids.
    """
    counts: Counter[str] = Counter()
    for t in texts:
        counts.update(split_words(t, merge_objects, merge_offsets, compact))
    for w in tuple(extra_words) + _merged_words(merge_objects, merge_offsets, compact):
        counts[w] += min_count
    words = sorted((w for w, c in counts.items() if c >= min_count and w not in SPECIAL_TOKENS),
                   key=lambda w: (-counts[w], w))
    return list(SPECIAL_TOKENS) + words


def word_tokenizer_from_vocab(vocab: list[str], model_max_length: int = 1024, merge_objects: bool = False,
                              merge_offsets: bool = False, compact: bool = False) -> PreTrainedTokenizerFast:
    """Wrap a word list (specials first, as `build_vocab` returns) as a transformers fast tokenizer.

    Unknown words map to `<unk>`. No special tokens are added on encode, so `tok(prompt + action)` and
    `tok(prompt) + tok(action)` give the same ids.
    """
    missing = [s for s in SPECIAL_TOKENS if s not in vocab]
    if missing:
        raise ValueError(f"vocab lacks the special tokens {missing}; build it with build_vocab()")
    core = Tokenizer(models.WordLevel(vocab={w: i for i, w in enumerate(vocab)}, unk_token=UNK))
    norm = text_normalizer(merge_objects, merge_offsets, compact)
    if norm is not None:  # saved with the tokenizer: every later load rewrites the text the same way
        core.normalizer = norm
    # Whitespace separates pieces; each piece is then cut into words and single punctuation marks.
    core.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Split(Regex(_TOKEN_PATTERN), behavior="isolated")]
    )
    core.decoder = decoders.WordPiece(prefix="##", cleanup=False)  # joins tokens with single spaces
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        pad_token=PAD,
        unk_token=UNK,
        bos_token=BOS,
        eos_token=EOS,
        model_max_length=model_max_length,
        padding_side="right",
        clean_up_tokenization_spaces=False,
    )


def build_word_tokenizer(
    texts: Iterable[str], extra_words: Iterable[str] = BABYAI_WORDS, min_count: int = 1, model_max_length: int = 1024,
    merge_objects: bool = False, merge_offsets: bool = False, compact: bool = False,
) -> PreTrainedTokenizerFast:
    """A word-level tokenizer whose vocabulary is `extra_words` plus every word of `texts`; `merge_objects`
    makes each "<color> <object>" one token, `merge_offsets` each "<n> steps <direction>", `compact` drops
    the fixed words and makes each object and each place ("2 steps right and 3 steps forward") one token."""
    vocab = build_vocab(texts, extra_words, min_count, merge_objects, merge_offsets, compact)
    return word_tokenizer_from_vocab(vocab, model_max_length, merge_objects, merge_offsets, compact)
