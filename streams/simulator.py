"""Deterministic synthetic event stream for Pulse: load tests, demos and end-to-end checks.

Real community data is private and never has ground truth, so Pulse is exercised against a
stream that looks like one: Zipf-sized communities, heavy-tailed member activity, English,
Chinese and code-switched posts with a known tone, replies and reactions that point at earlier
posts of the same community, meetups whose RSVPs run from ``going`` to ``attended``.  The same
:class:`SimConfig` always yields the same bytes, so a failing run can be replayed exactly.

It also plays the hostile publisher: re-sent duplicates (same id, same bytes), late events and
malformed messages, each labelled with the rejection reason that
``schemas.events.EventDecoder(max_message_bytes=1_000_000, ...)`` gives, so tests and dashboards
can check that every message was accounted for.

The generator is a scheduler (:meth:`Simulator.messages`) that walks event time and hands each
slot to a small per-kind producer (posts, reactions, RSVPs, late, malformed).  Producers share
mutable per-community state (:class:`Community`), which is what scenarios (:class:`Scenario`)
steer.  It is pure Python and fast enough to out-run a broker from one core (~150-200k valid
events/s): texts are expanded and JSON-encoded once, and each event costs a few
``getrandbits`` slices, table lookups and one f-string.

>>> sim = Simulator(SimConfig(seed=7, events=2_000, start_ms=1_767_225_600_000, dup_rate=0.02))
>>> msgs = list(sim.messages())
>>> sum(m.label is None for m in msgs), sim.stats["duplicate"] > 0
(2000, True)
>>> from schemas.events import EventDecoder
>>> ev = EventDecoder(1_000_000, 300_000).decode(msgs[0].topic, msgs[0].value)
>>> ev.community == msgs[0].key.decode(), 1_767_225_600_000 <= ev.ts <= 1_767_225_600_000 + 6 * 3_600_000
(True, True)
>>> [m.value for m in Simulator(sim.config).messages()] == [m.value for m in msgs]
True
"""

from __future__ import annotations

import bisect
import functools
import itertools
import math
import random
import re
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, ClassVar, NamedTuple, Protocol

import orjson

__all__ = [
    "MALFORMED_KINDS",
    "Community",
    "DemoStory",
    "Meetup",
    "Phrasebank",
    "Scenario",
    "SimConfig",
    "SimMessage",
    "Simulator",
    "StoryEvent",
]

_dumps = orjson.dumps


def _json(value: object) -> str:
    """JSON text of ``value`` as str, for fragments that are pasted into messages."""
    return _dumps(value).decode()


TOPICS = ("posts", "reactions", "rsvps")
_SAFE_ID = re.compile(r"[A-Za-z0-9._:-]{0,64}")

HOUR_MS = 3_600_000
LATE_DEFAULT_MS = (3600 + 300 + 600) * 1000
"""Default age of late events: window (1 h) + grace (300 s) + 10 min margin, see ``SimConfig.late_by_ms``."""

MALFORMED_KINDS: dict[str, str] = {
    "random_bytes": "invalid_json",
    "invalid_utf8": "invalid_json",
    "truncated_json": "invalid_json",
    "bad_json_syntax": "invalid_json",  # NaN, BOM, trailing comma, single quotes, lone surrogate, empty...
    "deep_nesting": "invalid_json",  # depth 5000; orjson stops at 1024
    "not_an_object": "schema",  # array, number, string, null, bool
    "missing_field": "schema",
    "wrong_type": "schema",  # numbers where strings belong, tags as a string, ts as bool...
    "unknown_enum": "schema",  # unknown reaction / status / kind
    "empty_id": "schema",
    "over_limit": "schema",  # text > 10,000 chars, 33 tags, 257-char id, capacity < 0
    "ts_year_9999": "timestamp",
    "ts_before_1970": "timestamp",
    "ts_naive": "timestamp",  # date-time without UTC offset
    "ts_not_rfc3339": "timestamp",
    "rsvp_bad_starts_at": "timestamp",
}
"""Malformed message categories → the decoder's ``Rejection.reason`` for them (plus ``oversized``)."""


# --------------------------------------------------------------------------------------------------
# Configuration and output
# --------------------------------------------------------------------------------------------------


@dataclass
class SimConfig:
    """Knobs of one simulated stream.  Equal configs give byte-identical streams.

    ``events`` counts original events (valid ones plus ``late`` ones); duplicates, malformed and
    oversized messages come on top, so a run yields about ``events * (1 + dup_rate +
    malformed_rate)`` messages.  ``start_ms`` defaults to "now minus the span" rounded down to the
    minute, fixed when the config is created, so no event lies in the decoder's future.
    """

    seed: int = 0
    communities: int = 20
    members: int = 2000
    events: int = 100_000
    start_ms: int | None = None
    span_seconds: int = 6 * 3600
    mix: tuple[float, float, float] = (0.35, 0.50, 0.15)  # posts, reactions, rsvps
    chinese_share: float = 0.3
    dup_rate: float = 0.01
    malformed_rate: float = 0.0
    disorder_ms: int = 60_000
    late_rate: float = 0.0
    late_by_ms: int = LATE_DEFAULT_MS  # a late event is this much (to 2x) older than its community's newest
    oversized_bytes: int | None = None  # e.g. 10_000_000; must exceed the consumer's max_message_bytes
    oversized_count: int = 1  # how many oversized messages when oversized_bytes is set (they are big)
    edge_text_rate: float = 0.002  # valid but awkward texts: empty, 10,000 chars, RTL, NUL, HTML...
    id_prefix: str | None = None  # default derives from seed and start, so reruns do not collide

    def __post_init__(self) -> None:
        if self.start_ms is None:
            now_ms = int(time.time() * 1000)
            self.start_ms = (now_ms - self.span_seconds * 1000) // 60_000 * 60_000
        if self.communities < 1 or self.members < 1 or self.events < 0 or self.span_seconds < 1:
            raise ValueError("communities and members must be >= 1, events >= 0, span_seconds >= 1")
        if len(self.mix) != 3 or min(self.mix) < 0 or sum(self.mix) <= 0:
            raise ValueError(
                f"mix must be three non-negative fractions (posts, reactions, rsvps): {self.mix}"
            )
        total = sum(self.mix)
        self.mix = (self.mix[0] / total, self.mix[1] / total, self.mix[2] / total)
        for name in ("chinese_share", "dup_rate", "malformed_rate", "late_rate", "edge_text_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be within [0, 1]")
        if self.disorder_ms < 0 or self.late_by_ms < 0:
            raise ValueError("disorder_ms and late_by_ms must be >= 0")
        if self.id_prefix is None:
            self.id_prefix = f"s{self.seed}.{self.start_ms // 1000:x}."
        if not _SAFE_ID.fullmatch(self.id_prefix):
            raise ValueError(f"id_prefix must match {_SAFE_ID.pattern} (it is written into JSON unescaped)")


class SimMessage(NamedTuple):
    """One Kafka message as a publisher would send it, plus what the consumer should make of it.

    ``label`` is None for a valid event, ``"duplicate"`` for a re-sent copy (same bytes as an
    earlier message), ``"late"`` for a valid event stamped beyond window + grace, or the decoder's
    rejection reason (``invalid_json`` | ``schema`` | ``timestamp`` | ``oversized``).
    """

    topic: str  # logical: posts | reactions | rsvps
    key: bytes  # community id, UTF-8
    value: bytes
    label: str | None


class Scenario(Protocol):
    """Hook for labelled scenarios (atmosphere drop, topic surge, churn...): steers shared state.

    ``tick`` runs every :attr:`Simulator.tick_events` events with the current event time; it may
    change a :class:`Community`'s tables (tone, topics, members) and record ground truth.
    """

    def tick(self, sim: Simulator, ts: int) -> None: ...


# --------------------------------------------------------------------------------------------------
# Phrasebank: templates with slots, expanded once into pools so that a post costs one list lookup
# --------------------------------------------------------------------------------------------------

LANGS = ("en", "zh", "mixed")
EN, ZH, MIXED = 0, 1, 2
TONES = ("positive", "neutral", "negative")
POS, NEU, NEG = 0, 1, 2
TOPIC_NAMES = ("fundraising", "hiring", "pilots", "meetups", "ai", "devtools", "launch", "cofounder")
# Pool kinds: the first four are post ``kind`` values; REPLY is a kind=post with reply_to.
POST, NEED, OFFER, RESOLVED, REPLY = 0, 1, 2, 3, 4
KIND_VALUES = ("post", "need", "offer", "resolved", "post")
N_KINDS, N_TOPICS, N_TONES = 5, len(TOPIC_NAMES), 3
POOL_SIZE = 32  # texts per (language, kind, topic, tone): a power of two, picked by a bit mask

TOPIC_TAGS: tuple[tuple[str, ...], ...] = (
    ("fundraising", "seed", "investors", "pitch"),
    ("hiring", "frontend", "engineering", "talent"),
    ("pilot", "customers", "b2b", "sales"),
    ("meetup", "events", "networking"),
    ("ai", "llm", "ml", "rag"),
    ("devtools", "open-source", "infra"),
    ("launch", "growth", "product"),
    ("cofounder", "team", "equity"),
)

