"""The text stage: one analysis per post, shared by every operator that reads text.

:func:`analyze` turns a post's text into a :class:`TextAnalysis` — language by script, the
content terms the match maker compares, the topics hot-topic counting uses, and the sentiment
atmosphere and members read.  It is a deterministic pure function of the text (and of the
prefix length analysed), so replaying an operator log recomputes exactly what the worker saw.
:func:`annotate` fills ``Post.analysis`` once per post where the operators first see a batch;
an operator that finds ``analysis`` empty (local runs, tests) calls :func:`analysis_of`.

Libraries, and why (measured in ``studies/bench_text_stage.py`` and ``pulse evaluate realtext``):

* **rjieba** (jieba-rs, Rust) for Chinese words *with part-of-speech tags*: ~6 µs for a
  40-character sentence, against ~60 µs for Python jieba's ``posseg``.  Topics keep nouns,
  names, places, organisations (``n nr ns nt nz vn``) — not verbs (看到), pronouns (这么) or
  adjectives (开心).  Its 2013 dictionary lacks current vocabulary, so :data:`DOMAIN_WORDS_ZH`
  is added to a private instance (大模型 would be 大 + 模型).  One ``cut`` per post; a word's tag
  is a dictionary lookup (the same wherever the word occurs), so topic decisions are cached per
  word and ``tag`` runs only on a post with a word not seen before (:func:`_zh_topics`).
* **wordfreq** (Zipf frequencies of general English and Chinese, built from many corpora):
  tells topical words from everyday ones (``app`` 4.9, ``made`` 5.9, ``Kubernetes`` 2.3).  Its own
  ``zipf_frequency`` tokenises every lookup (with Python jieba for Chinese: ~1 s to load and
  tens of µs a call), so the word lists are read once into one dict of the words at or above
  Zipf :data:`ZIPF_FLOOR` (~95 k words, ~10 MB); rarer words count as rare.
* **No stemmer.** PyStemmer (Snowball) turns ``macOS`` into ``maco``, ``Kubernetes`` into
  ``kubernet``, ``series`` into ``seri``; the old hand-written plural rule did the same
  (``kubernete``, ``postgre``, ``sery``).  A plural is folded only when wordfreq says the
  singular is a word at least as common (``agents`` → ``agent``; ``series``, ``news``,
  ``Postgres`` stay as written).
* **lemminflect** (a dictionary of English parts of speech) says which words are only verbs,
  adjectives or adverbs, never nouns (``robust``, ``stolen``): not topics.  Its answer for every
  word it knows is derived once into ``data/en_not_nouns.txt`` (:data:`NOT_NOUNS_EN`, ~3 MB in
  memory against ~46 MB for lemminflect's own table), and a test checks it still equals
  lemminflect's, word for word.
* **VADER** (through :mod:`online_models.sentiment`) for English tone, the n-gram model there
  for Chinese.  Sentiment words are tone, not topic: strong VADER words are not topics.

English topic heuristics are hand-written (an English POS tagger costs 100 µs+ a post, over the
budget): a word is a topic candidate unless it is a stop word, a number or starts with one,
a contraction, a strong sentiment word, an everyday word (Zipf ≥ :data:`COMMON_ZIPF`), a common
verb form (-ed / -ing / -ly with Zipf ≥ 3.5 / 4.5 / 3.5, or :data:`VERBS_EN`), or a word known
only as a verb, adjective or adverb (:data:`NOT_NOUNS_EN`; a capitalised word inside a sentence
is a name all the same).  Phrases: curated
multi-word terms (:data:`PHRASES_EN`, ``Series A``–``F``) and runs of capitalised words inside a
sentence that is not in Title Case (names: ``Elon Musk``).  URLs, e-mail addresses, @mentions
(also right after a Chinese character), Weibo emoticon codes (``[哈哈]``) and reply / repost
boilerplate (``回复@x:``, ``//@x:``, ``转发微博``, ``RT @x``) are removed before any topic.

Cost bound: only the first ``max_chars`` characters are analysed (:data:`TEXT_MAX_CHARS`, the
``PULSE_TEXT_MAX_CHARS`` setting).

>>> a = analyze("Kubernetes 1.30 on macOS: machine learning agents don't need GPUs https://x.io @bob")
>>> a.lang, a.topics
('en', ('kubernetes', 'macos', 'machine learning', 'agent', 'gpu'))
>>> analyze("回复@小王:周六在上海办大模型创业者聚会[哈哈]，开心！").topics
('上海', '大模型', '创业者', '聚会')
>>> analyze("").lang, analyze("").topics, analyze("").sentiment
('', (), 0.0)
"""

from __future__ import annotations

