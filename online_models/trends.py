"""Hot topics: what a post is about, how often each topic is mentioned, and where it is going.

* :func:`topics_of` — a post's topics: its tags (normalised) plus the key terms of its text.
  English goes through :func:`online_models.text_features.extract_terms` (tech names kept whole,
  plurals folded, stop words and request phrasing dropped).  Chinese is cut into **whole words**
  with jieba here — the shared extractor cuts Han runs at stop characters *before* segmenting,
  which breaks words such as 上海 (上) or 聚会 (会), fine for its bigrams but not for topic names.
  jieba's 2013 dictionary also lacks current startup vocabulary (大模型 → 大 + 模型), so
  :data:`DOMAIN_WORDS_ZH` is added to it once per process.  URLs, e-mail addresses and
  @mentions are removed first (they are not topics); ``#hashtags`` in the text count as terms;
  emoji are ignored.  Texts of up to ``CACHE_TEXT_CHARS`` characters are cached: short posts
  repeat a lot ("+1", "恭喜"), and the cache never changes a result.
* :class:`TopicForecaster` — the next window's mention count of a topic: one river linear
  regression shared by all topics of a community (a model per topic would be too big to
  snapshot after every batch and would never see enough data) over the topic's recent counts
  and long-run level, scaled by the topic's size (:func:`topic_features`); learned at every
  window boundary on the window that just ended (predict first, learn when the outcome exists).
* :func:`trend_score` — the ranking: the forecast's size (log) plus how surprising the topic's
  last minutes are under its usual rate, so a small topic that takes off outranks a big steady one.
* :func:`poisson_sf` — P(N ≥ n) for the surge test: a count that is both 5x the expected one and
  very unlikely under it.

>>> topics_of("Anyone tried LangChain agents? https://x.dev/a 🚀", ("AI", "#LLM"))
('ai', 'llm', 'langchain', 'agent')
>>> topics_of("周六在上海办大模型创业者聚会，欢迎报名", ())
('周六', '上海', '大模型', '创业者', '聚会', '报名')
>>> m = TopicForecaster()
>>> x = topic_features(hour=12, recent=8, prev=3, level=2.5, activity=0.0, buckets=6)
>>> before = m.predict_one(x, level=2.5); m.learn_one(x, 20, level=2.5); m.predict_one(x, level=2.5) > before
True
"""

from __future__ import annotations

import functools
import logging
import math
import re
import sys
from collections.abc import Sequence

from river import linear_model, optim

from online_models.text_features import STOP_WORDS_ZH, extract_terms, normalize_tag

__all__ = [
    "DOMAIN_WORDS_ZH",
    "EXTRA_STOP_WORDS_EN",
    "TopicForecaster",
    "chinese_terms",
    "poisson_sf",
    "text_terms",
    "topic_features",
    "topics_of",
    "trend_score",
    "warm_up",
]

MAX_CHARS = 1000
"""Characters of a post that are read: the topic of a post is stated early; cost stays bounded."""
CACHE_TEXT_CHARS = 280
CACHE_SIZE = 32_768
MAX_TERM_CHARS = 40
"""Longer tokens are hashes, base64 or keyboard mashing, not topics."""

DOMAIN_WORDS_ZH: tuple[str, ...] = (
    "大模型", "智能体", "具身智能", "多模态", "向量数据库", "算力", "出海", "跨境电商", "独立站",
    "种子轮", "天使轮", "小程序", "低代码", "工作流", "开源", "合伙人", "联合创始人", "创业者",
    "路演", "独角兽", "私域", "副业", "降本增效", "数字化", "新能源", "机器人", "短视频",
)  # fmt: skip
"""Startup words jieba's dictionary would split (大模型 → 大 + 模型); added once per process."""
DOMAIN_WORD_FREQ = 20_000
"""Their jieba frequency: high enough to beat a neighbour's word (做出海 → 做 + 出海, not 做出 + 海)."""

