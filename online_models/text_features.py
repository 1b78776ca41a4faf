"""Bilingual (English / Chinese / code-switched) term extraction and an online, bounded IDF.

Shared by the match maker and the hot-topics model (:mod:`online_models.trends`), so it only
does what both need: turn a short post into a few *content* terms, and learn from the stream how
informative each term is.  Design choices (measured in :mod:`studies.evaluate_matching`):

* English: lower-cased word tokens that keep tech names whole (``next.js``, ``c++``, ``gpt-4o``,
  ``pre-seed``), a light plural stemmer (``investors`` → ``investor``) and a stop list that also
  drops request phrasing ("looking for", "happy to", "anyone") — it says *that* a post is a need
  or an offer, not *what* it is about.
* Chinese: runs of Han characters are split at stop words; glossary words are kept whole and
  the pieces between them cut into **character bigrams** (default; a lone character is
  dropped) — no dictionary beyond the glossary, robust to new words (``通义千问``), about 4x
  cheaper than jieba and as good on the labeled stream; ``chinese="jieba"`` switches to jieba's
  word segmentation (its own tokenizer instance: ~1 s and ~75 MB per process).
* Cross-lingual bridge: a small hand-written glossary adds the English term for common startup
  words in Chinese (``前端`` → ``frontend``), so a Chinese need can meet an English offer.  It is
  domain knowledge, not learned; :data:`GLOSSARY_ZH_EN` lists it and ``glossary=False`` turns it off.

Terms are interned (:func:`sys.intern`) so the many copies a stateful operator keeps (posting
lists, open posts) share one string object, which also shrinks their pickled snapshots.

>>> extract_terms("Hiring a senior React developer, remote or Berlin!")
['hiring', 'senior', 'react', 'developer', 'remote', 'berlin']
>>> extract_terms("招聘前端工程师，需要React经验")
['react', 'hiring', 'frontend', 'engineer', '招聘', '前端', '工程师', '经验']
>>> extract_terms("招聘前端工程师，需要React经验", glossary=False)
['react', '招聘', '聘前', '前端', '端工', '工程', '程师', '经验']
>>> idf = OnlineIDF()
>>> for doc in (["react", "hiring"], ["react", "seed"], ["react"]):
...     idf.learn_one(doc)
>>> idf.idf("react") < idf.idf("seed") < idf.idf("never-seen")
True
"""

from __future__ import annotations

import functools
import math
import re
import sys
from collections.abc import Iterable
from typing import Literal

__all__ = [
    "GLOSSARY_ZH_EN",
    "STOP_WORDS_EN",
    "STOP_WORDS_ZH",
    "OnlineIDF",
    "extract_terms",
    "normalize_tag",
    "tokenize",
]

ChineseMode = Literal["bigram", "jieba"]


def _words(text: str) -> list[str]:
    return text.split()


STOP_WORDS_EN: frozenset[str] = frozenset(
    _words("""
    a about above after again against all also am an and any anyone anybody are as at be because been
    before being below between both but by can could did do does doing done down during each else
    ever every few for from further get got had has have having he her here hers him his how i if in
    into is it its itself just let like me more most my no nor not now of off on once only or other
    our ours out over own per please pls re same she should so some such than that the their them
    then there these they this those through to too under until up us very via was we were what
    when where which while who whom why will with would you your yours yourself
    able available anything asap dm dms help helping happy hi hello hey interested know looking
    need needed needs new next offer offering offers one ping reach seek seeking someone something
    still thank thanks thx try want wanted wants way welcome would-be yet
    """)
)
"""English stop words, plus request phrasing that tells a need from an offer but not what it is about."""

STOP_WORDS_ZH: tuple[str, ...] = tuple(
    sorted(
        _words("""
        我们 你们 他们 大家 有人 可以 一个 一位 一些 这个 那个 什么 怎么 如何 还是 或者 以及
        需要 想要 希望 寻找 正在 目前 欢迎 感谢 谢谢 请问 请教 帮忙 一下 看看 最好 愿意 如果
        但是 因为 所以 已经 没有 有没有 推荐 私信 坐标 本人 急需 哪位 谁有
        的 了 在 是 我 你 他 她 它 和 与 或 及 也 都 就 还 又 很 太 吗 呢 吧 啊 哦 嘛 把 被 让 给 找 帮
        """),
        key=lambda w: (-len(w), w),  # longest first: the alternation must prefer 我们 over 我
    )
)
"""Chinese stop words (longest first): function words and request phrasing; runs are split at them.

Single characters are only those that rarely sit inside a content word (not 上, 中, 对, 用, 家…:
上线, 中国, 对接, 用户, 专家 would lose a character to the split)."""