import functools
import operator
import re
import sys
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from online_models.sentiment import _LEX as _VADER_LEX
from online_models.sentiment import MAX_CHARS as _SENTIMENT_MAX_CHARS
from online_models.sentiment import _score
from online_models.sentiment import sentiment as _sentiment
from online_models.text_features import STOP_WORDS_EN, STOP_WORDS_ZH, extract_terms

__all__ = [
    "STOP_TOPICS_EN",
    "TEXT_MAX_CHARS",
    "TextAnalysis",
    "analysis_of",
    "analyze",
    "annotate",
    "informativeness",
    "tag_topic",
    "topics_with_tags",
    "zipf",
]

DATA = Path(__file__).resolve().parent / "data"

TEXT_MAX_CHARS = 500
"""Characters of a post analysed (default of ``PULSE_TEXT_MAX_CHARS``): a typical post (≤ 300
characters) whole, and the longest valid one (10,000) in ≤ ~1 ms; what a post is about is said
early (measured: ``python -m studies.bench_text_stage``)."""
CACHE_TEXT_CHARS = 280
CACHE_SIZE = 32_768
MAX_TOPICS = 16
MAX_TOPIC_CHARS = 40
ZIPF_FLOOR = 2.5
QUESTION_DAMPING = 0.5
"""A question's tone counts half: its tone words say what is asked for ("the best editor?", "any
good meetups?"), not how the asker feels (measured on Ask HN titles: 35 % had |s| > 0.3)."""
COMMON_ZIPF = 5.5
"""English words at least this common (``made``, ``show``, ``new``) are never topics on their own."""

# --------------------------------------------------------------------------------------------------
# Word frequencies (wordfreq)
# --------------------------------------------------------------------------------------------------


def _load_zipf() -> dict[str, float]:
    """wordfreq's Zipf values of the words above :data:`ZIPF_FLOOR`, in English and Chinese.

    Read bucket by bucket from wordfreq's own list files (its documented "cBpack": a gzipped
    msgpack array of a header and buckets of words, one centibel apart, most frequent first) and
    stopped at the floor: ``wordfreq.get_frequency_list`` decodes each whole list at once, and
    the freed words left the heap fragmented: 52 MB more RSS in every worker for the ~120,000
    words kept, against 33 MB this way (same table).
    """
    import gzip

    import msgpack
    import wordfreq

    files = wordfreq.available_languages("best")
    table: dict[str, float] = {}
    for lang in ("zh", "en"):  # English last: a Latin token in the Chinese list keeps its English value
        with gzip.open(files[lang], "rb") as f:
            unpacker = msgpack.Unpacker(f, raw=False)
            buckets = unpacker.read_array_header() - 1
            header = unpacker.unpack()
            if not isinstance(header, dict) or header.get("format") != "cB" or header.get("version") != 1:
                raise ValueError(f"unexpected wordfreq list header in {files[lang]}: {header!r}")
            for index in range(buckets):
                z = round(9.0 - index / 100.0, 2)  # buckets are centibels below frequency 1
                if z < ZIPF_FLOOR:
                    break
                for word in unpacker.unpack():
                    table[sys.intern(word)] = z
    return table


_ZIPF = _load_zipf()


def zipf(word: str) -> float:
    """wordfreq's Zipf frequency of a lower-case word (0 below :data:`ZIPF_FLOOR`).

    >>> zipf("the") > zipf("app") > zipf("kubernetes"), zipf("上海") > zipf("大模型")
    (True, True)
    """
    return _ZIPF.get(word, 0.0)


def informativeness(term: str) -> float:
    """How much a shared term says, in [0.1, 1]: 1 for rare words, little for everyday ones.

    Phrases (several words) are as informative as their rarest word or more.

    >>> informativeness("kubernetes"), informativeness("make") < 0.3
    (1.0, True)
    """
    z = min((zipf(w) for w in term.split()), default=0.0) if " " in term else zipf(term)
    return max(0.1, min(1.0, (6.0 - z) / 2.5))


def _words(text: str, sep: str | None = None) -> list[str]:
    return text.split(sep)


# --------------------------------------------------------------------------------------------------
# Vocabulary
# --------------------------------------------------------------------------------------------------

DOMAIN_WORDS_ZH: tuple[str, ...] = (
    "大模型", "智能体", "具身智能", "多模态", "向量数据库", "算力", "出海", "跨境电商", "独立站",
    "种子轮", "天使轮", "小程序", "低代码", "工作流", "开源", "合伙人", "联合创始人", "创业者",
    "路演", "独角兽", "私域", "副业", "降本增效", "数字化", "新能源", "机器人", "短视频", "人工智能",
    "机器学习", "深度学习", "自动驾驶", "芯片", "云原生", "元宇宙", "区块链", "直播带货",
)  # fmt: skip
"""Startup and technology words jieba's dictionary splits or lacks (大模型 → 大 + 模型)."""
DOMAIN_WORD_FREQ = 20_000