SLOTS: dict[str, dict[str, tuple[str, ...]]] = {
    "en": {
        "role": (
            "frontend engineer",
            "senior React developer",
            "backend engineer",
            "ML engineer",
            "product designer",
            "founding engineer",
            "DevRel lead",
            "growth marketer",
        ),
        "stage": ("pre-seed", "seed", "Series A", "bridge"),
        "amount": ("$250k", "$500k", "$1.2M", "$2M", "$4M"),
        "industry": ("fintech", "climate", "healthcare", "logistics", "edtech", "legal tech", "retail"),
        "tool": ("React", "Next.js", "Postgres", "Kubernetes", "Rust", "LangChain", "Figma", "Terraform"),
        "city": ("Berlin", "Austin", "Singapore", "London", "Toronto", "Lisbon", "Bangalore"),
        "day": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"),
        "model": ("GPT-4o", "Llama 3", "Claude", "Qwen", "Mistral", "DeepSeek"),
        "product": (
            "our scheduling app",
            "an invoicing API",
            "a code review bot",
            "a carbon accounting tool",
            "a hiring CRM",
            "a meeting notes app",
        ),
        "n": tuple(str(i) for i in (2, 3, 4, 5, 6, 8, 10, 12, 15, 20, 25, 30, 40)),
    },
    "zh": {
        "role": (
            "前端工程师",
            "资深React开发",
            "后端工程师",
            "算法工程师",
            "产品设计师",
            "创始工程师",
            "增长运营",
            "全栈工程师",
        ),
        "stage": ("天使轮", "种子轮", "Pre-A轮", "A轮"),
        "amount": ("300万", "500万", "1000万", "2000万"),
        "industry": ("金融科技", "新能源", "医疗健康", "物流", "教育", "跨境电商", "智能硬件"),
        "tool": ("React", "Next.js", "Postgres", "Kubernetes", "Rust", "LangChain", "Figma", "Terraform"),
        "city": ("深圳", "杭州", "上海", "北京", "成都", "广州"),
        "day": ("周一", "周二", "周三", "周四", "周五", "周六"),
        "model": ("GPT-4o", "通义千问", "文心一言", "DeepSeek", "Kimi", "Llama 3"),
        "product": ("我们的排班小程序", "一个发票API", "代码审查机器人", "碳核算工具", "招聘SaaS"),
        "n": tuple(str(i) for i in (2, 3, 4, 5, 6, 8, 10, 12, 15, 20, 25, 30, 40)),
    },
}
# Code-switched Chinese: the template is Chinese, product and tech nouns stay English.
SLOTS["mixed"] = {**SLOTS["zh"], **{k: SLOTS["en"][k] for k in ("role", "industry", "model", "product")}}

# CORES[lang][topic] = {"post": (positive, neutral, negative), "need": (...), "offer": (...)}
CORES: dict[str, tuple[dict[str, Any], ...]] = {
    "en": (
        {  # fundraising
            "post": (
                (
                    "We just closed our {stage} round of {amount} for our {industry} startup!",
                    "Term sheet signed for our {stage} round, {n} investor meetings finally paid off.",
                ),
                (
                    "Raising a {stage} round for a {industry} company. How long did your process take?",
                    "Anyone compared SAFEs vs priced rounds at {stage}?",
                ),
                (
                    "{n} investor meetings, zero term sheets. The {stage} market is brutal.",
                    "Our lead investor pulled out of the {stage} round at the last minute.",
                ),
            ),
            "need": (
                "Looking for intros to {stage} investors in {industry}.",
                "Need feedback on our pitch deck before the {stage} raise.",
            ),
            "offer": (
                "Happy to review pitch decks for {stage} founders.",
                "Angel investing in {industry}; DM me if you are raising a {stage} round.",
            ),
        },
        {  # hiring
            "post": (
                (
                    "We hired an amazing {role} through this community!",
                    "Our new {role} started this week and is already shipping.",
                ),
                (
                    "What is a fair salary for a {role} in {city}?",
                    "How do you run take-home tests for a {role}?",
                ),
                (
                    "Third {role} candidate ghosted us after the final round.",
                    "Hiring a {role} in {city} feels impossible right now.",
                ),
            ),
            "need": (
                "Hiring a {role} with {tool} experience, remote or {city}.",
                "We need a {role} for a 3-month contract, {tool} stack.",
            ),
            "offer": (
                "Senior {role} available for freelance work, {tool} and TypeScript.",
                "Happy to do mock interviews for anyone applying as a {role}.",
            ),
        },
        {  # pilots
            "post": (
                (
                    "Landed our first {n} pilot customers in {industry}!",
                    "Our {industry} pilot converted to a paid contract.",
                ),
                (
                    "How do you price a pilot for {industry} customers?",
                    "Do you charge for pilots or run them for free?",
                ),
                (
                    "Pilot customer went silent after {n} weeks of onboarding.",
                    "Our {industry} pilot got cancelled by procurement.",
                ),
            ),
            "need": (
                "Looking for pilot customers for {product} in {industry}.",
                "Seeking {n} design partners to pilot {product}.",
            ),
            "offer": (
                "Our team runs {industry} operations and can pilot early tools.",
                "Happy to intro founders to {industry} buyers for pilots.",
            ),
        },
        {  # meetups
            "post": (
                (
                    "Great turnout at last night's meetup in {city}, {n} founders showed up!",
                    "Loved the demos at the {city} meetup, thanks to the organizers.",
                ),
                (
                    "Next meetup is on {day} in {city}, agenda in the thread.",
                    "Who is going to the {city} founder meetup on {day}?",
                ),
                (
                    "The meetup got cancelled again, really annoying.",
                    "The venue in {city} was overcrowded and the talks were weak.",
                ),
            ),
            "need": (
                "Looking for a venue in {city} for a {n}0-person meetup.",
                "Need speakers for our {day} meetup on {industry}.",
            ),
            "offer": (
                "We can host the next meetup at our office in {city}.",
                "Happy to give a talk about {tool} at the next meetup.",
            ),
        },
        {  # ai
            "post": (
                (
                    "Shipped an AI agent on {model} that cut our support tickets by {n}0%!",
                    "Fine-tuning {model} on our own data worked better than expected.",
                ),
                (
                    "Which is better for RAG: {model} or a smaller open model?",
                    "How are you evaluating LLM outputs in production?",
                ),
                (
                    "{model} hallucinated in front of a customer during the demo. Painful.",
                    "Our LLM bill tripled this month, not sustainable.",
                ),
            ),
            "need": (
                "Looking for an ML engineer who has shipped RAG with {model}.",
                "Need advice on evaluating {model} for {industry} use cases.",
            ),
            "offer": (
                "Happy to share our LLM eval setup for {model}.",
                "Offering free GPU credits to early-stage AI startups.",
            ),
        },
        {  # devtools
            "post": (
                (
                    "Our open-source {tool} plugin just hit {n}00 GitHub stars!",
                    "Moved our CI to {tool} and builds are {n}x faster.",
                ),
                (
                    "What do you use for {tool} observability?",
                    "Is anyone running {tool} in production at scale?",
                ),
                (
                    "Spent {n} hours debugging a {tool} upgrade, horrible docs.",
                    "Our {tool} cluster went down during the launch.",
                ),
            ),
            "need": (
                "Looking for beta testers for a CLI that speeds up {tool} workflows.",
                "Need a devtools advisor who knows {tool} well.",
            ),
            "offer": (
                "Happy to help anyone setting up {tool}.",
                "Offering free seats of our devtool to startups in this group.",
            ),
        },
        {  # launch
            "post": (
                (
                    "We launched {product} today and hit #1 on Product Hunt!",
                    "{n}0 signups in the first hour after launching {product}!",
                ),
                (
                    "Launching {product} next {day}, any tips for launch day?",
                    "Product Hunt or Hacker News first for a B2B launch?",
                ),
                (
                    "The launch of {product} flopped, only {n} signups.",
                    "Our landing page crashed on launch day, awful.",
                ),
            ),
            "need": (
                "Looking for early users to try {product}.",
                "Need feedback on the onboarding flow of {product}.",
            ),
            "offer": (
                "Happy to upvote and give feedback on your launch.",
                "I run growth for a SaaS and can review your launch plan.",
            ),
        },
        {  # cofounder
            "post": (
                (
                    "Found my technical cofounder here, thank you all!",
                    "Six months in with my cofounder and it is going great.",
                ),
                (
                    "How do you split equity with a cofounder who joins later?",
                    "What vesting schedule did you use with your cofounder?",
                ),
                (
                    "Cofounder breakup after {n} months, feeling lost.",
                    "My cofounder left and took the key customers.",
                ),
            ),
            "need": (
                "Looking for a technical cofounder for a {industry} startup.",
                "Non-technical founder seeking a CTO cofounder, {tool} preferred.",
            ),
            "offer": (
                "Experienced {role} open to joining a {industry} startup as cofounder.",
                "Happy to share our cofounder agreement template.",
            ),
        },
    ),
    "zh": (
        {  # fundraising
            "post": (
                (
                    "我们的{industry}项目刚完成{stage}融资，{amount}！",
                    "{stage}的TS终于签了，见了{n}家投资人总算有结果",
                ),
                ("在融{stage}，做{industry}的，大家融资周期一般多久？", "{stage}阶段用SAFE还是直接定价轮？"),
                ("见了{n}家投资人，一个TS都没有，{stage}太难了", "领投方在最后关头撤了，{stage}融资泡汤了"),
            ),
            "need": ("求引荐关注{industry}的{stage}投资人", "融{stage}前想找人帮忙看看BP"),
            "offer": (
                "可以帮{stage}的创始人免费看BP",
                "我是天使投资人，关注{industry}，在融{stage}的可以私信我",
            ),
        },
        {  # hiring
            "post": (
                ("通过社群招到了很棒的{role}！", "新来的{role}这周入职，已经开始上线功能了"),
                ("{city}的{role}现在薪资大概什么水平？", "大家招{role}会做笔试吗？"),
                ("第三个{role}候选人终面后直接失联了", "在{city}招{role}太难了"),
            ),
            "need": ("招聘{role}，需要{tool}经验，{city}或远程", "急需一名{role}，三个月合同，技术栈{tool}"),
            "offer": ("资深{role}可接兼职项目，熟悉{tool}", "可以给面试{role}的朋友做模拟面试"),
        },
        {  # pilots
            "post": (
                ("在{industry}行业拿下了前{n}个试点客户！", "{industry}客户的试点转成付费合同了"),
                ("{industry}客户的试点一般怎么定价？", "大家的试点是收费还是免费？"),
                ("试点客户对接了{n}周之后没回音了", "{industry}的试点被采购部门砍掉了"),
            ),
            "need": ("为{product}寻找{industry}行业的试点客户", "寻找{n}家愿意共创的种子客户试用{product}"),
            "offer": ("我们做{industry}运营，可以试用早期产品", "可以帮忙对接{industry}的采购负责人做试点"),
        },
        {  # meetups
            "post": (
                (
                    "昨晚{city}的线下活动来了{n}0位创始人，氛围超棒！",
                    "{city}活动的demo环节太精彩了，感谢组织者",
                ),
                ("下一次线下活动在{city}，{day}晚上，议程见评论", "{day}{city}的创始人聚会有谁去？"),
                ("活动又取消了，真烦", "{city}的场地太挤了，分享质量也一般"),
            ),
            "need": ("在{city}找一个能容纳{n}0人的活动场地", "{day}的{industry}主题活动还缺分享嘉宾"),
            "offer": ("下次活动可以在我们{city}的办公室办", "可以在下次活动分享{tool}的实践经验"),
        },
        {  # ai
            "post": (
                ("用{model}做的AI客服上线了，工单减少了{n}0%！", "在自己的数据上微调{model}，效果比预期好"),
                ("做RAG用{model}还是小一点的开源模型好？", "大家生产环境怎么评估大模型的输出？"),
                ("{model}在客户演示时胡说八道，太尴尬了", "这个月大模型的账单翻了三倍，撑不住了"),
            ),
            "need": ("找一位做过{model} RAG落地的算法工程师", "想请教{industry}场景下怎么评估{model}"),
            "offer": ("可以分享我们基于{model}的评测方案", "给早期AI创业团队提供免费GPU算力"),
        },
        {  # devtools
            "post": (
                ("我们的开源{tool}插件GitHub星标破{n}00了！", "CI迁移到{tool}之后构建快了{n}倍"),
                ("大家{tool}的监控用什么工具？", "有人在生产环境大规模用{tool}吗？"),
                ("升级{tool}调了{n}个小时，文档太烂了", "发布当天{tool}集群挂了"),
            ),
            "need": ("招募内测用户，试用加速{tool}工作流的命令行工具", "想找一位熟悉{tool}的开发者工具顾问"),
            "offer": ("搭{tool}遇到问题的可以找我", "给群里的创业公司免费提供我们开发者工具的席位"),
        },
        {  # launch
            "post": (
                ("{product}今天上线，冲上了Product Hunt第一！", "{product}上线第一个小时就有{n}0个注册！"),
                ("{product}下{day}上线，大家有什么发布建议？", "B2B产品先发Product Hunt还是即刻？"),
                ("{product}发布反响很差，只有{n}个注册", "上线当天落地页崩了，太惨了"),
            ),
            "need": ("寻找早期用户试用{product}", "想请大家帮忙看看{product}的新手引导流程"),
            "offer": ("可以帮忙点赞并给你的产品发布提建议", "我负责一款SaaS的增长，可以帮你看发布方案"),
        },
        {  # cofounder
            "post": (
                ("在社群里找到了技术合伙人，感谢大家！", "和合伙人一起干了半年，配合得很好"),
                ("后加入的合伙人股权怎么分比较合理？", "你们和合伙人的股权成熟期是怎么定的？"),
                ("合伙了{n}个月还是散伙了，很迷茫", "合伙人走了，还带走了核心客户"),
            ),
            "need": ("{industry}项目寻找技术合伙人", "非技术背景创始人寻找CTO合伙人，最好熟悉{tool}"),
            "offer": ("有经验的{role}，愿意以合伙人身份加入{industry}项目", "可以分享我们的合伙人协议模板"),
        },
    ),
}
CORES["mixed"] = CORES["zh"]