GLOSSARY_ZH_EN: dict[str, str] = {
    "融资": "fundraising", "投资人": "investor", "投资": "investor", "天使": "angel", "种子轮": "seed",
    "天使轮": "pre-seed", "路演": "pitch", "商业计划书": "deck", "招聘": "hiring",
    "前端": "frontend", "后端": "backend", "全栈": "fullstack", "工程师": "engineer", "开发": "developer",
    "算法": "ml", "机器学习": "ml", "设计师": "designer", "产品经理": "pm", "实习": "intern",
    "兼职": "freelance", "外包": "freelance", "面试": "interview", "合伙人": "cofounder",
    "联合创始人": "cofounder", "股权": "equity", "技术合伙人": "cto", "试点": "pilot", "客户": "customer",
    "种子客户": "design-partner", "采购": "procurement", "活动": "meetup", "场地": "venue",
    "嘉宾": "speaker", "分享": "talk", "演讲": "talk", "大模型": "llm", "模型": "model", "评测": "eval",
    "评估": "eval", "微调": "fine-tuning", "算力": "gpu", "开源": "open-source", "内测": "beta",
    "测试": "testing", "用户": "user", "上线": "launch", "发布": "launch", "增长": "growth",
    "反馈": "feedback", "运营": "operations", "物流": "logistics", "医疗": "healthcare",
    "金融科技": "fintech", "教育": "edtech", "新能源": "climate", "电商": "ecommerce", "硬件": "hardware",
    "深圳": "shenzhen", "杭州": "hangzhou", "上海": "shanghai", "北京": "beijing", "远程": "remote",
    "顾问": "advisor", "法律": "legal", "财务": "finance", "税务": "tax", "出海": "global",
    "翻译": "translation", "数据": "data", "安全": "security", "云": "cloud", "小程序": "miniapp",
    "引荐": "intro", "介绍": "intro",
}  # fmt: skip
"""Chinese startup vocabulary → the English term an English post would use (a cross-lingual bridge)."""

_EN_WORD = re.compile(r"[a-z0-9][a-z0-9+#]*(?:[.\-'][a-z0-9+#]+)*")
_HAN_RUN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")
_ZH_STOP = re.compile("|".join(map(re.escape, STOP_WORDS_ZH)))
_GLOSSARY = re.compile("|".join(re.escape(k) for k in sorted(GLOSSARY_ZH_EN, key=lambda w: (-len(w), w))))
_NO_STEM = ("ss", "us", "is", "as", "ics")


def _stem(word: str) -> str:
    """Plural → singular, conservatively (both sides of a match are stemmed the same way).

    >>> [_stem(w) for w in ("investors", "companies", "devtools", "business", "ops", "next.js", "kubernetes")]
    ['investor', 'company', 'devtool', 'business', 'ops', 'next.js', 'kubernete']
    """
    if word.endswith("'s"):
        word = word[:-2]
    if len(word) <= 3 or not word.endswith("s") or word.endswith(_NO_STEM) or not word.isalpha():
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    return word[:-1]


def tokenize(
    text: str, *, chinese: ChineseMode = "bigram", glossary: bool = True, stop_words: bool = True
) -> list[str]:
    """All content terms of ``text`` in order (repeats kept): English words, glossary terms, Han terms.

    >>> tokenize("Need a Next.js dev in 深圳 for our app's launch")
    ['next.js', 'dev', 'app', 'launch', 'shenzhen', '深圳']
    >>> tokenize("招聘前端工程师", chinese="jieba", glossary=False)
    ['招聘', '前端', '工程师']
    """
    intern = sys.intern
    lowered = text.lower()
    if stop_words:
        stems = (_stem(w) for w in _EN_WORD.findall(lowered) if w not in STOP_WORDS_EN and len(w) > 1)
        out = [intern(w) for w in stems if w not in STOP_WORDS_EN and not w.isdigit()]
    else:
        out = [intern(_stem(w)) for w in _EN_WORD.findall(lowered)]
    if not _HAN_RUN.search(text):
        return out
    if glossary:
        out += [GLOSSARY_ZH_EN[m] for m in _GLOSSARY.findall(text)]
    split = _ZH_STOP.split if stop_words else lambda piece: [piece]
    for run in _HAN_RUN.findall(text):
        if chinese == "jieba":
            cut = _jieba_cut()
            for seg in split(run):
                out += [intern(w) for w in cut(seg) if len(w) > 1]
            continue
        # Glossary words whole (before the stop split, which could cut 上线 or 对接), character
        # bigrams of the pieces between them: 资深前端工程师 → 资深 前端 工程师, not also the
        # boundary-crossing 深前 端工 程师.  A lone character left over is dropped (noise more often).
        at = 0
        for m in _GLOSSARY.finditer(run) if glossary else ():
            out += _bigrams(split(run[at : m.start()]))
            out.append(intern(m.group()))
            at = m.end()
        out += _bigrams(split(run[at:]))
    return out


def _bigrams(segments: list[str]) -> list[str]:
    intern = sys.intern
    return [intern(seg[i : i + 2]) for seg in segments for i in range(len(seg) - 1)]