STOP_TOPICS_EN: frozenset[str] = frozenset(
    STOP_WORDS_EN
    | set(
        _words("""
        actually again ago already always another around back best better big come coming day days
        did done doing easy even feel find first get give go going good got great guy guys hear idea
        ideas just keep know last let lot lots love make many maybe much never nice now ok okay
        people pretty quick really right said say see seem share sure take talk tell thing things
        think time times today tomorrow tonight tried trying use used using week weeks well went work
        working worth year years yes yesterday anymore also else etc via vs versus less least lot
        little long low high old part place point real set small start thing top true way ways
        whole world yet able etc each here there why how what which who whom whose
        i'm i've i'll i'd you're you've we're we've they're it's that's there's what's don't
        doesn't didn't isn't aren't wasn't weren't can't couldn't won't wouldn't shouldn't
        arent cant couldnt didnt doesnt dont hadnt hasnt havent im isnt ive lets shes shouldnt thats
        theres theyre wasnt werent whats wont wouldnt youre youve
        january february march april may june july august september october november december
        jan feb mar apr jun jul aug sep sept oct nov dec monday tuesday wednesday thursday friday
        saturday sunday ii iii iv vi vii viii ix xi xii behind almost due since without within upon
        among across toward towards whether though although unless instead rather quite nearly later
        soon perhaps beyond despite inside outside onto unlike like ones thing stuff kind sort type
        bit bits bunch couple piece
        rant rants thoughts
        hn ask tell launch show""")
    )
)
"""Everyday English that is never a topic: the matcher's stop list plus talk and time words (``rant``,
``thoughts``: what a post is, not what it is about), and
the ``Ask/Show/Tell/Launch HN`` prefixes of Hacker News (site boilerplate, as 转发 is on Weibo)."""

VERBS_EN: frozenset[str] = frozenset(
    _words("""
    add adds added announce announces announced announcing become becomes became build builds built
    buy buys bought call calls called change changes changed create creates created explain explains
    fix fixes fixed found gets getting gives giving goes gone happen happens happened help helps
    introduce introduces introducing introduced join joins launched launches learn learns learned
    made makes making move moves moved need needs open opens opened pay pays paid raise raises raised
    release releases released run runs running says saying sell sells sold shows showed shown start
    starts started stop stops stopped take takes took taken turn turns turned wants write writes
    wrote written hit hits kill kills killed look looks looking read reads try tries sees seen
    """)
)
"""Common verb forms of news-like titles that wordfreq's frequency alone does not catch."""

TOPIC_NOUNS_EN: frozenset[str] = frozenset(
    _words("war cancer death security fraud scam crash attack virus bug privacy freedom terror terrorism")
)
"""Nouns in VADER's lexicon that are topics all the same (other strong VADER words are tone)."""

PHRASES_EN: frozenset[str] = frozenset(
    " ".join(_words(p))
    for p in _words(
        """
    machine learning|deep learning|reinforcement learning|open source|artificial intelligence|
    neural network|neural networks|language model|language models|large language model|
    computer vision|data science|data scientist|data engineering|data center|data centers|
    climate change|self driving|self-driving cars|electric car|electric cars|electric vehicle|
    electric vehicles|social media|social network|venture capital|product market fit|
    product hunt|hacker news|silicon valley|san francisco|new york|hong kong|supreme court|
    white house|real estate|quantum computing|cloud computing|web assembly|smart contract|
    side project|side projects|remote work|startup school|y combinator|pull request|code review|
    dark mode|command line|operating system|programming language|programming languages|
    static site|web app|mobile app|app store|play store|search engine|user interface|
    credit card|pair programming|tech debt|technical debt|vector database|prompt engineering|
    fine tuning|customer discovery|go to market|design system|design systems
    """,
        "|",
    )
)
"""Curated multi-word English terms (lower case): counted as one topic, not as their words."""

_PHRASE_HEADS = frozenset(p.split()[0] for p in PHRASES_EN) | {"series"}  # and Series A-F
_MAX_PHRASE_WORDS = max(len(p.split()) for p in PHRASES_EN)
_PHRASES = PHRASES_EN | {f"series {c}" for c in "abcdef"}  # Series A-F (no other character lowers to a-f)