# Tone frames: (openers, closers) per language and tone; word choice is what VADER / SnowNLP react to.
FRAMES: dict[str, tuple[tuple[tuple[str, ...], tuple[str, ...]], ...]] = {
    "en": (
        (
            ("Great news:", "Super excited to share:", "Love this community!", "Quick win:", "", ""),
            (
                "Thanks so much, you all are amazing!",
                "Excited for what is next 🚀",
                "Grateful for the support here.",
                "This made my week!",
                "Awesome energy as always.",
                "",
            ),
        ),
        (
            ("", "", "Quick question:", "FYI:", "Update:", "Curious:"),
            ("", "", "Any pointers?", "Details in the thread.", "DM me if relevant.", "Thoughts?"),
        ),
        (
            ("Honestly frustrated.", "Ugh, rough week.", "Not great:", "Bit of a rant:", ""),
            (
                "This is really discouraging.",
                "Terrible experience so far.",
                "Feeling pretty burned out tbh.",
                "Such a waste of time.",
                "Not sure it is worth it anymore.",
            ),
        ),
    ),
    # Chinese word choice is tuned so that SnowNLP, too, reads the tone (it is noisy on chit-chat).
    "zh": (
        (
            ("太开心了，", "超级激动，", "很赞，", "感恩！", ""),
            ("太棒了🎉", "感恩！", "一起加油！", "很赞", "收获很大，谢谢"),
        ),
        (("", "", "请教一下：", "更新：", "问个问题，"), ("", "", "有推荐吗？", "大家怎么看？")),
        (
            ("有点崩溃，", "很失望，", "太差了，", "后悔，", ""),
            ("太失望了", "浪费时间", "太差了", "坑人", "很后悔"),
        ),
    ),
}
FRAMES["mixed"] = (
    (("Good news！", "太开心了，", "Big win：", ""), ("Thanks all！", "太棒了🎉", "Let's go 🚀", "感恩！")),
    (("", "Quick question：", "更新：", "FYI，"), ("", "Any idea？", "大家怎么看？")),
    (
        ("有点崩溃，", "Honestly 很失望，", "太差了，"),
        ("真的很 frustrating", "太失望了", "浪费时间", "waste of time"),
    ),
)

THINGS = {
    "en": (
        "fundraising",
        "hiring",
        "pilot customers",
        "the meetup",
        "AI agents",
        "devtools",
        "the launch",
        "the cofounder search",
    ),
    "zh": ("融资", "招聘", "试点客户", "线下活动", "AI应用", "开发者工具", "产品发布", "找合伙人"),
    "mixed": (
        "fundraising",
        "hiring",
        "pilot customers",
        "meetup",
        "AI agent",
        "devtools",
        "launch",
        "cofounder",
    ),
}
REPLY_TEXTS: dict[str, tuple[tuple[str, ...], ...]] = {
    "en": (
        (
            "Congrats, well deserved!",
            "This is super helpful, thanks for sharing!",
            "Love it, happy to help with {thing}.",
            "Great point, we saw the same with {thing}. Amazing work!",
        ),
        (
            "+1, following.",
            "What stack are you on?",
            "DM'd you.",
            "Which city?",
            "Interested, can you share more about {thing}?",
        ),
        (
            "Same here, it has been awful.",
            "Honestly this is a bad idea.",
            "We got burned on {thing} too, terrible experience.",
            "Disappointing, expected better.",
        ),
    ),
    "zh": (
        (
            "恭喜！太棒了",
            "非常有用，感谢分享！",
            "支持！{thing}这块可以一起交流",
            "说得太好了，我们也有同感，赞",
        ),
        ("+1 关注一下", "用的什么技术栈？", "已私信", "在哪个城市？", "能多说说{thing}吗？"),
        ("我们也遇到了，太糟糕了", "说实话不太看好", "{thing}上踩过坑，很失望", "体验很差，浪费时间"),
    ),
    "mixed": (
        ("恭喜！Amazing 🎉", "Super helpful，感谢分享！", "{thing}这块可以一起交流，love it"),
        ("+1 follow 一下", "用的什么 stack？", "已DM", "能多说说{thing}吗？"),
        ("我们也踩过{thing}的坑，terrible", "说实话 not a fan", "体验很差，waste of time"),
    ),
}
RESOLVED_TEXTS: dict[str, tuple[tuple[str, ...], ...]] = {
    "en": (
        (
            "Resolved: {thing} sorted thanks to intros from this group. Thank you all!",
            "Done! Huge thanks to everyone who helped with {thing} 🙏",
        ),
        ("Update: {thing} is handled now, closing this.", "Closing this one, {thing} is covered."),
        (
            "Closing this, could not find anyone for {thing}. Disappointing.",
            "Giving up on {thing} for now, frustrating.",
        ),
    ),
    "zh": (
        ("已解决：{thing}的问题通过社群搞定了，感谢大家！", "{thing}已经解决，谢谢各位帮忙🙏"),
        ("更新：{thing}已处理，关帖", "{thing}这件事有着落了，先关帖"),
        ("关帖了，{thing}还是没找到合适的，有点失望", "{thing}先放弃了，很无奈"),
    ),
    "mixed": (
        ("Resolved！{thing}搞定了，感谢大家🙏", "{thing} done，thanks all！"),
        ("更新：{thing} handled，关帖", "{thing}有着落了，closing"),
        ("关帖了，{thing}还是没搞定，frustrating", "{thing}先放弃了，disappointing"),
    ),
}

