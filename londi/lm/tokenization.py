"""A word-level tokenizer built locally from an env's own text, saved as a transformers tokenizer.

There are no hub tokenizers on this machine, and text envs such as BabyAI-Text use a closed vocabulary of a
few dozen words, so one token per word (and per punctuation mark) keeps prompts short (prompt length
dominates the cost of every call). Whitespace only separates tokens: "Action 0: " + "turn left" encodes to
the same ids whether the prompt and the action are tokenized together or apart, which is what makes the hf
backend's candidate scoring see exactly the sequences the model was trained on.

    >>> tok = build_word_tokenizer(prompts)          # a transformers PreTrainedTokenizerFast
    >>> tok.save_pretrained(out_dir)                  # AutoTokenizer.from_pretrained(out_dir) loads it
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

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
    "red green blue purple yellow grey".split()
) + tuple(str(i) for i in range(0, 32)) + (",", ":", ".")


COLORS = ("red", "green", "blue", "purple", "yellow", "grey")
OBJECTS = ("key", "ball", "box", "door")
# "red ball" -> one token "red_ball" (merge_objects): a goal's object then matches its description by one
# identical token, which a small model might learn sooner than binding two words (docs/design.md, results/distill.md).
OBJECT_PHRASES = tuple((f"{c} {o}", f"{c}_{o}") for c in COLORS for o in OBJECTS)
_PHRASE_RE = re.compile(r"\b(" + "|".join(COLORS) + r") (" + "|".join(OBJECTS) + r")\b")


# "2 steps left" -> one token "left_2" (merge_offsets): an object's place is then two tokens whose embeddings
# can hold the offset, where words leave the model to bind a number to the direction after it. Distances in
# a 7x7 view are 1-6; the env writes "1 step" and "N steps".
OFFSET_PHRASES = tuple((f"{n} step{'s' if n > 1 else ''} {d}", f"{d}_{n}")
                       for n in range(1, 10) for d in ("left", "right", "forward"))
_OFFSET_RE = re.compile(r"\b(" + "|".join(re.escape(a) for a, _ in OFFSET_PHRASES) + r")\b")
_OFFSETS = dict(OFFSET_PHRASES)


def merge_object_phrases(text: str) -> str:
    """The text as a `merge_objects` tokenizer sees it ("red ball" -> "red_ball")."""
    return _PHRASE_RE.sub(r"\1_\2", text)


def merge_offset_phrases(text: str) -> str:
    """The text as a `merge_offsets` tokenizer sees it ("2 steps left" -> "left_2")."""
    return _OFFSET_RE.sub(lambda m: _OFFSETS[m.group(1)], text)


def split_words(text: str, merge_objects: bool = False, merge_offsets: bool = False) -> list[str]:
    """The tokens this tokenizer produces for `text` (words and single punctuation marks, spaces dropped)."""
    if merge_objects:
        text = merge_object_phrases(text)
    if merge_offsets:
        text = merge_offset_phrases(text)
    return _TOKEN_RE.findall(text)


def build_vocab(texts: Iterable[str], extra_words: Iterable[str] = BABYAI_WORDS, min_count: int = 1,
                merge_objects: bool = False, merge_offsets: bool = False) -> list[str]:
    """Special tokens first, then every word of `extra_words` and of `texts` seen at least `min_count` times.

    The order is deterministic (specials, then words sorted by descending count, then alphabetically), so
    the same texts always give the same ids.
    """
    counts: Counter[str] = Counter()
    for t in texts:
        counts.update(split_words(t, merge_objects, merge_offsets))
    for w in extra_words:
        counts[w] += min_count
    for _, merged in (OBJECT_PHRASES if merge_objects else ()) + (OFFSET_PHRASES if merge_offsets else ()):
        counts[merged] += min_count
    words = sorted((w for w, c in counts.items() if c >= min_count and w not in SPECIAL_TOKENS),
                   key=lambda w: (-counts[w], w))
    return list(SPECIAL_TOKENS) + words


def word_tokenizer_from_vocab(vocab: list[str], model_max_length: int = 1024, merge_objects: bool = False,
                              merge_offsets: bool = False) -> PreTrainedTokenizerFast:
    """Wrap a word list (specials first, as `build_vocab` returns) as a transformers fast tokenizer.

    Unknown words map to `<unk>`. No special tokens are added on encode, so `tok(prompt + action)` and
    `tok(prompt) + tok(action)` give the same ids.
    """
    missing = [s for s in SPECIAL_TOKENS if s not in vocab]
    if missing:
        raise ValueError(f"vocab lacks the special tokens {missing}; build it with build_vocab()")
    core = Tokenizer(models.WordLevel(vocab={w: i for i, w in enumerate(vocab)}, unk_token=UNK))
    merges = (OBJECT_PHRASES if merge_objects else ()) + (OFFSET_PHRASES if merge_offsets else ())
    if merges:  # saved with the tokenizer: every later load merges the same way
        core.normalizer = normalizers.Sequence([normalizers.Replace(a, b) for a, b in merges])
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
    merge_objects: bool = False, merge_offsets: bool = False,
) -> PreTrainedTokenizerFast:
    """A word-level tokenizer whose vocabulary is `extra_words` plus every word of `texts`; `merge_objects`
    makes each "<color> <object>" one token, `merge_offsets` each "<n> steps <direction>"."""
    vocab = build_vocab(texts, extra_words, min_count, merge_objects, merge_offsets)
    return word_tokenizer_from_vocab(vocab, model_max_length, merge_objects, merge_offsets)
