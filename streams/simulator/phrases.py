"""Phrase data of the simulator: templates with slots in English, Chinese and code-switched
text, expanded once into pools of posts with a known tone (:class:`Phrasebank`)."""

from __future__ import annotations

import functools
import random
from typing import Any

from streams.simulator.base import _json

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