_COMPLEX_PREPOSITIONS = """
    in front of|on top of|in terms of|in spite of|by means of|in case of|on behalf of|in favor of|
    in favour of|in charge of|in place of|in light of|in lieu of|on account of|by way of|in view of|
    in search of|in need of|as part of|in addition to|with regard to|in regard to|in response to|
    in relation to|in contrast to|in comparison to|in comparison with|in order to|in line with|
    in touch with|at risk of"""
COMPLEX_PREPOSITIONS_EN: frozenset[tuple[str, str, str]] = frozenset(
    (first, noun, last) for first, noun, last in map(str.split, _words(_COMPLEX_PREPOSITIONS, "|"))
)
"""Three-word prepositions: their middle noun (``front`` in "in front of a customer") names no
subject.  Checked only for these nouns, with the words either side."""
_PREPOSITION_NOUNS = frozenset(p[1] for p in COMPLEX_PREPOSITIONS_EN)

STOP_TOPICS_ZH: frozenset[str] = frozenset(STOP_WORDS_ZH) | frozenset(
    _words("""
    今天 明天 昨天 最近 现在 时候 问题 一起 真的 非常 特别 这样 那样 应该 觉得 知道 自己 其实 然后
    不是 就是 还有 这些 那些 大概 可能 一直 东西 事情 怎么样 哈哈 哈哈哈 谢谢您 好的 时间 地方 样子
    回复 转发 转发微博 微博 分享 图片 视频 网页 链接 全文 原文 评论 秒拍 链接 哈哈哈哈 嘻嘻 呵呵 感觉
    朋友 大家 人家 别人 有些 一点 一下子 今年 去年 明年 晚上 早上 中午 下午 上午 一天 今晚 周末
    小时 分钟 结果 原因 方面 情况 地址 有点 一样 一种 部分 之后 以后 之前 以前 当时 时刻 日子
    """)
)
"""Chinese that is never a topic: function words, time words, and Weibo's own boilerplate."""
_ZH_TOPIC_POS = frozenset(("n", "nr", "ns", "nt", "nz", "nrt", "nrfg", "vn", "an", "eng"))

# --------------------------------------------------------------------------------------------------
# Patterns
# --------------------------------------------------------------------------------------------------

_HAN = r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_HAN_RUN = re.compile(f"[{_HAN}]+")
_LATIN_WORD = re.compile(r"[A-Za-z]{2,}")
_LATIN = re.compile(r"[A-Za-z]")
_NOISE = re.compile(
    r"(?:https?://|www\.)\S+"  # URLs
    r"|[\w.+-]+@[\w-]+\.[\w.-]+"  # e-mail addresses
    r"|(?:回复|//|RT\s?)?@[\w\-.·]{1,30}[:：]?"  # @mentions, reply and repost prefixes (after any character)
    rf"|\[[{_HAN}A-Za-z]{{1,8}}\]"  # emoticon codes: [哈哈] [doge]
    r"|转发微博|轉發微博|repost",
    re.IGNORECASE,
)
_QUESTION = re.compile(
    r"[?？]|^\s*(?:ask hn|请问|求推荐|有没有)|[吗呢][。！!~～…\s]*$"
    r"|怎么|怎样|如何|为什么|为何|为啥|哪个|哪些|哪家|是否|有没有|求推荐|请问|有什么|用什么|什么样"
    r"|[吗呢][,，。!！~～…\s]",
    re.IGNORECASE,
)
"""A question: a question mark, ``Ask HN``, or a Chinese interrogative anywhere (Chinese questions
often go without a mark: "不会前端又想建网站该怎么做"; measured on the V2EX tuning half, 17.5 % of tech
questions had |s| > 0.3 with only the mark and a final 吗/呢, 10.8 % with the interrogatives)."""
_QUESTION_ZH = re.compile(
    r"怎(?:么|样)|如何|为(?:什么|何|啥)|哪(?:个|些|家)|是否|有(?:没有|什么)|求推荐|请问|用什么|什么样"
    r"|[吗呢](?:[,，。!！~～…\s]|[。！!~～…\s]*\Z)"
)
_QUESTION_EN = re.compile(r"\s*ask hn", re.IGNORECASE)


def _is_question(text: str) -> bool:
    """``_QUESTION.search(text)``, ~4× faster: a mark by ``in``, ``Ask HN`` by a match at the start,
    the Chinese words (a pattern whose branches all start with a Han character, which the regex
    engine scans for) only when the text is not ASCII."""
    if "?" in text or "？" in text or _QUESTION_EN.match(text) is not None:
        return True
    return not text.isascii() and _QUESTION_ZH.search(text) is not None