EDGE_TEXTS: tuple[str, ...] = (
    "",
    "🚀" * 40,
    "👩‍💻👨‍👩‍👧 ZWJ sequences and skin tones 👍🏽",
    "<script>alert('pulse')</script> anyone hiring?",
    "Robert'); DROP TABLE posts;--",
    "\u202eevil right-to-left override\u202c and back",
    "zero\u200bwidth\u200bspaces\ufeffand a BOM inside",
    'line one\nline two\r\n\ttabbed \\ backslash "quoted"',
    "NUL byte here: \x00 end",
    "Ｆｕｌｌｗｉｄｔｈ ｔｅｘｔ and combining e\u0301",
    "a" * 10_000,
    "中" * 10_000,
    "ok",
)
"""Valid but awkward post texts (the contract allows empty and up to 10,000 characters)."""


_CLAUSE_END = frozenset("，。！？：,.!?:;；~🎉🚀🙏")


def _glue(part: str, following: str) -> str:
    """``part`` as written before ``following`` in Chinese or code-switched text."""
    if not following:
        return part
    if part[-1] in ".!?" and following[0].isascii():
        return f"{part} "
    return part if part[-1] in _CLAUSE_END else f"{part}，"


def _pairs(*parts: str) -> list[tuple[str, str]]:
    """Non-empty parts, each with the part after it ("" for the last)."""
    kept = [p for p in parts if p]
    return list(zip(kept, [*kept[1:], ""], strict=True))


class Phrasebank:
    """All post texts, expanded from templates once so the hot path only picks from lists.

    ``pool(lang, kind, topic, tone)`` is a list of ``(text, tags)``; :attr:`encoded` holds the
    same entries as ready JSON fragments (``"text"`` value, ``,"tags":[...]``), so a post is one
    f-string instead of a dict and a serialisation.
    """

    def __init__(self, seed: int) -> None:
        rng = random.Random(f"phrasebank:{seed}")
        self._pools: list[list[tuple[str, list[str]]]] = []
        for lang in range(len(LANGS)):
            for kind in range(N_KINDS):
                for topic in range(N_TOPICS):
                    for tone in range(N_TONES):
                        self._pools.append(
                            [self._compose(rng, lang, kind, topic, tone) for _ in range(POOL_SIZE)]
                        )
        self.encoded: list[list[tuple[str, str]]] = [
            [(_json(text), f',"tags":{_json(tags)}') for text, tags in pool] for pool in self._pools
        ]

    def pool(self, lang: int, kind: int, topic: int, tone: int) -> list[tuple[str, list[str]]]:
        return self._pools[((lang * N_KINDS + kind) * N_TOPICS + topic) * N_TONES + tone]

    @property
    def pools(self) -> list[list[tuple[str, list[str]]]]:
        """Flat pool list, indexed ``((lang * 5 + kind) * 8 + topic) * 3 + tone``."""
        return self._pools

    @staticmethod
    def _compose(rng: random.Random, lang_i: int, kind: int, topic: int, tone: int) -> tuple[str, list[str]]:
        lang = LANGS[lang_i]
        # Mixed texts switch code either inside the template (mixed slots) or by an English core.
        core_lang = "en" if lang == "mixed" and rng.random() < 0.35 else lang
        slots = SLOTS["en" if core_lang == "en" else lang]
        thing = THINGS[lang][topic]
        if kind == REPLY:
            core = rng.choice(REPLY_TEXTS[lang][tone])
            opener = closer = ""
        elif kind == RESOLVED:
            core = rng.choice(RESOLVED_TEXTS[lang][tone])
            opener, closer = "", ""
        else:
            spec = CORES[core_lang][topic]
            core = rng.choice(spec["post"][tone] if kind == POST else spec[KIND_VALUES[kind]])
            openers, closers = FRAMES[lang][NEU if kind == OFFER and tone == NEG else tone]
            opener, closer = rng.choice(openers), rng.choice(closers)
            if kind != POST and tone != NEG:  # "Great news: looking for a CTO" reads wrong
                opener = ""
        text = core.format(thing=thing, **{k: rng.choice(v) for k, v in slots.items()})
        if lang == "en":
            text = " ".join(p for p in (opener, text, closer) if p)
        else:  # Chinese has no spaces: a clause without closing punctuation gets a comma
            text = "".join(_glue(p, q) for p, q in _pairs(opener, text, closer))
        base_tags = TOPIC_TAGS[topic]
        tags = rng.sample(base_tags, rng.randint(0 if kind == REPLY else 1, min(3, len(base_tags))))
        if kind in (NEED, OFFER) and rng.random() < 0.5:
            tags.append(KIND_VALUES[kind])
        return text, tags


@functools.lru_cache(maxsize=8)
def _phrasebank(seed: int) -> Phrasebank:
    """Phrasebanks are immutable and take ~0.2 s to build: share them between simulators."""
    return Phrasebank(seed)


# --------------------------------------------------------------------------------------------------
# World state shared by producers (and, later, scenarios)
# --------------------------------------------------------------------------------------------------

EN_CITIES = (
    "sf",
    "nyc",
    "berlin",
    "london",
    "austin",
    "toronto",
    "lisbon",
    "singapore",
    "bangalore",
    "paris",
)
ZH_CITIES = ("shenzhen", "hangzhou", "shanghai", "beijing", "chengdu", "guangzhou")
THEMES = (
    "founders",
    "ai-builders",
    "devtools",
    "indie-hackers",
    "climate-tech",
    "saas",
    "hardware",
    "fintech",
)
EN_OFFSETS = (
    (0, "Z"),
    (0, "+00:00"),
    (-7 * HOUR_MS, "-07:00"),
    (-5 * HOUR_MS, "-05:00"),
    (HOUR_MS, "+01:00"),
    (19_800_000, "+05:30"),
)
ZH_OFFSETS = ((8 * HOUR_MS, "+08:00"), (0, "Z"))


TABLE_BITS = 7
TABLE_SIZE = 1 << TABLE_BITS
"""Size of the small sampling tables (language, topic, tone, reaction): 128 slots, 7 random bits."""
COMMUNITY_TABLE_MAX_BITS = 14  # 16384 slots: shares below 1/16384 round to zero


def _table(weights: Sequence[float], size: int = TABLE_SIZE) -> list[int]:
    """Sampling table: slot j holds the index whose weight quantile covers (j + ½) / size.

    Picking a uniform slot is then a weighted draw with one masked random number (no bisect,
    no ``random.choices`` call); resolution is 1/size, enough for shares and tones.

    >>> _table((3, 1), 8)
    [0, 0, 0, 0, 0, 0, 1, 1]
    """
    total = float(sum(weights))
    cum = list(itertools.accumulate(w / total for w in weights))
    last = len(weights) - 1
    return [min(bisect.bisect_right(cum, (j + 0.5) / size), last) for j in range(size)]


# Reaction names per tone of the target post, in percent; a negative post draws sad/angry/report.
REACTION_MIX: tuple[dict[str, int], ...] = (
    {"like": 40, "love": 20, "thanks": 15, "insightful": 15, "laugh": 8, "sad": 1, "angry": 1},
    {"like": 45, "insightful": 20, "thanks": 15, "love": 5, "laugh": 10, "sad": 2, "angry": 2, "report": 1},
    {"like": 15, "sad": 30, "angry": 20, "insightful": 10, "thanks": 5, "laugh": 5, "report": 15},
)
REACTIONS_BY_TONE: tuple[tuple[str, ...], ...] = tuple(
    tuple(list(mix)[i] for i in _table(list(mix.values()))) for mix in REACTION_MIX
)


@dataclass(slots=True, eq=False)
class Meetup:
    """A meetup of one community: RSVPs before ``starts_at``, ``attended`` check-ins after it."""

    id: str
    starts_at: int
    capacity: int | None
    tags: list[str]
    json_tail: str  # ,"meetup_tags":[...],"starts_at":...,"capacity":...} as the publisher writes it
    status: dict[str, str] = field(default_factory=dict)
    going: list[str] = field(default_factory=list)  # check-in candidates (may hold stale entries)


