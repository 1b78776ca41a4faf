"""Bilingual post sentiment in [-1, 1], cheap enough for the hot path (pure, deterministic).

- **English** (and anything without Chinese characters): VADER's ``compound`` score, computed by
  :func:`vader_compound`, a re-implementation of ``SentimentIntensityAnalyzer.polarity_scores``
  that returns the *same* number (property-tested against the library) ~5-10x faster: texts with no
  lexicon word are 0 after one pass of dict lookups (no emoji rewrite, no rule checks), ASCII texts
  skip the emoji scan, and the rules run over one pre-lowered token list.  The rare
  contrastive-"but" rule is delegated to the library itself.
- **Chinese**: SnowNLP costs ~5-10 ms a post.  Instead, a logistic regression over character
  unigrams and bigrams and Weibo emoticon codes (``[哈哈]``, ``[怒]``) trained offline
  (:mod:`studies.train_zh_sentiment`, weights in ``data/zh_sentiment.json``, ~0.4 MB) on
  SnowNLP's review corpus, ChineseNlpCorpus' food-delivery and hotel reviews and half of a real
  Weibo sample (``data/real/weibo_senti_train.csv``; the other half is held out) scores a post with
  a few dozen dict lookups.  Its origin is shifted so neutral community talk sits near 0.
- **Mixed** texts are split by script; each part is scored by its model and the two are averaged
  weighted by length (Han characters vs. ``ZH_CHARS_PER_WORD`` per other word).
- Emoji: VADER reads many through their names (🎉 "party popper" is positive); the common ones
  it misses or misreads (👍 🚀 🙏 👎 😡 💔 ...) get a valence of their own (:data:`EMOJI_VALENCE`).
- Empty text (or only whitespace) is 0.  Only the first ``MAX_CHARS`` characters are read, which
  bounds the cost of a 10,000-character post.

Short posts repeat a lot ("+1", "thanks!", "恭喜"), so :func:`sentiment` keeps an LRU cache of
texts up to ``CACHE_TEXT_CHARS`` characters; the cache never changes a result.

>>> sentiment("This event was great, thanks for the amazing talks!")
0.902
>>> sentiment("这次活动太棒了，感谢大家的精彩分享！")  # SnowNLP: P(positive) 0.996
0.8991
>>> sentiment("这个社群越来越无聊了，广告太多，我要退群了。")  # SnowNLP: 0.007
-0.7939
>>> sentiment(""), sentiment("   ")
(0.0, 0.0)
"""

from __future__ import annotations

import functools
import json
import math
import re
import string
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vaderSentiment import vaderSentiment as _vader

# Chinese features, shared with the offline trainer (studies/train_zh_sentiment.py imports them).
FOLD_TABLE: dict[int, int | str | None] = {c: c - 0xFEE0 for c in range(0xFF01, 0xFF5F)}  # full-width → ASCII
FOLD_TABLE.update({ord(d): "0" for d in "123456789１２３４５６７８９０"})  # digits carry no tone
FOLD_TABLE.update({ord(w): None for w in " \t\r\n\x0b\x0c\u3000"})


def normalise(text: str) -> str:
    """Fold full-width forms and digits, lowercase Latin, drop whitespace."""
    return text.translate(FOLD_TABLE).lower()


EMOTICON = re.compile(r"\[[\u4e00-\u9fffA-Za-z]{1,8}\]")
"""Weibo emoticon codes ([哈哈], [怒], [doge]): whole features of their own (as a reader sees them)."""


def features(text: str) -> list[str]:
    """Character unigrams then bigrams of the normalised text, then its emoticon codes (duplicates
    kept, order stable)."""
    t = normalise(text)
    return [*t, *(t[i : i + 2] for i in range(len(t) - 1)), *EMOTICON.findall(text)]


__all__ = ["MAX_CHARS", "sentiment", "split_scripts", "vader_compound", "zh_sentiment"]

MAX_CHARS = 1000
"""Characters of a post that are scored: sentiment is decided early, and cost stays bounded."""
CACHE_TEXT_CHARS = 280
"""Longer texts are rarely repeated: they bypass the cache, so it holds ≤ ~20 MB even when adversarial."""
CACHE_SIZE = 32_768
ZH_CHARS_PER_WORD = 1.7
"""Weight of one non-Chinese word relative to one Han character when averaging a mixed text."""
DATA = Path(__file__).parent / "data" / "zh_sentiment.json"