EXTRA_STOP_WORDS_EN = frozenset(
    (
        "actually", "again", "ago", "already", "always", "another", "anyone", "around", "back", "best",
        "better", "big", "come", "coming", "day", "did", "done", "doing", "easy", "even", "feel", "find",
        "first", "get", "give", "go", "going", "good", "got", "great", "guy", "hear", "idea",
        "just", "keep", "know", "last", "let", "lot", "love", "make", "many", "maybe", "much",
        "never", "nice", "now", "ok", "okay", "people", "pretty", "quick", "really", "right", "said",
        "say", "see", "seem", "share", "sure", "take", "talk", "tell", "thing", "think", "time",
        "today", "tomorrow", "tonight", "tried", "trying", "use", "used", "using", "week", "well", "went",
        "work", "working", "worth", "year", "yes", "yesterday",
    )
)  # fmt: skip
"""Words of everyday talk that the shared English stop list keeps (it is tuned for matching)."""

EXTRA_STOP_WORDS_ZH = frozenset(
    (
        "今天", "明天", "昨天", "最近", "现在", "时候", "问题", "一起", "真的", "非常", "特别", "这样",
        "那样", "应该", "觉得", "知道", "自己", "其实", "然后", "不是", "就是", "还有", "这些", "那些",
        "大概", "可能", "一直", "东西", "事情", "怎么样", "哈哈", "哈哈哈", "谢谢您", "好的",
    )
)  # fmt: skip
STOP_ZH = frozenset(STOP_WORDS_ZH) | EXTRA_STOP_WORDS_ZH

_NOT_TOPICS = re.compile(
    r"(?:https?://|www\.)\S+"  # URLs
    r"|[\w.+-]+@[\w-]+\.[\w.-]+"  # e-mail addresses
    r"|(?<![\w#])@\w+"  # @mentions
)
_HAN_RUN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")

_CUT = None


def _jieba_cut():  # type: ignore[no-untyped-def]
    """jieba's ``lcut`` with :data:`DOMAIN_WORDS_ZH`, initialised on first use (~1 s, once per process)."""
    global _CUT
    if _CUT is None:
        import jieba

        jieba.setLogLevel(logging.WARNING)
        jieba.initialize()
        for word in DOMAIN_WORDS_ZH:
            jieba.add_word(word, DOMAIN_WORD_FREQ)
        _CUT = jieba.lcut
    return _CUT


def warm_up() -> None:
    """Load jieba and its dictionary now (~1 s) rather than on a worker's first Chinese post."""
    _jieba_cut()


def chinese_terms(text: str) -> list[str]:
    """Whole jieba words of the Han runs of ``text``: two characters or more, no stop words.

    >>> chinese_terms("我们在做出海SaaS，需要跨境电商经验")
    ['出海', '跨境电商', '经验']
    """
    cut = _jieba_cut()
    intern = sys.intern
    out: list[str] = []
    for run in _HAN_RUN.findall(text):
        out += [intern(w) for w in cut(run) if len(w) > 1 and w not in STOP_ZH]
    return out


def _text_terms(text: str) -> tuple[str, ...]:
    text = _NOT_TOPICS.sub(" ", text)
    if _HAN_RUN.search(text) is None:
        terms = extract_terms(text)
    else:
        terms = extract_terms(_HAN_RUN.sub(" ", text)) + chinese_terms(text)
    stop = EXTRA_STOP_WORDS_EN
    return tuple(dict.fromkeys(t for t in terms if len(t) <= MAX_TERM_CHARS and t not in stop))


_cached_terms = functools.lru_cache(maxsize=CACHE_SIZE)(_text_terms)


def text_terms(text: str) -> tuple[str, ...]:
    """Distinct key terms of a post's text, English then Chinese, in first-seen order.

    >>> text_terms("Mail me at x@y.io or @bob, see https://a.b/c — Rust 🦀 meetup in 深圳")
    ('mail', 'rust', 'meetup', '深圳')
    >>> text_terms(""), text_terms("🎉🎉 !!!")
    ((), ())
    """
    if len(text) > MAX_CHARS:
        return _text_terms(text[:MAX_CHARS])
    if len(text) <= CACHE_TEXT_CHARS:
        return _cached_terms(text)
    return _text_terms(text)