_MENTION = r"@[\w\-.·]{1,30}[:：]?"
_NOISE_URL = re.compile(r"h[Tt][Tt][Pp][Ss]?://\S+|H[Tt][Tt][Pp][Ss]?://\S+|w[Ww][Ww]\.\S+|W[Ww][Ww]\.\S+")
_NOISE_AT = re.compile(rf"(?<![\w.+-])[\w.+-]+@[\w-]+\.[\w.-]+|(?:回复|//|[Rr][Tt]\s?)?{_MENTION}")
_MAY_BE_EMAIL = re.compile(r"@[\w-]+\.")
_NOISE_MENTION = re.compile(
    "|".join(p + _MENTION for p in ("回复", "//", r"RT\s?", r"Rt\s?", r"rT\s?", r"rt\s?", ""))
)  # (?:回复|//|RT\s?)?@… of _NOISE, as branches that each start with a literal
_NOISE_CODE = re.compile(rf"\[[{_HAN}A-Za-z]{{1,8}}\]")
_NOISE_REPOST = re.compile(r"转发微博|轉發微博|r[Ee][Pp][Oo][Ss][Tt]|R[Ee][Pp][Oo][Ss][Tt]")


def _denoise(text: str) -> str:
    """:data:`_NOISE` removed (each match → a space) from NFKC text, in up to four passes, each run
    only when its trigger is in the text: one pass of the four-way pattern costs ~10 µs on a Weibo
    post (its e-mail part runs to the end of every run of Han characters, which are word characters,
    at every position, then backtracks).  The passes run in the pattern's order, no part can start
    inside an earlier part's match, and an e-mail address is matched only from the start of its run
    of address characters (where the leftmost match starts anyway), so the result is the same
    (checked on every real corpus in ``tests/unit/test_text_stage_fast.py``).

    Each pass's branches start with a literal character (case spelled out, not ``re.IGNORECASE``),
    so the regex engine jumps to them instead of trying every position: ~3× faster.  On NFKC text
    that is the same match (the one non-ASCII letter ``re.IGNORECASE`` matches to ``h t p s w r e
    o``, ``ſ``, is ``s`` in NFKC).  Mentions are matched alone unless an ``@`` is followed by an
    e-mail domain (``@x.``), without which the e-mail branch cannot match."""
    low = text.lower()
    if "://" in text or "www." in low:
        text = _NOISE_URL.sub(" ", text)
    if "@" in text:
        text = (_NOISE_MENTION if _MAY_BE_EMAIL.search(text) is None else _NOISE_AT).sub(" ", text)
    if "[" in text:
        text = _NOISE_CODE.sub(" ", text)
    if "转发微博" in text or "轉發微博" in text or "repost" in low:
        text = _NOISE_REPOST.sub(" ", text)
    return text


_TAG_CHARS = re.compile(f"[{_HAN}A-Za-z0-9 ._+-]+")
_HASHTAG_ZH = re.compile(r"#([^#\s]{1,20}?)#")  # Weibo topics: #话题#
_EN_TOKEN = re.compile(
    r"[A-Za-z][A-Za-z0-9+#]*(?:[.\-'’][A-Za-z0-9+#]+)*|[^\w\s](?:[\s0-9]*[^\w\s])*|[^\sA-Za-z0-9]"
)
"""Words that start with a letter (tech names whole: ``next.js``, ``c++``, ``gpt-4o``); other
non-space characters are separator tokens (they break phrases and names), one token per run of
punctuation (with the spaces and digits between): its last character is what a word after it
follows (a run of Chinese punctuation in a mixed post is one token, not ten for the loop below);
any other character (``_``, a non-ASCII letter or digit) is a token of its own, as it always was;
digits-only tokens do not exist."""


_first = operator.itemgetter(0)


def _is_title_case(words: list[str]) -> bool:
    caps = sum(map(str.isupper, map(_first, words)))  # words are non-empty
    return caps * 2 > len(words)


# --------------------------------------------------------------------------------------------------
# Chinese segmentation (rjieba)
# --------------------------------------------------------------------------------------------------

_JIEBA: Any = None


def _jieba() -> Any:
    global _JIEBA
    if _JIEBA is None:
        import rjieba

        jieba = rjieba.Jieba()  # private: words others add to the default instance change nothing here
        for word in DOMAIN_WORDS_ZH:
            jieba.add_word(word, DOMAIN_WORD_FREQ, "nz")
        _JIEBA = jieba
    return _JIEBA


def warm_up() -> None:
    """Load rjieba's dictionary (~0.15 s) now, rather than in a worker's first batch with a
    Chinese post."""
    _jieba()


# --------------------------------------------------------------------------------------------------
# Topics
# --------------------------------------------------------------------------------------------------