# --------------------------------------------------------------------------------------------------
# English: VADER compound, same result, fewer cycles
# --------------------------------------------------------------------------------------------------

_SIA = _vader.SentimentIntensityAnalyzer()
_LEX: dict[str, float] = _SIA.lexicon
_EMOJI: dict[str, str] = _SIA.emojis
_EMOJI_CHARS = frozenset(_EMOJI)
_BOOST: dict[str, float] = _vader.BOOSTER_DICT
_SPECIAL: dict[str, float] = _vader.SPECIAL_CASES
_NEGATE = frozenset(_vader.NEGATE)
_PUNCT = string.punctuation
_N_SCALAR = _vader.N_SCALAR
_C_INCR = _vader.C_INCR
_scalar_inc_dec = _vader.scalar_inc_dec
_LEX_WORDS = _LEX.keys()
_IDIOM_WORDS = frozenset(w for key in (*_SPECIAL, *_BOOST) if " " in key for w in key.split(" "))
"""Words of VADER's multi-word idioms and boosters (``the``, ``shit``, ``kind``, ``of``, ...)."""
_normalize = _vader.normalize


def _negated(word: str) -> bool:
    return word in _NEGATE or "n't" in word


def _demojize(text: str) -> str:
    """VADER's emoji-to-description rewrite, character for character."""
    out = []
    prev_space = True
    for ch in text:
        description = _EMOJI.get(ch)
        if description is not None:
            if not prev_space:
                out.append(" ")
            out.append(description)
            prev_space = False
        else:
            out.append(ch)
            prev_space = ch == " "
    return "".join(out)


def vader_compound(text: str) -> float:
    """``SentimentIntensityAnalyzer().polarity_scores(text)["compound"]``, only faster.

    >>> vader_compound("VADER is not smart, handsome, nor funny."), vader_compound("Hiring in Berlin")
    (-0.7424, 0.0)
    """
    original = text
    if not text.isascii() and not _EMOJI_CHARS.isdisjoint(text):  # a C loop, not a Python one
        text = _demojize(text)
    text = text.strip()
    toks = []
    for word in text.split():
        stripped = word.strip(_PUNCT)
        toks.append(word if len(stripped) <= 2 else stripped)
    lows = list(map(str.lower, toks))
    lex = _LEX
    if _LEX_WORDS.isdisjoint(lows):
        return 0.0  # no lexicon word: every valence is 0, so is the compound
    if "but" in lows:
        # The contrastive rule rescales by value lookup (list.index), a quirk not worth copying.
        return float(_SIA.polarity_scores(original)["compound"])
    n = len(toks)
    capitals = sum(map(str.isupper, toks))
    is_cap_diff = 0 < n - capitals < n
    sentiments: list[float] = []
    for i in range(n):
        low = lows[i]
        if low in _BOOST or (low == "kind" and i < n - 1 and lows[i + 1] == "of") or low not in lex:
            sentiments.append(0)
            continue
        valence = lex[low]
        if low == "no" and i != n - 1 and lows[i + 1] in lex:
            valence = 0.0
        if (
            (i > 0 and lows[i - 1] == "no")
            or (i > 1 and lows[i - 2] == "no")
            or (i > 2 and lows[i - 3] == "no" and lows[i - 1] in ("or", "nor"))
        ):
            valence = lex[low] * _N_SCALAR
        if is_cap_diff and toks[i].isupper():
            valence = valence + _C_INCR if valence > 0 else valence - _C_INCR
        for start_i in range(3):
            if i > start_i and lows[i - (start_i + 1)] not in lex:
                # VADER's scalar_inc_dec, called only for a booster word (it is 0.0 for any other)
                s = (
                    _scalar_inc_dec(toks[i - (start_i + 1)], valence, is_cap_diff)
                    if lows[i - (start_i + 1)] in _BOOST
                    else 0.0
                )
                if start_i == 1 and s != 0:
                    s = s * 0.95
                if start_i == 2 and s != 0:
                    s = s * 0.9
                valence = valence + s
                valence = _negation_check(valence, lows, start_i, i)
                if start_i == 2:
                    valence = _special_idioms_check(valence, lows, i)
        if i > 1 and lows[i - 1] not in lex and lows[i - 1] == "least":
            if lows[i - 2] != "at" and lows[i - 2] != "very":
                valence = valence * _N_SCALAR
        elif i > 0 and lows[i - 1] not in lex and lows[i - 1] == "least":
            valence = valence * _N_SCALAR
        sentiments.append(valence)
    sum_s = float(sum(sentiments))
    ep = min(text.count("!"), 4) * 0.292
    qm_count = text.count("?")
    qm = (qm_count * 0.18 if qm_count <= 3 else 0.96) if qm_count > 1 else 0
    amplifier = ep + qm
    if sum_s > 0:
        sum_s += amplifier
    elif sum_s < 0:
        sum_s -= amplifier
    return round(_normalize(sum_s), 4)