def topics_of(text: str, tags: tuple[str, ...], max_topics: int = 16) -> tuple[str, ...]:
    """A post's distinct topics: tags first (they are the author's own labels), then text terms."""
    topics = dict.fromkeys(t for t in map(normalize_tag, tags) if t and len(t) <= MAX_TERM_CHARS)
    topics.update(dict.fromkeys(text_terms(text)))
    return tuple(topics)[:max_topics]


def cache_clear() -> None:
    """Forget cached texts (benchmarks measure the uncached cost)."""
    _cached_terms.cache_clear()


# --------------------------------------------------------------------------------------------------
# Forecasting
# --------------------------------------------------------------------------------------------------


FEATURES = ("hour", "recent", "prev", "level", "activity")


def topic_features(
    hour: float, recent: float, prev: float, level: float, activity: float, buckets: int
) -> dict[str, float]:
    """Inputs of the forecaster, as multiples of the topic's own scale ``level + 1``.

    ``hour``: mentions in the last window (sliding); ``recent``: in its last third, as a rate
    per window (``buckets`` sub-windows per window); ``prev``: in the window before; ``level``:
    the long-run mentions per window; ``activity``: log of how busy the whole community is
    against its own level.  Dividing by the scale puts a topic of 0.1 and one of 100 mentions
    an hour on the same footing, so one linear model serves all of them and SGD stays stable.
    """
    s = level + 1.0
    return {
        "hour": hour / s,
        "recent": recent * buckets / 2.0 / s,
        "prev": prev / s,
        "level": level / s,
        "activity": activity,
    }


class TopicForecaster:
    """Expected mentions of a topic in the next window: ``(level + 1) · (w · x + b)``, at least 0.

    A linear blend of the topic's rates (features of :func:`topic_features`) fitted online by
    SGD on the scaled count ``y / (level + 1)`` — exponential smoothing whose weights are learned
    from the community's own topics (how much do bursts persist, how fast do they revert?).
    Starts as 0.3 × last window + 0.2 × recent rate + 0.5 × level, so a new community ranks
    sensibly before anything was learned.  State: 5 weights and an intercept.
    """

    def __init__(self, learning_rate: float = 0.01) -> None:
        self.regressor = linear_model.LinearRegression(
            optimizer=optim.SGD(learning_rate), intercept_lr=learning_rate, clip_gradient=1.0, l2=0.0
        )
        w = self.regressor._weights  # river has no per-feature initializer
        w["hour"], w["recent"], w["level"] = 0.3, 0.2, 0.5

    def coefficients(self) -> tuple[float, tuple[float, ...]]:
        """(intercept, weights in :data:`FEATURES` order): for tight loops over many topics."""
        w = self.regressor._weights
        return float(self.regressor.intercept), tuple(float(w.get(k, 0.0)) for k in FEATURES)

    @staticmethod
    def forecast(
        coefficients: tuple[float, tuple[float, ...]],
        hour: float,
        recent: float,
        prev: float,
        level: float,
        activity: float,
        buckets: int,
    ) -> float:
        """:meth:`predict_one` from raw inputs with coefficients read once (no dict per topic)."""
        b, w = coefficients
        s = level + 1.0
        z = (
            b
            + (w[0] * hour + w[1] * recent * buckets / 2.0 + w[2] * prev + w[3] * level) / s
            + w[4] * activity
        )
        return z * s if z > 0.0 else 0.0

    def predict_one(self, x: dict[str, float], level: float) -> float:
        w = self.regressor._weights
        z = self.regressor.intercept + sum(w.get(k, 0.0) * v for k, v in x.items())
        return max(0.0, (level + 1.0) * z)

    def learn_one(self, x: dict[str, float], y: float, level: float) -> None:
        self.regressor.learn_one(x, y / (level + 1.0))

    def learn_many(self, rows: Sequence[tuple[float, float, float, float, float, float, float]]) -> None:
        """:meth:`learn_one` on each ``(hour, recent, prev, level, activity, buckets, y)`` in order
        (inputs as :meth:`forecast`'s), with river's arithmetic inlined: the same floats in the
        same order as river's SGD step (squared loss, clipped gradient, constant rates), so the
        weights are bit-identical; read once and written back once (a window boundary learns every
        topic of a community, ~50 µs apiece through river)."""
        if not rows:
            return
        reg = self.regressor
        opt = reg.optimizer
        w = reg._weights
        w_hour, w_recent, w_prev, w_level, w_act = (float(w.get(k, 0.0)) for k in FEATURES)
        b = float(reg.intercept)
        clip = float(reg.clip_gradient)
        lr = float(opt.lr.get(0))
        lr_b = float(reg.intercept_lr.get(0))
        for hour, recent, prev, level, act, buckets, y in rows:
            s = level + 1.0
            xh = hour / s
            xr = recent * buckets / 2.0 / s
            xp = prev / s
            xl = level / s
            raw = w_hour * xh + w_recent * xr + w_prev * xp + w_level * xl + w_act * act + b
            g = 2 * (raw - y / s)
            g = -clip if g < -clip else clip if g > clip else g
            b -= lr_b * g
            w_hour -= lr * (xh * g)
            w_recent -= lr * (xr * g)
            w_prev -= lr * (xp * g)
            w_level -= lr * (xl * g)
            w_act -= lr * (act * g)
        for k, v in zip(FEATURES, (w_hour, w_recent, w_prev, w_level, w_act), strict=True):
            w[k] = v
        reg.intercept = b
        opt.n_iterations += len(rows)