def _load_not_nouns() -> frozenset[str]:
    """English words a dictionary knows only as verb, adjective or adverb (``robust``, ``stolen``):
    lemminflect's answer for every word it knows, derived once by ``studies/derive_en_not_nouns.py``
    (its table costs ~46 MB of memory; this set ~3 MB), checked against lemminflect by the tests."""
    with (DATA / "en_not_nouns.txt").open(encoding="utf-8") as f:
        return frozenset(line.rstrip("\n") for line in f if not line.startswith("#"))


NOT_NOUNS_EN = _load_not_nouns()


def _fold_plural(word: str) -> str:
    """``agents`` → ``agent`` when wordfreq knows the singular at least as well; else as written."""
    if len(word) <= 3 or word[-1] != "s" or word.endswith(("ss", "us", "is")) or not word.isalpha():
        return word
    single = word[:-3] + "y" if word.endswith("ies") and len(word) > 4 else word[:-1]
    zs = _ZIPF.get(single, 0.0)
    if zs and zs >= _ZIPF.get(word, 0.0) and single not in STOP_TOPICS_EN:
        return single
    return word


def _en_word_topic(raw: str, name: bool = False) -> str | None:
    """The topic a word is on its own, or None (a pure function of the word: cached by
    :func:`_english_topics`).

    ``name``: the word is capitalised inside a sentence that is not in Title Case, so it names
    something even if the dictionary knows it only as a verb or adjective (Google, Swift)."""
    low = raw.lower()
    if "'" in low or "’" in low:
        if low.endswith(("'s", "’s")):
            low = low[:-2]
            raw = raw[:-2]
        else:
            return None  # contractions: don't, it'll
    if len(low) < 2 or low in STOP_TOPICS_EN or low in VERBS_EN:
        return None
    if len(low) == 2 and not raw.isupper():
        return None  # ps, ok, io: two lower-case letters say little (AI, VR, ML do)
    if len(raw) > 2 and raw[-1] == "s" and raw[:-1].isupper():
        return low[:-1]  # GPUs, LLMs, APIs
    has_digit = any(c.isdigit() for c in low)
    if has_digit and sum(c.isalpha() for c in low) < 2:
        return None  # l7, x1, s16: codes, not names (gpt-4, web3, h264 stay)
    inner_caps = any(c.isupper() for c in raw[1:]) and not raw.isupper()
    if not has_digit and not inner_caps:
        z = _ZIPF.get(low, 0.0)
        if z >= COMMON_ZIPF:
            return None
        if (low.endswith("ed") and z >= 3.5) or (low.endswith("ing") and z >= 4.5):
            return None
        if low.endswith("ly") and z >= 3.5:
            return None
        valence = _VADER_LEX.get(low)
        if valence is not None and abs(valence) >= 1.5 and low not in TOPIC_NOUNS_EN:
            return None
        if not name and low in NOT_NOUNS_EN:
            return None  # only a verb, adjective or adverb (robust, prepare, stolen)
    if "-" in low and low.replace("-", "").isalpha():
        low = low.replace("-", " ")  # open-source, fine-tuning: as their phrase is spelled
    return _fold_plural(low)


def _english_topics(text: str, out: dict[str, None]) -> None:
    tokens = _EN_TOKEN.findall(text)
    words = [t for t in tokens if t[0].isalpha()]
    if not words:
        return
    title_case = _is_title_case(words)
    plain, named = _EN_WORD_TOPIC
    n = len(tokens)
    i = 0
    while i < n:
        tok = tokens[i]
        if not tok[0].isalpha():
            i += 1
            continue
        low = tok.lower()
        # 1. Curated phrases and Series A-F: longest first.
        if low in _PHRASE_HEADS:
            for k in range(min(_MAX_PHRASE_WORDS, n - i), 1, -1):
                span = tokens[i : i + k]
                phrase = " ".join(span).lower()
                if phrase in _PHRASES and all(t[0].isalpha() for t in span):
                    out[sys.intern(phrase)] = None
                    break
            else:
                k = 0
            if k:
                i += k
                continue
        # 2. Names: two or three capitalised words inside a sentence that is not Title Case.
        if not title_case and tok[0].isupper() and i > 0 and low not in STOP_TOPICS_EN:
            k = i + 1
            while k < n and k - i < 3 and tokens[k][0].isupper() and tokens[k].lower() not in STOP_TOPICS_EN:
                k += 1
            parts = [t[:-2] if t.endswith(("'s", "’s")) else t for t in tokens[i:k]]
            if k - i >= 2 and all(len(t) > 1 for t in parts):
                out[sys.intern(" ".join(parts).lower())] = None
                i = k
                continue
        if (
            low in _PREPOSITION_NOUNS
            and 0 < i < n - 1
            and (tokens[i - 1].lower(), low, tokens[i + 1].lower()) in COMPLEX_PREPOSITIONS_EN
        ):
            i += 1
            continue
        name = not title_case and tok[0].isupper() and i > 0 and tokens[i - 1][-1] not in ".!?:;"
        known = named if name else plain
        topic = known.get(tok)
        if topic is None:
            if len(known) >= CACHE_SIZE:
                known.clear()
            found = _en_word_topic(tok, name) or ""
            topic = known[tok] = sys.intern(found) if len(found) <= MAX_TOPIC_CHARS else ""
        if topic:
            out[topic] = None
        i += 1