def _negation_check(valence: float, lows: list[str], start_i: int, i: int) -> float:
    if start_i == 0:
        if _negated(lows[i - 1]):
            valence = valence * _N_SCALAR
    elif start_i == 1:
        if lows[i - 2] == "never" and (lows[i - 1] == "so" or lows[i - 1] == "this"):
            valence = valence * 1.25
        elif lows[i - 2] == "without" and lows[i - 1] == "doubt":
            pass
        elif _negated(lows[i - 2]):
            valence = valence * _N_SCALAR
    else:
        if (lows[i - 3] == "never" and (lows[i - 2] == "so" or lows[i - 2] == "this")) or (
            lows[i - 1] == "so" or lows[i - 1] == "this"
        ):
            valence = valence * 1.25
        elif lows[i - 3] == "without" and (lows[i - 2] == "doubt" or lows[i - 1] == "doubt"):
            pass
        elif _negated(lows[i - 3]):
            valence = valence * _N_SCALAR
    return valence


def _special_idioms_check(valence: float, lows: list[str], i: int) -> float:
    """VADER's idiom rule.  A phrase can be a key only if each of its words is a word of a key
    (:data:`_IDIOM_WORDS`; tokens have no spaces), so each group of phrases below is built and
    looked up only when a word all its phrases contain is one: the same valence, mostly without
    the ten f-strings."""
    w3, w2, w1, w0 = lows[i - 3], lows[i - 2], lows[i - 1], lows[i]
    idiom = _IDIOM_WORDS
    if w1 in idiom or w2 in idiom:  # every phrase of this loop and the booster loop has w1 or w2
        for seq in (f"{w1} {w0}", f"{w2} {w1} {w0}", f"{w2} {w1}", f"{w3} {w2} {w1}", f"{w3} {w2}"):
            if seq in _SPECIAL:
                valence = _SPECIAL[seq]
                break
    n = len(lows)
    if w0 in idiom:
        if n - 1 > i:
            seq = f"{w0} {lows[i + 1]}"
            if seq in _SPECIAL:
                valence = _SPECIAL[seq]
        if n - 1 > i + 1:
            seq = f"{w0} {lows[i + 1]} {lows[i + 2]}"
            if seq in _SPECIAL:
                valence = _SPECIAL[seq]
    if w2 in idiom:
        for seq in (f"{w3} {w2} {w1}", f"{w3} {w2}", f"{w2} {w1}"):
            if seq in _BOOST:
                valence = valence + _BOOST[seq]
    return valence


# --------------------------------------------------------------------------------------------------
# Chinese: character n-gram logistic regression
# --------------------------------------------------------------------------------------------------


def _load_model(path: Path) -> tuple[float, dict[str, float]]:
    doc: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    if doc.get("format") != 1:
        raise ValueError(f"{path}: unknown model format {doc.get('format')!r}")
    return float(doc["bias"]) - float(doc["neutral_offset"]), doc["weights"]


_ZH_BIAS, _ZH_WEIGHTS = _load_model(DATA)

_FOLD_FREE = re.compile(
    "[\u3001-\u303f\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
    "\uff01-\uff0f\uff1a-\uff20\uff3b-\uff40\uff5b-\uffef]*"
)
"""Texts made only of Han, CJK punctuation and full-width *punctuation* (the Chinese part of almost
every post): :func:`normalise` maps each of their characters to itself or to a distinct ASCII
punctuation mark that such a text cannot contain, so its features are in one-to-one correspondence
with the raw text's — no translation needed (``str.translate`` with a dict costs ~1/5 of the score)."""