def trend_score(
    forecast: float,
    recent: int,
    expected: float,
    min_count: int = 3,
    level: float = 0.0,
    background_weight: float = 0.0,
) -> float:
    """Rank of a topic: ``log1p(forecast) − background_weight · log1p(level) + surprise``.

    ``background_weight`` (0 to 1) discounts what the community always talks about: at 1 a
    topic at its usual level scores only its surprise, whatever its volume (its own ``Ask HN``,
    回复), so the ranking is by growth and surprise against the community's own background;
    at 0 it is by forecast volume plus surprise.

    ``surprise`` is ``−log10 P(N ≥ recent)`` for N ~ Poisson(``expected``): how unlikely the
    topic's mentions over the last third of a window are under its usual rate — 0 below
    ``min_count`` mentions, because in a long-tailed vocabulary some rare word is always
    mentioned twice by chance.  The first term orders steady topics by where they are going
    (the forecast); the second lets a topic that takes off jump over bigger ones within
    minutes, and vanishes once it is back to its usual rate or its level has caught up.  The
    forecaster alone cannot do this: on real streams most bursts revert, so it learns to trust
    the level and reacts late to the rare burst that does not.

    >>> [round(trend_score(*args), 2) for args in ((20.0, 7, 6.7), (1.5, 5, 0.4), (0.1, 2, 0.01))]
    [3.34, 5.13, 0.1]
    """
    score = math.log1p(forecast)
    if background_weight:
        score -= background_weight * math.log1p(level)
    if recent >= min_count and recent > expected:
        score -= math.log10(max(poisson_sf(recent, expected), 1e-300))
    return score


def poisson_sf(n: int, lam: float) -> float:
    """P(N ≥ n) for N ~ Poisson(``lam``), summed from the tail (accurate for tiny values).

    >>> f"{poisson_sf(10, 2.0):.3g}", poisson_sf(0, 1.0), poisson_sf(3, 0.0)
    ('4.65e-05', 1.0, 0.0)
    """
    if n <= 0:
        return 1.0
    if lam <= 0.0:
        return 0.0
    if n <= lam:  # not a tail: the complement is the short sum
        log_lam = math.log(lam)
        head = sum(math.exp(k * log_lam - lam - math.lgamma(k + 1)) for k in range(n))
        return max(0.0, 1.0 - head)
    log_term = n * math.log(lam) - lam - math.lgamma(n + 1)
    total = 0.0
    k = n
    term = math.exp(log_term)
    while term > total * 1e-12 and k < n + 10_000:
        total += term
        k += 1
        term *= lam / k
    return min(1.0, total)