_EN_WORD_TOPIC: tuple[dict[str, str], dict[str, str]] = ({}, {})
"""English word → its topic (interned) or ``""``, as :func:`_en_word_topic` says when the word is
not / is a name: a plain dict per case, each cleared when it holds :data:`CACHE_SIZE` words (a hit
is one ``dict.get``, where ``functools.lru_cache`` builds and hashes an argument tuple)."""


_ZH_WORD_TOPIC: dict[str, str] = {}
"""Chinese word → itself if it is a topic, else ``""`` (a pure function of the word and its
dictionary tag, which jieba gives every occurrence of the word alike); cleared when it holds
:data:`CACHE_SIZE` words.  A plain dict, not ``functools.lru_cache``: one ``tag`` call fills the
entries of all a post's new words at once, and a hit is one ``dict.get``."""


def _zh_is_topic(word: str, pos: str) -> bool:
    return (
        pos in _ZH_TOPIC_POS
        and word not in STOP_TOPICS_ZH
        and not (pos == "nr" and len(word) >= 4)  # names are 2-3 characters; these are idioms
        and (word in _ZIPF or _jieba().has_word(word))  # the HMM's guesses glue neighbours: 这风, 边学
    )


def _zh_topics(runs: list[str]) -> list[str]:
    """Topic words of runs of Han characters, in order (repeats kept).

    One ``cut`` of the runs joined by spaces (jieba segments each run on its own, as if cut one by
    one), then a dict lookup per word of two or more characters.  A part-of-speech tag is a
    dictionary lookup of the word, the same wherever it occurs, so only a post with a word not
    seen before pays for ``tag`` (~1.7× ``cut``): its tags fill the cache."""
    joined = " ".join(runs)
    known = _ZH_WORD_TOPIC
    topics = []
    for word in _jieba().cut(joined):
        if len(word) > 1:
            topic = known.get(word)
            if topic is None:
                break
            if topic:
                topics.append(topic)
    else:
        return topics
    if len(known) >= CACHE_SIZE:
        known.clear()
    topics = []
    for word, pos in _jieba().tag(joined):
        if len(word) > 1:
            topic = known.get(word)
            if topic is None:
                topic = known[word] = sys.intern(word) if _zh_is_topic(word, pos) else ""
            if topic:
                topics.append(topic)
    return topics


def _chinese_topics(text: str, out: dict[str, None], runs: list[str]) -> None:
    """Topics of the Han text of ``text``, whose runs of Han characters are ``runs``."""
    if "#" in text:
        for tag in _HASHTAG_ZH.findall(text):
            tag = tag.strip()
            if 2 <= len(tag) <= MAX_TOPIC_CHARS and _HAN_RUN.search(tag) and _TAG_CHARS.fullmatch(tag):
                out[sys.intern(tag)] = None
        runs = _HAN_RUN.findall(_HASHTAG_ZH.sub(" ", text))
    runs = [run for run in runs if len(run) > 1]
    if runs:
        out.update(dict.fromkeys(_zh_topics(runs)))


def tag_topic(tag: str) -> str:
    """A tag as the topic its words would be: ``#Open_Source`` → ``open source``, ``AI-Agents`` →
    ``ai agents``, ``Agents`` → ``agent`` (so a tag and the same word in the text are one topic).

    >>> tag_topic("#Open_Source"), tag_topic("Agents"), tag_topic("GPT-4o"), tag_topic("大模型")
    ('open source', 'agent', 'gpt-4o', '大模型')
    """
    t = re.sub(r"[\s_]+", " ", tag.strip().lstrip("#").strip().lower())
    if "-" in t and t.replace("-", "").replace(" ", "").isalpha():
        t = t.replace("-", " ")
    if " " not in t:
        t = _fold_plural(t)
    return sys.intern(t)


# --------------------------------------------------------------------------------------------------
# The analysis
# --------------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=CACHE_SIZE)
def _terms(text: str) -> tuple[str, ...]:
    return tuple(extract_terms(text))