def _milli(weights: dict[str, float]) -> dict[str, int]:
    """Weights in thousandths, as integers (the model file rounds them to 3 decimals): an integer
    sum is exact in any order, so the n-grams can be de-duplicated with a set (faster than an
    ordered dict) and the score is still the same in every process, whatever PYTHONHASHSEED."""
    return {f: round(w * 1000) for f, w in weights.items()}


def _raw_form(weights: dict[str, int]) -> dict[str, int]:
    """The weights keyed by the raw (unfolded) forms of their features, for :data:`_FOLD_FREE` texts:
    each ASCII punctuation mark as its full-width form (``好!`` → ``好！``)."""
    unfold = {c: chr(ord(c) + 0xFEE0) for c in string.punctuation}
    return {"".join(unfold.get(c, c) for c in f): w for f, w in weights.items()}


_UTF32 = "utf-32-le" if sys.byteorder == "little" else "utf-32-be"  # native: memoryview casts read it


def _codes(text: str) -> memoryview:
    """``text``'s code points as native 4-byte integers: ``cast("I")`` reads its characters and
    ``cast("Q")`` over 8 bytes two neighbours, so its n-grams are read as integers in C — no
    string object per n-gram (1-character strings outside Latin-1 are allocated and hashed each
    time).  Lone surrogates are kept as their code points, as ``str`` holds them."""
    return memoryview(text.encode(_UTF32, "surrogatepass"))