@dataclass(slots=True, eq=False)
class Community:
    """Per-community state; the ``*_table`` lists are sampling tables (uniform pick = weighted draw).

    Scenarios steer a community through the ``set_*`` methods (an atmosphere drop is
    ``set_tone(0.1, 0.4, 0.5)``, a topic surge a heavier topic weight, drifting members lower
    ``member_weights`` then :meth:`rebuild_member_table`).
    """

    id: str
    key: bytes
    lang: int  # EN or ZH: the community's main language
    weight: float  # share of events (Zipf)
    offset_ms: int  # publisher's UTC offset for RFC 3339 timestamps
    suffix: str  # "Z", "+08:00", ...
    ts_style: int  # 0: integer ms, 1: RFC 3339 with ms, 2: RFC 3339 whole seconds
    omit_defaults: bool  # publisher leaves out kind=post / empty tags
    json_head: str = ""  # ,"community":"<id>","member":"  (pre-encoded; set in __post_init__)
    members: list[str] = field(default_factory=list)
    member_weights: list[float] = field(default_factory=list)
    member_table: list[str] = field(default_factory=list)
    member_mask: int = 0  # len(member_table) - 1; the table size is a power of two
    lang_table: list[int] = field(default_factory=list)
    topic_table: list[int] = field(default_factory=list)
    tone_table: list[int] = field(default_factory=list)
    recent: list[tuple[str, int, int]] = field(default_factory=list)  # (post id, topic, tone), oldest first
    open_needs: list[tuple[str, int]] = field(default_factory=list)  # (post id, topic)
    meetups: list[Meetup] = field(default_factory=list)  # sorted by starts_at
    last_ts: int = -1  # newest event time emitted for this community (late events are placed behind it)

    def __post_init__(self) -> None:
        self.json_head = f',"community":{_json(self.id)},"member":"'

    def set_tone(self, positive: float, neutral: float, negative: float) -> None:
        """Share of positive / neutral / negative posts from now on."""
        self.tone_table = _table((positive, neutral, negative))

    def set_topics(self, weights: Sequence[float]) -> None:
        """Relative weight of each of :data:`TOPIC_NAMES` for new posts, needs and offers."""
        self.topic_table = _table(weights)

    def set_languages(self, en: float, zh: float, mixed: float) -> None:
        """Share of English, Chinese and code-switched posts."""
        self.lang_table = _table((en, zh, mixed))

    def rebuild_member_table(self, rng: random.Random) -> None:
        """Resample the member table from ``members`` and ``member_weights`` (after a change).

        The size is a power of two (≥ 8 slots per member, 256..65536) so a pick is a bit mask.
        """
        unsafe = [m for m in self.members if not _SAFE_ID.fullmatch(m)]
        if unsafe:
            raise ValueError(f"member ids are written into JSON unescaped; not safe: {unsafe[:3]}")
        size = 1 << max(8, min(16, (8 * len(self.members) - 1).bit_length()))
        self.member_table = rng.choices(self.members, weights=self.member_weights, k=size)
        self.member_mask = size - 1


_EPOCH = date(1970, 1, 1)
_SS = tuple(f"{s:02d}" for s in range(60))
_HM = tuple(f"{h:02d}:{m:02d}:" for h in range(24) for m in range(60))
_HMS = tuple(hm + ss for hm in _HM for ss in _SS)  # "HH:MM:SS" by second of the day
_MS3 = tuple(f".{ms:03d}" for ms in range(1000))


class _TsFormatter:
    """RFC 3339 from epoch ms by table lookups: format specs cost ~0.4 µs each, lookups ~30 ns."""

    def __init__(self) -> None:
        self._days: dict[int, str] = {}  # day number -> "YYYY-MM-DDT"

    def _day(self, day: int) -> str:
        text = self._days[day] = f"{(_EPOCH + timedelta(days=day)).isoformat()}T"
        return text

    def __call__(self, ts: int, c: Community) -> int | str:
        """The ``ts`` value as ``c``'s publisher writes it: epoch ms or an RFC 3339 string."""
        if not c.ts_style:
            return ts
        day, rem = divmod(ts + c.offset_ms, 86_400_000)
        d = self._days.get(day) or self._day(day)
        if c.ts_style == 1:
            return f"{d}{_HMS[rem // 1000]}{_MS3[rem % 1000]}{c.suffix}"
        return f"{d}{_HMS[rem // 1000]}{c.suffix}"

    def json(self, ts: int, c: Community) -> int | str:
        """The same value as a JSON token (a quoted string or the integer), for f-string messages."""
        if not c.ts_style:
            return ts
        day, rem = divmod(ts + c.offset_ms, 86_400_000)
        d = self._days.get(day) or self._day(day)
        if c.ts_style == 1:
            return f'"{d}{_HMS[rem // 1000]}{_MS3[rem % 1000]}{c.suffix}"'
        return f'"{d}{_HMS[rem // 1000]}{c.suffix}"'


# --------------------------------------------------------------------------------------------------
# Producers: one per kind of message, each returns a ready SimMessage
# --------------------------------------------------------------------------------------------------
# Hot producers draw one ``getrandbits`` and slice it into fields (member, tone, text...): one C
# call instead of ``random()`` + multiply + ``int()`` per decision.  They write the JSON with one
# f-string from pre-encoded parts (texts, tags and community ids are JSON-encoded once; ids and
# timestamps are generated JSON-safe), which costs half of a dict plus ``orjson.dumps``.  Both
# are what make 150k+ events/s possible.  Probabilities are therefore in units of 1/1024.

_new = tuple.__new__  # SimMessage(...) without the NamedTuple's Python-level __new__
RECENT_KEEP = 400  # recent posts kept per community as reply / reaction targets
OPEN_NEEDS_KEEP = 200  # needs nobody resolved are eventually forgotten
KIND_JSON = tuple(f',"kind":"{k}"' for k in KIND_VALUES)
EDGE_JSON = tuple(_json(t) for t in EDGE_TEXTS)