def extract_terms(text: str, *, chinese: ChineseMode = "bigram", glossary: bool = True) -> list[str]:
    """Distinct content terms of ``text`` in first-seen order: a post as a set (binary term frequency).

    Short posts rarely repeat a word, and when they do it is emphasis, not topic; sets keep the
    per-post state small and the cosine cheap.
    """
    return list(dict.fromkeys(tokenize(text, chinese=chinese, glossary=glossary)))


def normalize_tag(tag: str) -> str:
    """Tags as one spelling: lower case, spaces and underscores as hyphens, no leading ``#``.

    >>> normalize_tag(" #Open_Source "), normalize_tag("B2B")
    ('open-source', 'b2b')
    """
    return sys.intern(re.sub(r"[\s_]+", "-", tag.strip().lstrip("#").strip().lower()))


KIND_TAGS = frozenset({"need", "offer", "resolved", "post"})
"""Tags that only repeat a post's kind: they say nothing about what it is about."""


@functools.lru_cache(maxsize=16_384)  # tag lists repeat (a community's usual topics): normalize each once
def content_tags(tags: tuple[str, ...]) -> tuple[str, ...]:
    """A post's tags normalised, distinct, in order, without empty ones and kind echoes.

    >>> content_tags(("Need", "#Open_Source", "open source", "", "B2B"))
    ('open-source', 'b2b')
    """
    return tuple(dict.fromkeys(t for t in map(normalize_tag, tags) if t and t not in KIND_TAGS))


_JIEBA_CUT = None


def _jieba_cut():  # type: ignore[no-untyped-def]
    """``lcut`` of a private jieba tokenizer, built on first use (about a second, once per process).

    Private, so words other modules add to jieba's global dictionary cannot change these terms
    (a restored state must see the same segmentation whatever else the worker runs)."""
    global _JIEBA_CUT
    if _JIEBA_CUT is None:
        import logging

        import jieba

        jieba.setLogLevel(logging.WARNING)
        tokenizer = jieba.Tokenizer()
        tokenizer.initialize()
        _JIEBA_CUT = tokenizer.lcut
    return _JIEBA_CUT


class OnlineIDF:
    """Document frequencies learned one document at a time, with bounded memory (river idiom).

    ``idf(t) = ln((1 + n) / (1 + df(t))) + 1`` (smoothed; an unseen term gets the highest value).
    Memory: at most ``max_terms`` terms; the dict is kept in least-recently-seen order and, when
    it overflows, the oldest terms seen only once go first (then the oldest ones), down to 90% of
    the limit — amortised O(1) per term.  Forgetting: once ``n`` reaches ``halve_at`` documents,
    every count is halved, so the weights follow a drifting vocabulary instead of freezing.

    The state is two ints and one ``dict[str, int]``: it pickles compactly and deterministically.

    >>> idf = OnlineIDF(max_terms=3)
    >>> for doc in (["a"], ["b"], ["a", "c"], ["d"]):
    ...     idf.learn_one(doc)
    >>> sorted(idf.df), idf.n
    (['a', 'd'], 4)
    """

    __slots__ = ("df", "halve_at", "max_terms", "n")

    def __init__(self, max_terms: int = 10_000, halve_at: int = 100_000) -> None:
        self.max_terms = max_terms
        self.halve_at = halve_at
        self.n = 0
        self.df: dict[str, int] = {}

    def __getstate__(self) -> tuple[int, int, int, dict[str, int]]:
        return self.max_terms, self.halve_at, self.n, self.df

    def __setstate__(self, state: tuple[int, int, int, dict[str, int]]) -> None:
        self.max_terms, self.halve_at, self.n, self.df = state

    def learn_one(self, terms: Iterable[str]) -> None:
        """Count one document (``terms`` distinct)."""
        df = self.df
        for t in terms:
            df[t] = df.pop(t, 0) + 1  # pop + insert: the dict's order is recency of use
        self.n += 1
        if len(df) > self.max_terms:
            self._prune()
        if self.n >= self.halve_at:
            self.n //= 2
            self.df = {t: c // 2 for t, c in df.items() if c > 1}

    def _prune(self) -> None:
        df = self.df
        target = self.max_terms * 9 // 10
        excess = len(df) - target
        for t in [t for t, c in df.items() if c <= 1][:excess]:
            del df[t]
        excess = len(df) - target
        if excess > 0:
            for t in list(df)[:excess]:
                del df[t]

    def idf(self, term: str) -> float:
        return math.log((1 + self.n) / (1 + self.df.get(term, 0))) + 1.0

    def transform_one(self, terms: Iterable[str]) -> dict[str, float]:
        """``{term: idf}`` (binary tf) — river's ``transform_one``, unnormalised.

        >>> idf = OnlineIDF(); idf.learn_one(["x", "y"]); idf.learn_one(["x"])
        >>> {t: round(w, 3) for t, w in idf.transform_one(["x", "y"]).items()}
        {'x': 1.0, 'y': 1.405}
        """
        return {t: self.idf(t) for t in terms}