def _bigram_codes(codes: memoryview) -> set[int]:
    """The distinct bigrams of a text as integers (:func:`_codes`): those starting at even
    positions (8-byte words from byte 0), then at odd ones (from byte 4)."""
    n = len(codes) // 4
    grams = set(codes[: n // 2 * 8].cast("Q"))
    grams.update(codes[4 : 4 + (n - 1) // 2 * 8].cast("Q"))
    return grams


def _by_length(weights: dict[str, int]) -> tuple[dict[int, int], dict[int, int]]:
    """(unigram weights, bigram weights), keyed by their :func:`_codes` integers: two dicts, so the
    ~2k unigrams are looked up in a small dict that stays in the CPU cache (the sum is memory-bound:
    a third faster over a small dict).  A text's n-grams map one to one to these integers, so the
    sum is that of the string features."""
    return {_codes(f).cast("I")[0]: w for f, w in weights.items() if len(f) == 1}, {
        _codes(f).cast("Q")[0]: w for f, w in weights.items() if len(f) == 2
    }


_ZH_MILLI = _milli(_ZH_WEIGHTS)
_ZH_UNI, _ZH_BI = _by_length(_ZH_MILLI)
_ZH_RAW_UNI, _ZH_RAW_BI = _by_length(_raw_form(_ZH_MILLI))


def zh_sentiment(text: str, emoticons: Sequence[str] = ()) -> float:
    """Chinese text → [-1, 1]: ``2·P(positive) − 1`` of the n-gram model, neutral at ~0.
    ``emoticons``: the post's Weibo emoticon codes (``[哈哈]``), features of their own.

    >>> round(zh_sentiment("太失望了，浪费时间"), 2) < 0 < round(zh_sentiment("感谢分享，很赞"), 2)
    True
    """
    if _FOLD_FREE.fullmatch(text) is not None:
        t, uni, bi = text, _ZH_RAW_UNI, _ZH_RAW_BI  # the same features, in raw form (see _FOLD_FREE)
    else:
        t, uni, bi = text.translate(FOLD_TABLE).lower(), _ZH_UNI, _ZH_BI
    if not t and not emoticons:
        return 0.0
    # Binary features: each n-gram counts once, and each emoticon code (keyed as written; codes have
    # 3+ characters, so they never collide with an n-gram).
    codes = _codes(t)
    milli = sum(filter(None, map(uni.get, set(codes.cast("I"))))) + sum(
        filter(None, map(bi.get, _bigram_codes(codes)))
    )
    if emoticons:
        milli += sum(filter(None, map(_ZH_MILLI.get, set(emoticons))))
    return math.tanh((_ZH_BIAS + milli / 1000) / 2)


# --------------------------------------------------------------------------------------------------
# Dispatch
# --------------------------------------------------------------------------------------------------

EMOJI_VALENCE: dict[str, float] = {
    "👍": 0.5, "👏": 0.6, "🙏": 0.5, "🚀": 0.5, "💯": 0.5, "🔥": 0.4, "🤝": 0.4, "💪": 0.4,
    "👎": -0.5, "😡": -0.7, "🤬": -0.8, "💔": -0.6, "🙄": -0.4, "😤": -0.4, "🤦": -0.4, "😒": -0.4,
    "🤮": -0.7, "💩": -0.5,
}  # fmt: skip
"""Emoji common in community posts that VADER scores 0 or with the wrong sign ("fire": -0.34,
"broken heart": +0.27).  Each counts as one word of its own tone; the rest of the text is scored
as usual."""
_EMOJI_OVERRIDE = re.compile("[" + "".join(EMOJI_VALENCE) + "]")
_MAY_BE_OVERRIDE = re.compile(f"[{min(EMOJI_VALENCE)}-{max(EMOJI_VALENCE)}]")
"""Pre-check for :data:`_EMOJI_OVERRIDE`: one range, tested per character ~4× faster than the
class of 18 emoji outside the BMP (which the regex engine compares one by one)."""

_CJK = re.compile(r"([\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef]+)")
"""Runs of Chinese: Han ideographs with CJK punctuation and full-width forms (captured, so one
``split`` gives the runs and what lies between them)."""
_NOT_HAN = re.compile(r"[\u3000-\u303f\uff00-\uffef]+")


def split_scripts(text: str) -> tuple[str, str, int]:
    """(Chinese part, other part, number of Han characters).

    >>> split_scripts("Honestly 很失望，真的很 frustrating")
    ('很失望，真的很', 'Honestly   frustrating', 6)
    """
    pieces = _CJK.split(text)  # other, Chinese, other, ..., other: one pass for findall and sub
    zh = "".join(pieces[1::2])
    return zh, " ".join(pieces[::2]), len(zh) - sum(map(len, _NOT_HAN.findall(zh)))


def _score(text: str) -> float:
    # Weibo emoticon codes the Chinese model knows ([哈哈], [doge]); other brackets are just text.
    codes = [c for c in EMOTICON.findall(text) if c in _ZH_WEIGHTS] if "[" in text else []
    if text.isascii() and not codes:
        return vader_compound(text)
    parts: list[tuple[float, float]] = []  # (score, weight) of each script / emoji part
    found = _EMOJI_OVERRIDE.findall(text) if _MAY_BE_OVERRIDE.search(text) is not None else None
    if found:
        text = _EMOJI_OVERRIDE.sub(" ", text)
        parts.append((sum(EMOJI_VALENCE[e] for e in found) / len(found), ZH_CHARS_PER_WORD * len(found)))
    zh, other, han = split_scripts(text)
    if han or codes:
        parts.append((zh_sentiment(zh, codes), float(han) + ZH_CHARS_PER_WORD * len(codes)))
        text = EMOTICON.sub(" ", other) if codes else other
    if not parts:
        return vader_compound(text)
    words = len(text.split())
    if words:
        parts.append((vader_compound(text), ZH_CHARS_PER_WORD * words))
    return round(sum(s * w for s, w in parts) / sum(w for _, w in parts), 4)


_cached_score = functools.lru_cache(maxsize=CACHE_SIZE)(_score)


def sentiment(text: str) -> float:
    """Post text → tone in [-1, 1] (English, Chinese or both; 0 for empty), rounded to 4 places.

    >>> sentiment("恭喜！Amazing 🎉") > 0.3, sentiment("👍"), sentiment("👎👎")
    (True, 0.5, -0.5)
    """
    if len(text) > MAX_CHARS:
        return _score(text[:MAX_CHARS])
    if len(text) <= CACHE_TEXT_CHARS:
        return _cached_score(text)
    return _score(text)


def cache_info() -> Any:
    """Hits and misses of the text cache (for benchmarks)."""
    return _cached_score.cache_info()


def clear_cache() -> None:
    _cached_score.cache_clear()