class _PostProducer:
    """Posts, replies, needs, offers and resolutions of needs."""

    # Cumulative thresholds in 1/1024: need, offer, resolved (if a need is open), reply, else post.
    T_NEED, T_OFFER, T_RESOLVED, T_REPLY = 92, 164, 195, 461

    def __init__(self, sim: Simulator) -> None:
        self.bits = sim.rng.getrandbits
        self.ts_json = sim.fmt_ts.json
        self.prefix = sim.id_prefix
        self.pools = sim.phrasebank.encoded
        self.edge_cut = round(sim.config.edge_text_rate * 1024)

    def produce(self, c: Community, ts: int, eid: str, k: int) -> SimMessage:
        bits = self.bits
        a = bits(29)  # 0-9 kind, 10-16 tone, 17-23 language, 24-28 text
        b = bits(30)  # 0-19 reply target (0-6 topic, 0-9 need), 20-29 edge-text test
        r = a & 1023
        reply = ""
        if r < self.T_NEED:
            kind, topic = NEED, c.topic_table[b & 127]
        elif r < self.T_OFFER:
            kind, topic = OFFER, c.topic_table[b & 127]
        elif r < self.T_RESOLVED and c.open_needs:
            needs = c.open_needs
            kind = RESOLVED
            reply_to, topic = needs.pop(((b & 1023) * len(needs)) >> 10)
            reply = f',"reply_to":"{reply_to}"'
        elif r < self.T_REPLY and c.recent:
            recent = c.recent  # product of two uniforms: mostly the newest posts get replies
            kind = REPLY
            reply_to, topic, _ = recent[-1 - (((b & 1023) * ((b >> 10) & 1023) * len(recent)) >> 20)]
            reply = f',"reply_to":"{reply_to}"'
        else:
            kind, topic = POST, c.topic_table[b & 127]
        tone = c.tone_table[(a >> 10) & 127]
        text, tags = self.pools[
            ((c.lang_table[(a >> 17) & 127] * N_KINDS + kind) * N_TOPICS + topic) * N_TONES + tone
        ][a >> 24]
        if b >> 20 < self.edge_cut:
            text, tags = EDGE_JSON[(bits(8) * len(EDGE_JSON)) >> 8], ',"tags":[]'
        if c.omit_defaults:  # this publisher leaves out kind=post and empty tags
            kind_json = "" if kind in (POST, REPLY) else KIND_JSON[kind]
            if tags == ',"tags":[]':
                tags = ""
        else:
            kind_json = KIND_JSON[kind]
        pid = f"{self.prefix}p{k}"
        recent = c.recent
        recent.append((pid, topic, tone))
        if len(recent) > RECENT_KEEP:
            del recent[: RECENT_KEEP // 2]
        if kind == NEED:
            c.open_needs.append((pid, topic))
            if len(c.open_needs) > OPEN_NEEDS_KEEP:
                del c.open_needs[: OPEN_NEEDS_KEEP // 2]
        value = (
            f'{{"id":"{eid}"{c.json_head}{c.member_table[bits(16) & c.member_mask]}",'
            f'"ts":{self.ts_json(ts, c) if c.ts_style else ts},"post":"{pid}",'
            f'"text":{text}{kind_json}{tags}{reply}}}'
        )
        return _new(SimMessage, ("posts", c.key, value.encode(), None))


class _ReactionProducer:
    """Reactions to recent posts of the same community; the target's tone shapes the reaction."""

    def __init__(self, sim: Simulator) -> None:
        self.bits = sim.rng.getrandbits
        self.ts_json = sim.fmt_ts.json

    def produce(self, c: Community, ts: int, eid: str, k: int) -> SimMessage | None:
        recent = c.recent
        if not recent:
            return None
        b = self.bits(27)  # 0-19 target (product of two uniforms: recent posts), 20-26 reaction
        post, _, tone = recent[-1 - (((b & 1023) * ((b >> 10) & 1023) * len(recent)) >> 20)]
        value = (
            f'{{"id":"{eid}"{c.json_head}{c.member_table[self.bits(16) & c.member_mask]}",'
            f'"ts":{self.ts_json(ts, c) if c.ts_style else ts},"post":"{post}",'
            f'"reaction":"{REACTIONS_BY_TONE[tone][b >> 20]}"}}'
        )
        return _new(SimMessage, ("reactions", c.key, value.encode(), None))


class _RsvpProducer:
    """Meetup RSVPs: going/maybe/declined before the start, cancelled by some, attended after it."""

    CAPACITIES = (20, 30, 40, 50, 80, 100, 150, 200)
    T_ATTEND = 461  # /1024: a check-in, when a started meetup has members who said going
    T_NEW_MEETUP = 20  # /1024: announce another meetup although some are open
    OVER_MS = 4 * HOUR_MS  # a meetup is over (no more check-ins) this long after its start
    CLOSE_MS = 15 * 60_000  # RSVPs close this long before the start

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.rng = sim.rng
        self.bits = sim.rng.getrandbits
        self.fmt = sim.fmt_ts
        self.settle_ms = sim.config.disorder_ms  # check-ins only once jitter cannot pull ts before the start

    def produce(self, c: Community, ts: int, eid: str, k: int) -> SimMessage:
        a = self.bits(30)  # 0-9 check-in test, 10-19 status, 20-29 which meetup
        b = self.bits(26)  # 0-15 member, 16-25 new-meetup test
        meetups = c.meetups
        if meetups and meetups[0].starts_at + self.OVER_MS < ts:
            c.meetups = meetups = [m for m in meetups if m.starts_at + self.OVER_MS >= ts]
        if meetups and meetups[0].starts_at + self.settle_ms <= ts and a & 1023 < self.T_ATTEND:
            started = [m for m in meetups if m.going and m.starts_at + self.settle_ms <= ts]
            if started:
                m = started[((a >> 20) * len(started)) >> 10]
                while m.going:
                    member = m.going.pop()
                    if m.status.get(member) == "going":
                        m.status[member] = "attended"
                        return self._emit(c, ts, eid, m, member, "attended")
        upcoming = [m for m in meetups if m.starts_at > ts + self.CLOSE_MS]
        if not upcoming or (len(upcoming) < 4 and b >> 16 < self.T_NEW_MEETUP):
            upcoming.append(self._new_meetup(c, ts, k))
        m = upcoming[((a >> 20) * len(upcoming)) >> 10]
        member = c.member_table[b & c.member_mask]
        before = m.status.get(member)
        r = (a >> 10) & 1023
        if before == "going":
            status = "cancelled" if r < 512 else "maybe"
        elif before == "maybe":
            status = "going" if r < 614 else "declined"
        else:
            status = "going" if r < 614 else "maybe" if r < 870 else "declined"
        if status == "going":
            if m.capacity is not None and len(m.going) >= m.capacity:
                status = "maybe"  # full: the platform wait-lists
            else:
                m.going.append(member)
        m.status[member] = status
        return self._emit(c, ts, eid, m, member, status)

    def _new_meetup(self, c: Community, ts: int, k: int) -> Meetup:
        rng = self.rng
        # 40% start within hours (so check-ins happen inside a typical span), the rest within two weeks.
        ahead = rng.randint(1, 5) * HOUR_MS if rng.random() < 0.4 else rng.randint(12, 14 * 24) * HOUR_MS
        starts_at = (ts + ahead) // 1_800_000 * 1_800_000 + 1_800_000  # on a half hour
        topic = c.topic_table[rng.randrange(TABLE_SIZE)]
        tags = ["meetup", *rng.sample(TOPIC_TAGS[topic], 2)]
        capacity = None if rng.random() < 0.1 else rng.choice(self.CAPACITIES)
        cap = "" if capacity is None else f',"capacity":{capacity}'
        tail = f',"meetup_tags":{_json(tags)},"starts_at":{self.fmt.json(starts_at, c)}{cap}}}'
        m = Meetup(f"{self.sim.id_prefix}m{k}", starts_at, capacity, tags, tail)
        c.meetups.append(m)
        c.meetups.sort(key=lambda x: x.starts_at)
        return m

    def _emit(self, c: Community, ts: int, eid: str, m: Meetup, member: str, status: str) -> SimMessage:
        value = (
            f'{{"id":"{eid}"{c.json_head}{member}","ts":{self.fmt.json(ts, c)},'
            f'"meetup":"{m.id}","status":"{status}"{m.json_tail}'
        )
        return _new(SimMessage, ("rsvps", c.key, value.encode(), None))


class _LateProducer:
    """Valid events stamped ``late_by_ms``+ behind their community's newest event: must be dropped late.

    The community's newest event is in the same partition (same key), so whatever watermark the
    pipeline keeps per partition is at least that far ahead.  Late events touch no state (no reply
    target, no meetup), so they do not change the rest of the stream.
    """

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.rnd = sim.rng.random
        self.late_by = sim.config.late_by_ms
        self.pools = sim.phrasebank.pools

    def produce(self, c: Community, eid: str, k: int) -> SimMessage | None:
        if c.last_ts < 0:
            return None
        rnd = self.rnd
        ts = c.last_ts - self.late_by - int(rnd() * self.late_by)
        member = c.member_table[int(rnd() * len(c.member_table))]
        tsv = self.sim.fmt_ts(ts, c)
        if c.recent and rnd() < 0.6:
            post, _, tone = c.recent[int(rnd() * len(c.recent))]
            reaction = REACTIONS_BY_TONE[tone][int(rnd() * TABLE_SIZE)]
            d: dict[str, Any] = {"id": eid, "community": c.id, "member": member, "ts": tsv, "post": post}
            d["reaction"] = reaction
            return SimMessage("reactions", c.key, _dumps(d), "late")
        topic = c.topic_table[int(rnd() * TABLE_SIZE)]
        pool = self.pools[((c.lang * N_KINDS + POST) * N_TOPICS + topic) * N_TONES + NEU]
        text, tags = pool[int(rnd() * POOL_SIZE)]
        d = {"id": eid, "community": c.id, "member": member, "ts": tsv, "post": f"{self.sim.id_prefix}p{k}"}
        d.update(text=text, kind="post", tags=tags)
        return SimMessage("posts", c.key, _dumps(d), "late")


class _MalformedProducer:
    """Hostile messages, one category after another in shuffled rounds so every category shows up."""

    REQUIRED: ClassVar[dict[str, tuple[str, ...]]] = {
        "posts": ("id", "community", "member", "ts", "post", "text"),
        "reactions": ("id", "community", "member", "ts", "post", "reaction"),
        "rsvps": ("id", "community", "member", "ts", "meetup", "status"),
    }
    STRING_FIELDS: ClassVar[dict[str, tuple[str, ...]]] = {
        "posts": ("id", "community", "member", "post", "text"),
        "reactions": ("id", "community", "member", "post"),
        "rsvps": ("id", "community", "member", "meetup"),
    }

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.rng = sim.rng
        self.deck: list[str] = []
        self.makers: dict[str, Callable[[str, dict[str, Any], int], tuple[str, bytes]]] = {
            name: getattr(self, f"_{name}") for name in MALFORMED_KINDS
        }

    def produce(self, c: Community, ts: int, eid: str, k: int) -> SimMessage:
        if not self.deck:
            self.deck = list(MALFORMED_KINDS)
            self.rng.shuffle(self.deck)
        name = self.deck.pop()
        topic = TOPICS[self.rng.randrange(3)]
        topic, value = self.makers[name](topic, self._valid_dict(c, topic, ts, eid, k), ts)
        self.sim.stats[f"malformed:{name}"] += 1
        return SimMessage(topic, c.key, value, MALFORMED_KINDS[name])

    def oversized(self, c: Community, ts: int, eid: str, k: int, size: int) -> SimMessage:
        """A well-formed post whose text alone is ``size`` bytes: rejected by size before parsing."""
        d = self._valid_dict(c, "posts", ts, eid, k)
        d["text"] = "x" * size
        return SimMessage("posts", c.key, _dumps(d), "oversized")

    def _valid_dict(self, c: Community, topic: str, ts: int, eid: str, k: int) -> dict[str, Any]:
        """A valid event (integer ts) that each category then breaks in exactly one way."""
        d: dict[str, Any] = {"id": eid, "community": c.id, "member": c.member_table[0], "ts": ts}
        prefix = self.sim.id_prefix
        if topic == "posts":
            d.update(post=f"{prefix}p{k}", text="malformed on purpose", kind="post", tags=["ai"])
        elif topic == "reactions":
            d.update(post=c.recent[-1][0] if c.recent else f"{prefix}p0", reaction="like")
        else:
            d.update(meetup=f"{prefix}m0", status="going", meetup_tags=["meetup"])
            d.update(starts_at=ts + HOUR_MS, capacity=50)
        return d

    # One method per MALFORMED_KINDS entry: (topic, valid dict, ts) -> (topic, bytes).

    def _random_bytes(self, topic: str, d: dict[str, Any], ts: int) -> tuple[str, bytes]:
        first = bytes([0x80 + self.rng.randrange(128)])  # never a JSON value start, never whitespace
        return topic, first + self.rng.randbytes(self.rng.randrange(0, 300))

    def _invalid_utf8(self, topic: str, d: dict[str, Any], ts: int) -> tuple[str, bytes]:
        raw = _dumps(d)
        bad = self.rng.choice((b"\xff\xfe", b"\xc3\x28", b"\xed\xa0\x80", b"\xe4\xb8", b"\x80"))
        at = raw.index(b'"member":"') + 10  # inside a string value: only the encoding is wrong
        return topic, raw[:at] + bad + raw[at:]

    def _truncated_json(self, topic: str, d: dict[str, Any], ts: int) -> tuple[str, bytes]:
        raw = _dumps(d)
        return topic, raw[: self.rng.randrange(1, len(raw))]

    def _bad_json_syntax(self, topic: str, d: dict[str, Any], ts: int) -> tuple[str, bytes]:
        raw = _dumps(d)
        variants = (
            raw.replace(f'"ts":{ts}'.encode(), b'"ts":NaN'),
            b"\xef\xbb\xbf" + raw,  # UTF-8 BOM
            raw[:-1] + b",}",  # trailing comma
            raw.replace(b'"', b"'"),  # single quotes
            raw[:-1] + b',"x":"\\ud800"}',  # lone surrogate escape
            raw + raw,  # two documents in one message
            b"",
            b"  \n ",
            raw[:-1] + b"/* comment */}",
        )
        return topic, self.rng.choice(variants)

    def _deep_nesting(self, topic: str, d: dict[str, Any], ts: int) -> tuple[str, bytes]:
        depth = 5000
        r = self.rng.randrange(3)
        if r == 0:
            return topic, b"[" * depth + b"]" * depth
        if r == 1:
            return topic, b'{"a":' * depth + b"1" + b"}" * depth
        return topic, _dumps(d)[:-1] + b',"extra":' + b"[" * depth + b"]" * depth + b"}"

    def _not_an_object(self, topic: str, d: dict[str, Any], ts: int) -> tuple[str, bytes]:
        values = (
            b"[" + _dumps(d) + b"]",
            b"42",
            str(ts).encode(),
            b'"hello"',
            b"null",
            b"true",
            b"[]",
            b"-0.5",
        )
        return topic, self.rng.choice(values)

    def _missing_field(self, topic: str, d: dict[str, Any], ts: int) -> tuple[str, bytes]:
        del d[self.rng.choice(self.REQUIRED[topic])]
        return topic, _dumps(d)

    def _wrong_type(self, topic: str, d: dict[str, Any], ts: int) -> tuple[str, bytes]:
        # No integral floats for ts or capacity: the JSON Schema accepts 1.0 as an integer.
        r = self.rng.randrange(4)
        if r == 0:
            d[self.rng.choice(self.STRING_FIELDS[topic])] = self.rng.randrange(1, 10**6)
        elif r == 1:
            d["ts"] = self.rng.choice((True, [ts], {"ms": ts}, None))
        elif r == 2 and topic == "rsvps":
            d["capacity"] = self.rng.choice(("50", 50.5, True))
        elif r == 2:
            d["member"] = None
        elif topic == "posts":
            d["tags"] = self.rng.choice(("ai", [1, 2], [None], {"a": 1}))
        else:
            d["id"] = [d["id"]]
        return topic, _dumps(d)

    def _unknown_enum(self, topic: str, d: dict[str, Any], ts: int) -> tuple[str, bytes]:
        if topic == "reactions":
            d["reaction"] = self.rng.choice(("meh", "🔥", "LIKE", "dislike", "", "clap"))
        elif topic == "rsvps":
            d["status"] = self.rng.choice(("interested", "Going", "no", "waitlist", ""))
        else:
            d["kind"] = self.rng.choice(("question", "announcement", "NEED", "", "ask"))
        return topic, _dumps(d)

    def _empty_id(self, topic: str, d: dict[str, Any], ts: int) -> tuple[str, bytes]:
        d[self.rng.choice(("id", "id", "community", "member", "meetup" if topic == "rsvps" else "post"))] = ""
        return topic, _dumps(d)

    def _over_limit(self, topic: str, d: dict[str, Any], ts: int) -> tuple[str, bytes]:
        r = self.rng.randrange(3)
        if topic == "posts" and r == 0:
            d["text"] = self.rng.choice(("y", "长")) * 10_001
        elif topic == "posts" and r == 1:
            d["tags"] = [f"t{i}" for i in range(33)]
        elif topic == "rsvps" and r < 2:
            d["capacity"] = self.rng.choice((-1, 1_000_001))
        else:
            d[self.rng.choice(("id", "member", "community"))] = "z" * 257
        return topic, _dumps(d)

    def _ts_year_9999(self, topic: str, d: dict[str, Any], ts: int) -> tuple[str, bytes]:
        d["ts"] = self.rng.choice(
            ("9999-12-31T23:59:59Z", "9999-01-01T00:00:00.000+00:00", 253_402_300_799_000)
        )
        return topic, _dumps(d)

    def _ts_before_1970(self, topic: str, d: dict[str, Any], ts: int) -> tuple[str, bytes]:
        d["ts"] = self.rng.choice(("1969-07-20T20:17:40Z", "0001-01-01T00:00:00Z", -1, -86_400_000))
        return topic, _dumps(d)

    def _ts_naive(self, topic: str, d: dict[str, Any], ts: int) -> tuple[str, bytes]:
        rfc = str(self.sim.fmt_ts(ts, _UTC_MS))
        d["ts"] = rfc[:-1] if self.rng.random() < 0.5 else rfc[:-5]  # ...T12:34:56.789 or ...T12:34:56
        return topic, _dumps(d)

    def _ts_not_rfc3339(self, topic: str, d: dict[str, Any], ts: int) -> tuple[str, bytes]:
        bad = (
            "yesterday",
            "2026-02-30T00:00:00Z",
            "",
            "12/31/2025 10:00 PM",
            str(ts),
            "2026-01-01T10:00:00+25:00",
        )
        d["ts"] = self.rng.choice(bad)
        return topic, _dumps(d)

    def _rsvp_bad_starts_at(self, topic: str, d: dict[str, Any], ts: int) -> tuple[str, bytes]:
        d = {k: v for k, v in d.items() if k in ("id", "community", "member", "ts")}
        d.update(meetup=f"{self.sim.id_prefix}m0", status="going", meetup_tags=["meetup"], capacity=50)
        rfc = str(self.sim.fmt_ts(ts + HOUR_MS, _UTC_MS))
        d["starts_at"] = self.rng.choice((rfc[:-1], "next Tuesday", "2026-13-01T18:00:00Z"))
        return "rsvps", _dumps(d)


_UTC_MS = Community("utc", b"utc", EN, 0.0, 0, "Z", 1, False)
"""A formatting profile (RFC 3339, ms, Z) for the malformed producer's timestamp variants."""


# --------------------------------------------------------------------------------------------------
# The scheduler
# --------------------------------------------------------------------------------------------------


def _gap(rnd: Callable[[], float], p: float) -> int:
    """Events to skip before the next one that has probability ``p`` (geometric; -1: never).

    >>> _gap(lambda: 0.5, 0.0), _gap(lambda: 0.5, 1.0), _gap(lambda: 0.5, 0.5)
    (-1, 0, 1)
    """
    if p <= 0.0:
        return -1
    if p >= 1.0:
        return 0
    return int(math.log(1.0 - rnd()) / math.log1p(-p))


class Simulator:
    """Generates the stream of one :class:`SimConfig`; see the module docstring.

    Construction builds the phrasebank and the world (communities, members); :meth:`messages`
    rebuilds the world and walks event time, so each call yields the same stream again.
    """

    tick_events = 1000
    """Scenarios tick every this many events (cheap enough to ignore, fine enough for surges)."""

    def __init__(self, config: SimConfig, scenarios: Sequence[Scenario] = ()) -> None:
        self.config = config
        self.scenarios = list(scenarios)
        self.id_prefix: str = config.id_prefix or ""
        self.start_ms: int = config.start_ms if config.start_ms is not None else 0
        self.span_ms = config.span_seconds * 1000
        self.phrasebank = _phrasebank(config.seed)
        self.fmt_ts = _TsFormatter()
        self._reset()

    # -- world ------------------------------------------------------------------------------------

    def _reset(self) -> None:
        self.rng = random.Random(self.config.seed)
        self.stats: Counter[str] = Counter()
        self.communities = self._make_communities(self.rng)
        self._assign_members(self.rng)
        # Community draw: >= 64 slots per community (max 65536), a power of two for a bit mask.
        size = 1 << max(10, min(COMMUNITY_TABLE_MAX_BITS, (64 * len(self.communities)).bit_length()))
        self.community_table: list[Community] = [
            self.communities[i] for i in _table([c.weight for c in self.communities], size)
        ]
        self.time_quantiles = self._activity_curve(self.rng)

    def _make_communities(self, rng: random.Random) -> list[Community]:
        cfg = self.config
        n = cfg.communities
        zh = set(rng.sample(range(n), round(cfg.chinese_share * n)))
        zipf = [1.0 / (rank + 1) ** 1.1 for rank in range(n)]
        rng.shuffle(zipf)  # the biggest community is not always the first, nor always English
        names: set[str] = set()
        out = []
        for i in range(n):
            lang = ZH if i in zh else EN
            name = f"{rng.choice(ZH_CITIES if lang == ZH else EN_CITIES)}-{rng.choice(THEMES)}"
            if name in names:
                name = f"{name}-{i}"
            names.add(name)
            offset, suffix = rng.choice(ZH_OFFSETS if lang == ZH else EN_OFFSETS)
            c = Community(
                id=name, key=name.encode(), lang=lang, weight=zipf[i], offset_ms=offset, suffix=suffix,
                ts_style=rng.choice((0, 0, 1, 1, 2)), omit_defaults=rng.random() < 0.3,
            )  # fmt: skip
            c.set_languages(*((0.03, 0.77, 0.20) if lang == ZH else (0.94, 0.02, 0.04)))
            c.set_topics([rng.paretovariate(1.5) for _ in TOPIC_NAMES])
            positive, negative = rng.uniform(0.3, 0.55), rng.uniform(0.05, 0.2)
            c.set_tone(positive, 1 - positive - negative, negative)
            out.append(c)
        return out

    def _assign_members(self, rng: random.Random) -> None:
        """Members: a Zipf-drawn home community, 20% join one or two more; activity is Pareto."""
        cfg = self.config
        comms = self.communities
        index = range(len(comms))
        weights = [c.weight for c in comms]
        for m in range(cfg.members):
            member = f"u{m:05d}"
            activity = rng.paretovariate(1.2)  # heavy tail: a few members do most of the talking
            home = rng.choices(index, weights=weights)[0]
            comms[home].members.append(member)
            comms[home].member_weights.append(activity)
            if rng.random() < 0.2:
                for other in sorted(set(rng.choices(index, weights=weights, k=rng.randint(1, 2))) - {home}):
                    comms[other].members.append(member)
                    comms[other].member_weights.append(activity * 0.3)
        for i, c in enumerate(comms):
            if not c.members:  # tiny community with no one drawn: give it a founder
                c.members.append(f"u{cfg.members + i:05d}")
                c.member_weights.append(1.0)
            c.rebuild_member_table(rng)

    def _activity_curve(self, rng: random.Random, segments: int = 1024) -> list[int]:
        """Event-time quantiles of a daily rhythm with noise: event i sits at quantile i/n.

        Returns ``segments + 1`` times from start to start+span; interpolating between them maps
        event rank to event time, so busy hours get dense and nights sparse, monotonically.
        """
        fine = 4 * segments
        start, span = self.start_ms, self.span_ms
        rates = []
        for j in range(fine):
            hour = ((start + span * (j + 0.5) / fine) / HOUR_MS) % 24
            rates.append(max(0.1, 1 + 0.6 * math.sin(2 * math.pi * (hour - 9) / 24) + rng.uniform(-0.2, 0.2)))
        cum = list(itertools.accumulate(rates))
        total = cum[-1]
        quantiles = [start]
        j = 0
        for q in range(1, segments):
            target = total * q / segments
            while cum[j] < target:
                j += 1
            prev = cum[j - 1] if j else 0.0
            quantiles.append(start + int(span * (j + (target - prev) / (cum[j] - prev)) / fine))
        quantiles.append(start + span)
        return quantiles

    # -- scheduler --------------------------------------------------------------------------------

    def messages(self) -> Iterator[SimMessage]:
        """The whole stream, in emission order (event time ascending up to ``disorder_ms`` jitter).

        :attr:`stats` counts what was emitted: ``posts``/``reactions``/``rsvps`` (valid events),
        ``late``, ``duplicate``, ``oversized`` and ``malformed:<category>``.
        """
        self._reset()
        cfg = self.config
        rng = self.rng
        getrandbits, rnd = rng.getrandbits, rng.random
        stats = self.stats
        n = cfg.events
        start = self.start_ms
        quantiles = self.time_quantiles
        segments = len(quantiles) - 1
        # Jitter back in time, skewed to small delays (most events arrive promptly).
        jitter = [cfg.disorder_ms * j * j // 4096 for j in range(64)]
        t_posts = round(cfg.mix[0] * 1024)
        t_reactions = round((cfg.mix[0] + cfg.mix[1]) * 1024)
        table = self.community_table
        mask = len(table) - 1
        post, react = _PostProducer(self).produce, _ReactionProducer(self).produce
        rsvp, late = _RsvpProducer(self).produce, _LateProducer(self).produce
        bad = _MalformedProducer(self)
        extra_rate = cfg.dup_rate + cfg.malformed_rate
        dup_share = cfg.dup_rate / extra_rate if extra_rate else 0.0
        # Rare things (late events, extra messages, scenario ticks) are scheduled by index, so an
        # ordinary event pays one comparison for each instead of a random draw.
        next_late = _gap(rnd, cfg.late_rate)
        next_extra = _gap(rnd, extra_rate)
        oversized = sorted(rng.sample(range(n), min(cfg.oversized_count, n))) if cfg.oversized_bytes else []
        next_oversized = oversized.pop(0) if oversized else -1
        scenarios, tick = self.scenarios, self.tick_events
        next_tick = 0 if scenarios else -1
        prefix = self.id_prefix
        ring: deque[SimMessage] = deque(maxlen=64)  # recent valid messages: what retries re-send
        n_posts = n_reactions = n_rsvps = 0

        try:
            for seg in range(segments):
                # Events of one activity segment are spread evenly over its event-time interval.
                i0, i1 = seg * n // segments, (seg + 1) * n // segments
                q0, dq, cnt = quantiles[seg], quantiles[seg + 1] - quantiles[seg], i1 - i0
                for i in range(i0, i1):
                    base = q0 + dq * (i - i0) // cnt
                    if i == next_tick:
                        for scenario in scenarios:
                            scenario.tick(self, base)
                        next_tick += tick
                    bits = getrandbits(30)  # 0-13 community, 14-19 jitter, 20-29 event type
                    c = table[bits & mask]
                    eid = f"{prefix}{i}"
                    msg = None
                    if i == next_late:
                        next_late += 1 + _gap(rnd, cfg.late_rate)
                        msg = late(c, eid, i)  # None until the community has a recent event
                        if msg is not None:
                            stats["late"] += 1
                    if msg is None:
                        ts = base - jitter[(bits >> 14) & 63]
                        if ts < start:
                            ts = start
                        r = bits >> 20
                        if r < t_posts:
                            msg = post(c, ts, eid, i)
                            n_posts += 1
                        elif r < t_reactions:
                            msg = react(c, ts, eid, i)
                            if msg is None:  # nothing to react to yet: the community's first post instead
                                msg = post(c, ts, eid, i)
                                n_posts += 1
                            else:
                                n_reactions += 1
                        else:
                            msg = rsvp(c, ts, eid, i)
                            n_rsvps += 1
                        if ts > c.last_ts:
                            c.last_ts = ts
                        ring.append(msg)
                    yield msg
                    if i == next_extra:
                        next_extra += 1 + _gap(rnd, extra_rate)
                        if rnd() < dup_share:
                            orig = ring[int(rnd() * len(ring))]
                            stats["duplicate"] += 1
                            yield _new(SimMessage, (orig.topic, orig.key, orig.value, "duplicate"))
                        else:
                            yield bad.produce(c, base, f"{prefix}x{i}", i)
                    if i == next_oversized:
                        next_oversized = oversized.pop(0) if oversized else -1
                        stats["oversized"] += 1
                        yield bad.oversized(c, base, f"{prefix}o{i}", i, cfg.oversized_bytes or 0)
        finally:  # also when the consumer stops early
            stats.update(posts=n_posts, reactions=n_reactions, rsvps=n_rsvps)

    def iter_batches(self, size: int) -> Iterator[list[SimMessage]]:
        """:meth:`messages` in lists of up to ``size``, for producers that send in batches."""
        it = self.messages()
        while batch := list(itertools.islice(it, size)):
            yield batch


# --------------------------------------------------------------------------------------------------
# Labelled scenarios
# --------------------------------------------------------------------------------------------------


@dataclass
class StoryEvent:
    """One scripted change: what happened, to whom, from when (event time, ms)."""

    kind: str  # atmosphere_drop | topic_surge
    community: str
    ts: int
    detail: str


class DemoStory:
    """What ``pulse demo`` scripts into an otherwise ordinary stream, so each signal has something
    to catch: at ``drop_at`` of the span the busiest English community turns sour (70 % negative
    posts, and the reactions that go with them); at ``surge_at`` the busiest Chinese community
    (the second busiest English one if there is none) starts talking mostly about ``topic``.

    >>> story = DemoStory()
    >>> sim = Simulator(SimConfig(seed=3, events=20_000, communities=6, start_ms=1_767_225_600_000), [story])
    >>> _ = sum(1 for _ in sim.messages())
    >>> [(s.kind, s.ts > sim.start_ms) for s in story.script]
    [('topic_surge', True), ('atmosphere_drop', True)]
    """

    def __init__(self, drop_at: float = 0.6, surge_at: float = 0.5, topic: str = "ai") -> None:
        self.drop_at, self.surge_at, self.topic = drop_at, surge_at, TOPIC_NAMES.index(topic)
        self.script: list[StoryEvent] = []

    def tick(self, sim: Simulator, ts: int) -> None:
        done = {s.kind for s in self.script}
        elapsed = (ts - sim.start_ms) / sim.span_ms
        ranked = sorted(sim.communities, key=lambda c: -c.weight)
        if "topic_surge" not in done and elapsed >= self.surge_at:
            zh = [c for c in ranked if c.lang == ZH]
            en = [c for c in ranked if c.lang == EN]
            target = zh[0] if zh else en[min(1, len(en) - 1)] if en else ranked[-1]
            target.set_topics([30.0 if i == self.topic else 1.0 for i in range(N_TOPICS)])
            self.script.append(StoryEvent("topic_surge", target.id, ts, TOPIC_NAMES[self.topic]))
        if "atmosphere_drop" not in done and elapsed >= self.drop_at:
            en = [c for c in ranked if c.lang == EN] or ranked
            en[0].set_tone(0.05, 0.25, 0.70)
            self.script.append(StoryEvent("atmosphere_drop", en[0].id, ts, "70 % negative posts"))