@dataclass(frozen=True, slots=True)
class TextAnalysis:
    """What the text stage sees in a post (immutable).

    ``lang``: ``en``, ``zh``, ``mixed`` (both scripts carry ≥ 20 % of the words) or ``""`` (no
    letters); ``topics``: hot-topic candidates (lower case, product names unstemmed);
    ``sentiment`` in [-1, 1]; ``text``: the prefix analysed.  :attr:`terms` (the matcher's
    content terms, :func:`~online_models.text_features.extract_terms`) are computed on first
    use: only needs and offers are matched, so most posts never pay for them.
    """

    lang: str
    topics: tuple[str, ...]
    sentiment: float
    text: str

    @property
    def terms(self) -> tuple[str, ...]:
        return _terms(self.text) if len(self.text) <= CACHE_TEXT_CHARS else tuple(extract_terms(self.text))

    def as_dict(self) -> dict[str, Any]:
        return {
            "lang": self.lang,
            "terms": list(self.terms),
            "topics": list(self.topics),
            "sentiment": self.sentiment,
        }


EMPTY = TextAnalysis("", (), 0.0, "")


def _language(text: str) -> str:
    return _lang(sum(map(len, _HAN_RUN.findall(text))), 1.7 * len(_LATIN_WORD.findall(text)))


def _lang(han: int, latin: float) -> str:
    """The language of a text with ``han`` Han characters and ``latin`` Latin words × 1.7 (a word ~
    1.7 Han characters)."""
    if not han and not latin:
        return ""
    if han >= 0.8 * (han + latin):
        return "zh"
    if latin >= 0.8 * (han + latin):
        return "en"
    return "mixed"


def _analyze(text: str) -> TextAnalysis:
    if not text or text.isspace():
        return EMPTY
    clean = unicodedata.normalize("NFKC", text) if not text.isascii() else text
    clean = _denoise(clean)
    topics: dict[str, None] = {}
    runs = _HAN_RUN.findall(clean) if not clean.isascii() else []
    if not runs:
        _english_topics(clean, topics)
        lang = "en" if _LATIN_WORD.search(clean) is not None else ""  # _lang without Han
    else:
        _chinese_topics(clean, topics, runs)
        words = 0.0
        if _LATIN.search(clean) is not None:  # English words start with a letter: none, no topic
            _english_topics(_HAN_RUN.sub(" ", clean), topics)
            words = 1.7 * len(_LATIN_WORD.findall(clean))
        lang = _lang(sum(map(len, runs)), words)
    tone = _sentiment(text) if len(text) > _SENTIMENT_MAX_CHARS else _score(text)  # cached here
    if tone and _is_question(text):
        tone = round(tone * QUESTION_DAMPING, 4)
    return TextAnalysis(lang=lang, topics=tuple(topics)[:MAX_TOPICS], sentiment=tone, text=text)


_cached = functools.lru_cache(maxsize=CACHE_SIZE)(_analyze)


def analyze(text: str, max_chars: int = TEXT_MAX_CHARS) -> TextAnalysis:
    """The text stage on the first ``max_chars`` characters of ``text`` (pure, cached when short)."""
    if len(text) > max_chars:
        text = text[:max_chars]
    if len(text) <= CACHE_TEXT_CHARS:
        return _cached(text)
    return _analyze(text)


def cache_clear() -> None:
    """Forget cached texts, words and runs (benchmarks measure the uncached cost)."""
    for cache in (_cached, _terms):
        cache.cache_clear()
    for words in (*_EN_WORD_TOPIC, _ZH_WORD_TOPIC):
        words.clear()


def annotate(events: Iterable[Any], max_chars: int = TEXT_MAX_CHARS) -> None:
    """Attach :func:`analyze` of each post's text to ``post.analysis`` (once: filled ones are kept)."""
    for ev in events:
        if getattr(ev, "analysis", False) is None:
            ev.analysis = analyze(ev.text, max_chars)


def analysis_of(post: Any) -> TextAnalysis:
    """``post.analysis``, or the analysis computed now for a post that did not pass :func:`annotate`."""
    a = getattr(post, "analysis", None)
    return a if a is not None else analyze(post.text)


def topics_with_tags(
    analysis: TextAnalysis, tags: Iterable[str], max_topics: int = MAX_TOPICS
) -> tuple[str, ...]:
    """A post's distinct topics: its tags first (the author's own labels, as :func:`tag_topic`), then
    the text's topics — a tag and the same word in the text are one topic."""
    topics = dict.fromkeys(t for t in map(tag_topic, tags) if t and len(t) <= MAX_TOPIC_CHARS)
    topics.update(dict.fromkeys(analysis.topics))
    return tuple(topics)[:max_topics]
