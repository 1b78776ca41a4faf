"""Labelled matching streams: needs and offers whose true partners are known, and meetups with
known interests.

Shared by ``pulse evaluate matching``, the matching study (``studies/evaluate_matching.py``) and
the tests; :func:`run_matching` and :func:`run_reco` score the operators offline.
"""

from __future__ import annotations

import math
import random
import statistics
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from schemas.events import Event, Post, Reaction, Rsvp
from streams.operators.base import Output
from streams.operators.matching import MatchConfig, MatchMaker, MatchState
from streams.operators.recommendations import MeetupRecommender, RecoConfig, RecoState
from streams.simulator import N_TONES, POST, TOPIC_NAMES, TOPIC_TAGS, Phrasebank

DAY = 86_400_000


HOUR = 3_600_000


T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z


@dataclass(frozen=True, slots=True)
class Service:
    name: str
    topic: int  # index into streams.simulator.TOPIC_NAMES / TOPIC_TAGS
    tags: tuple[str, ...]  # specific tags (topic tags are added from TOPIC_TAGS)
    en_need: tuple[str, ...]
    en_offer: tuple[str, ...]
    zh_need: tuple[str, ...]
    zh_offer: tuple[str, ...]


S = Service


SERVICES: tuple[Service, ...] = (
    S("seed-intros", 0, ("seed", "investors"),
      ("intros to seed investors", "warm intros to angel investors for our seed round"),
      ("intros to seed-stage investors from my network",
       "angel checks and investor intros for seed rounds"),
      ("种子轮投资人的引荐", "天使投资人，准备融种子轮"),
      ("种子轮投资人引荐", "天使投资，关注种子轮项目")),
    S("deck-review", 0, ("pitch",),
      ("feedback on our pitch deck", "someone to review our pitch deck before the raise"),
      ("pitch deck reviews", "honest feedback on pitch decks and fundraising narrative"),
      ("帮忙看看商业计划书和路演材料", "路演前有人帮忙改商业计划书"),
      ("免费帮看商业计划书", "路演辅导和商业计划书修改")),
    S("financial-model", 0, ("finance",),
      ("help building a financial model for our Series A", "a fractional CFO to build our financial model"),
      ("fractional CFO services and financial modeling", "financial model templates and CFO advice"),
      ("找人帮忙搭财务模型", "兼职CFO，帮我们做财务模型"),
      ("兼职CFO服务，财务模型搭建", "财务模型模板和财务咨询")),
    S("frontend", 1, ("frontend", "react"),
      ("a frontend engineer with React experience", "a senior React developer for our web app"),
      ("frontend development in React, available for contract work",
       "senior React developer open to freelance frontend projects"),
      ("前端工程师，需要React经验", "资深React前端开发"),
      ("资深前端工程师可接兼职，熟悉React", "React前端开发，可接外包项目")),
    S("ml-engineer", 1, ("ml",),
      ("an ML engineer to build our recommendation models",
       "a machine learning engineer for ranking and recommendations"),
      ("machine learning engineering, recommendation systems",
       "ML engineer available for recommendation and ranking projects"),
      ("算法工程师，做推荐系统", "机器学习工程师，负责推荐排序"),
      ("算法工程师可接推荐系统项目", "机器学习推荐排序方向，可兼职")),
    S("mock-interview", 1, ("talent",),
      ("mock interviews before my onsite loop", "interview practice for a senior engineering role"),
      ("mock interviews and resume reviews", "interview coaching for engineering candidates"),
      ("找人做模拟面试", "面试前想练习一下技术面试"),
      ("模拟面试和简历修改", "技术面试辅导")),
    S("logistics-pilot", 2, ("b2b",),
      ("pilot customers in logistics for our routing software",
       "logistics companies to pilot our route optimization tool"),
      ("our logistics operations team can pilot routing software",
       "intros to logistics buyers for route optimization pilots"),
      ("物流行业的试点客户，试用路线规划软件", "愿意试点路线优化工具的物流公司"),
      ("我们做物流运营，可以试点路线规划软件", "可以对接物流公司做路线优化试点")),
    S("healthcare-pilot", 2, ("customers",),
      ("hospital design partners to pilot our healthcare app",
       "clinics willing to pilot a patient intake tool"),
      ("intros to hospital buyers for healthcare pilots",
       "our clinic network can pilot patient intake tools"),
      ("医院的试点合作，试用我们的医疗应用", "愿意试点患者登记工具的诊所"),
      ("可以对接医院采购做医疗试点", "我们的诊所网络可以试点患者登记工具")),
    S("retail-pilot", 2, ("sales",),
      ("retail stores to pilot our inventory tool", "shops willing to pilot inventory forecasting"),
      ("we run retail stores and can pilot inventory software",
       "intros to retail chains for inventory pilots"),
      ("零售门店试点库存管理系统", "愿意试点库存预测的门店"),
      ("我们有零售门店，可以试点库存软件", "可以对接连锁零售做库存试点")),
    S("venue", 3, ("events",),
      ("a venue for a 60-person meetup", "event space for our monthly meetup"),
      ("our office as a meetup venue, room for 60", "free event space for community meetups"),
      ("活动场地，能容纳60人", "每月线下活动的场地"),
      ("可以提供办公室做活动场地，能坐60人", "免费提供社区活动场地")),
    S("speakers", 3, ("networking",),
      ("speakers for our meetup on AI products", "a guest speaker for our founder meetup"),
      ("a talk at your meetup about building AI products", "speaking at founder meetups"),
      ("活动分享嘉宾，AI产品方向", "创始人聚会的分享嘉宾"),
      ("可以在活动上分享AI产品经验", "愿意作为嘉宾在创始人聚会分享")),
    S("hackathon-sponsor", 3, ("meetup",),
      ("sponsors for our weekend hackathon", "a sponsor to cover food at our hackathon"),
      ("sponsoring food and prizes for hackathons", "hackathon sponsorship from our devrel budget"),
      ("周末黑客松的赞助商", "黑客松餐饮赞助"),
      ("可以赞助黑客松的餐饮和奖品", "我们有预算赞助黑客松")),
    S("rag", 4, ("rag", "llm"),
      ("an engineer who has shipped RAG with LLMs", "help with retrieval quality in our RAG pipeline"),
      ("consulting on RAG pipelines and vector search", "LLM engineer, built several RAG systems"),
      ("做过大模型RAG落地的工程师", "RAG检索效果优化"),
      ("RAG和向量检索咨询", "大模型工程师，落地过多个RAG项目")),
    S("gpu-credits", 4, ("ai",),
      ("GPU credits for fine-tuning our model", "cheap GPU compute for training"),
      ("free GPU credits for AI startups", "spare GPU compute for fine-tuning runs"),
      ("微调模型需要GPU算力", "便宜的GPU训练算力"),
      ("给AI创业团队提供免费GPU算力", "闲置GPU算力，可用于微调")),
    S("llm-eval", 4, ("llm",),
      ("advice on evaluating LLM outputs in production", "an LLM evaluation setup for our chatbot"),
      ("our LLM eval framework and benchmarks", "advice on LLM evaluation and red teaming"),
      ("怎么评测大模型输出质量", "给客服机器人搭大模型评测"),
      ("可以分享大模型评测框架", "大模型评估和红队测试经验")),
    S("kubernetes", 5, ("infra",),
      ("help debugging our Kubernetes cluster", "a Kubernetes expert to fix our deployments"),
      ("Kubernetes and Terraform consulting", "hands-on help with Kubernetes deployments"),
      ("Kubernetes集群问题排查", "熟悉Kubernetes部署的专家"),
      ("Kubernetes和Terraform咨询", "可以帮忙搞定Kubernetes部署")),
    S("beta-testers", 5, ("open-source",),
      ("beta testers for our CLI tool", "developers to beta test our open-source SDK"),
      ("beta testing developer tools and CLIs", "feedback on open-source SDKs as a beta tester"),
      ("命令行工具招募内测用户", "开源SDK的内测开发者"),
      ("愿意内测开发者工具和命令行", "可以内测开源SDK并反馈")),
    S("security-audit", 5, ("devtools",),
      ("a security audit of our API", "a penetration test before our SOC 2"),
      ("penetration testing and API security audits", "SOC 2 readiness and security reviews"),
      ("API安全审计", "SOC 2之前的渗透测试"),
      ("渗透测试和API安全审计", "SOC 2合规和安全评审")),
    S("onboarding-feedback", 6, ("product",),
      ("feedback on our onboarding flow", "UX feedback on the signup and onboarding of our app"),
      ("UX reviews of onboarding flows", "a teardown of your signup and onboarding UX"),
      ("帮忙看看新手引导流程", "注册和新手引导的体验反馈"),
      ("新手引导流程的体验评审", "注册流程和新手引导体验诊断")),
    S("product-hunt", 6, ("launch",),
      ("support for our Product Hunt launch", "a hunter for our Product Hunt launch"),
      ("hunting your Product Hunt launch", "Product Hunt launch planning and upvotes"),
      ("Product Hunt发布求支持", "Product Hunt发布找hunter"),
      ("可以帮忙策划Product Hunt发布", "Product Hunt发布支持和点赞")),
    S("seo", 6, ("growth",),
      ("a growth marketer for SEO and content", "help with SEO for our SaaS blog"),
      ("SEO and content marketing for SaaS", "growth marketing with a focus on SEO"),
      ("做SEO和内容的增长运营", "SaaS博客的SEO优化"),
      ("SaaS的SEO和内容营销", "专注SEO的增长营销")),
    S("cto-cofounder", 7, ("cofounder",),
      ("a technical cofounder to be our CTO", "a CTO cofounder for a fintech startup"),
      ("experienced engineer looking to join as CTO cofounder", "open to becoming a technical cofounder"),
      ("技术合伙人，担任CTO", "金融科技项目找CTO合伙人"),
      ("资深工程师，想作为技术合伙人加入", "愿意以CTO合伙人身份加入创业项目")),
    S("equity-advice", 7, ("equity",),
      ("advice on cofounder equity split and vesting", "a fair vesting schedule for a late cofounder"),
      ("our cofounder agreement template with vesting", "advice on equity splits and vesting schedules"),
      ("合伙人股权怎么分，成熟期怎么定", "后加入合伙人的股权成熟方案"),
      ("可以分享合伙人协议和股权成熟模板", "股权分配和成熟期方案建议")),
    S("startup-lawyer", 7, ("team",),
      ("a startup lawyer for incorporation", "legal help with our incorporation and SAFE paperwork"),
      ("legal help with incorporation and contracts for startups",
       "startup lawyer, incorporation and SAFEs"),
      ("创业公司律师，办公司注册", "公司注册和融资文件的法律支持"),
      ("提供公司注册和合同法律服务", "创业律师，公司注册和融资文件")),
)  # fmt: skip


FRAMES: dict[tuple[str, str], tuple[str, ...]] = {
    ("en", "need"): (
        "Looking for {k} for our {ind} startup.", "We need {k}, we are based in {city}.",
        "Anyone know {k}? Early-stage {ind} team here.", "Seeking {k} asap.",
        "Any recommendations for {k}? Small team in {city}.",
    ),
    ("en", "offer"): (
        "Happy to help with {k}.", "I can offer {k} to founders here, based in {city}.",
        "Offering {k} for {ind} startups this month.", "Available: {k}. DM me.",
        "If you need {k}, ping me, I am in {city}.",
    ),
    ("zh", "need"): (
        "寻找{k}，我们在{city}做{ind}", "求推荐{k}，团队在{city}", "急需{k}，有推荐吗？",
        "我们是{ind}初创团队，想找{k}",
    ),
    ("zh", "offer"): (
        "可以提供{k}，坐标{city}", "本人可以帮忙：{k}，欢迎私信", "{k}，{ind}方向的创业团队优先",
        "这个月可以免费提供{k}",
    ),
}  # fmt: skip


FILLERS: dict[str, dict[str, tuple[str, ...]]] = {
    "en": {"city": ("Berlin", "Austin", "Singapore", "London", "Toronto", "Lisbon"),
           "ind": ("fintech", "climate", "healthcare", "logistics", "edtech", "retail")},
    "zh": {"city": ("深圳", "杭州", "上海", "北京", "成都"),
           "ind": ("金融科技", "新能源", "医疗健康", "物流", "教育", "零售")},
}  # fmt: skip


LANG_MIX = ((0.8, 0.1, 0.1), (0.15, 0.7, 0.15), (0.45, 0.35, 0.2))  # en, zh, mixed per community


ALL_TAGS = tuple(sorted({t for tags in TOPIC_TAGS for t in tags}))


def compose(rng: random.Random, service: Service, kind: str, lang: str) -> tuple[str, tuple[str, ...]]:
    """Text and tags of one need or offer: a frame, the service's key phrase, filler, noisy tags."""
    frame_lang = "en" if lang == "en" else "zh"
    key_lang = "zh" if lang == "zh" else "en"  # mixed: Chinese frame, English key phrase
    keys: tuple[str, ...] = getattr(service, f"{key_lang}_{kind}")
    fill = FILLERS[frame_lang]
    text = rng.choice(FRAMES[frame_lang, kind]).format(
        k=rng.choice(keys), city=rng.choice(fill["city"]), ind=rng.choice(fill["ind"])
    )
    tags: list[str] = []
    if rng.random() > 0.1:  # 10% of posts carry no tags at all
        tags += rng.sample(TOPIC_TAGS[service.topic], rng.randint(1, 2))
        if rng.random() < 0.6:
            tags += service.tags
        if rng.random() < 0.3:
            tags.append(rng.choice(ALL_TAGS))  # noise
        if rng.random() < 0.5:
            tags.append(kind)
    return text, tuple(dict.fromkeys(tags))


@dataclass
class MatchWorld:
    """A labeled stream: events in time order, and what each need/offer is."""

    events: list[Event] = field(default_factory=list)
    service: dict[str, str] = field(default_factory=dict)  # need/offer post → service name
    kind: dict[str, str] = field(default_factory=dict)
    member: dict[str, str] = field(default_factory=dict)
    lang: dict[str, str] = field(default_factory=dict)
    community: dict[str, str] = field(default_factory=dict)
    interval: dict[str, tuple[int, int]] = field(default_factory=dict)  # open [start, end)

    def truth(self) -> dict[str, set[str]]:
        """Need → offers that truly serve it (same service, other member, open at the same time)."""
        by_group: dict[tuple[str, str], list[str]] = defaultdict(list)
        for pid, kind in self.kind.items():
            if kind == "offer":
                by_group[self.community[pid], self.service[pid]].append(pid)
        out: dict[str, set[str]] = {}
        for pid, kind in self.kind.items():
            if kind != "need":
                continue
            start, end = self.interval[pid]
            out[pid] = {
                o
                for o in by_group[self.community[pid], self.service[pid]]
                if self.member[o] != self.member[pid]
                and self.interval[o][0] < end
                and start < self.interval[o][1]
            }
        return out


class _MatchCommunity:
    """Writes one community's needs and offers (with their replies and resolutions) into a world."""

    def __init__(
        self, world: MatchWorld, rng: random.Random, cid: str, mix: Sequence[float], members: int,
        ttl: int, self_trap_rate: float, emit: Any,
    ) -> None:  # fmt: skip
        self.world, self.rng, self.cid, self.mix, self.ttl = world, rng, cid, mix, ttl
        self.self_trap_rate, self.emit = self_trap_rate, emit
        self.people = [f"{cid}.u{i:03d}" for i in range(members)]
        self.specialists = {s.name: rng.sample(self.people, rng.randint(2, 5)) for s in SERVICES}
        self.offers: dict[str, list[str]] = defaultdict(list)

    def new_post(self, kind: str, ts: int) -> str:
        world, rng, cid = self.world, self.rng, self.cid
        svc = rng.choice(SERVICES)
        lang = rng.choices(("en", "zh", "mixed"), weights=self.mix)[0]
        if kind == "offer" or rng.random() < self.self_trap_rate:  # (a specialist needing their own service)
            member = rng.choice(self.specialists[svc.name])
        else:
            member = rng.choice(self.people)
        text, tags = compose(rng, svc, kind, lang)
        pid = f"{cid}.{kind[0]}{len(world.kind)}"
        self.emit(Post(f"e.{pid}", cid, member, ts, pid, text, kind, tags, None))
        world.service[pid], world.kind[pid], world.member[pid] = svc.name, kind, member
        world.lang[pid], world.community[pid] = lang, cid
        end = ts + self.ttl
        if kind == "need" and rng.random() < 0.5:
            end = ts + int(rng.uniform(1, 7) * DAY)
            reply_ts = ts + (end - ts) // 2
            helpers = [
                o for o in self.offers[svc.name]
                if world.member[o] != member and world.interval[o][0] <= reply_ts < world.interval[o][1]
            ]  # fmt: skip
            if helpers:  # a true offerer replies before the need is resolved: a past match
                helper = world.member[rng.choice(helpers)]
                self.emit(Post(f"e.r.{pid}", cid, helper, reply_ts, f"{pid}.r", "DM'd you!", "post", (), pid))
            self.emit(
                Post(f"e.x.{pid}", cid, member, end, f"{pid}.x", "Resolved, thanks!", "resolved", (), pid)
            )
        elif kind == "offer":
            self.offers[svc.name].append(pid)
            if rng.random() < 0.2:
                end = ts + int(rng.uniform(3, 10) * DAY)
                self.emit(
                    Post(f"e.x.{pid}", cid, member, end, f"{pid}.x", "Closing this.", "resolved", (), pid)
                )
        world.interval[pid] = (ts, end)
        return pid


def match_stream(
    seed: int = 0,
    communities: int = 3,
    days: int = 30,
    needs_per_day: float = 8,
    offers_per_day: float = 6,
    chatter_per_day: float = 30,
    reactions_per_day: float = 40,
    members: int = 150,
    ttl_days: float = 14,
    self_trap_rate: float = 0.05,
) -> MatchWorld:
    """A labeled stream of needs, offers, replies, resolutions, chatter and reactions."""
    rng = random.Random(f"match:{seed}")
    bank = Phrasebank(seed)
    world = MatchWorld()
    raw: list[tuple[int, int, Event]] = []  # (ts, tiebreak, event): sorted at the end

    def emit(ev: Event) -> None:
        raw.append((ev.ts, len(raw), ev))

    span = days * DAY
    for ci in range(communities):
        mix = LANG_MIX[ci % len(LANG_MIX)]
        c = _MatchCommunity(world, rng, f"c{ci}", mix, members, int(ttl_days * DAY), self_trap_rate, emit)
        # Offers start a few days earlier: a community has open offers before the first needs.
        n_offers, n_needs = int(offers_per_day * days), int(needs_per_day * days)
        offers = [c.new_post("offer", ts) for ts in sorted(T0 - 3 * DAY + rng.randrange(span + 3 * DAY)
                                                           for _ in range(n_offers))]  # fmt: skip
        for ts in sorted(T0 + rng.randrange(span) for _ in range(n_needs)):
            c.new_post("need", ts)
        for i in range(int(chatter_per_day * days)):
            ts = T0 + rng.randrange(span)
            topic = rng.randrange(len(TOPIC_NAMES))
            lang = rng.choices((0, 1, 2), weights=mix)[0]
            text, tags = rng.choice(bank.pool(lang, POST, topic, rng.randrange(N_TONES)))
            pid = f"{c.cid}.p{i}"
            emit(Post(f"e.{pid}", c.cid, rng.choice(c.people), ts, pid, text, "post", tuple(tags), None))
        # Reactions to offers, from members at random; some offerers are far more liked than others
        # (independently of what they offer: on this stream track record is not a relevance signal).
        reputation = {m: rng.paretovariate(1.5) for m in c.people}
        weights = [reputation[world.member[p]] for p in offers]
        for i in range(int(reactions_per_day * days)):
            target = rng.choices(offers, weights=weights)[0]
            ts = world.interval[target][0] + rng.randrange(DAY)
            reaction = rng.choice(("thanks", "insightful", "like", "like", "love"))
            emit(Reaction(f"e.{c.cid}.a{i}", c.cid, rng.choice(c.people), ts, target, reaction))
    world.events = [ev for _, _, ev in sorted(raw, key=lambda r: (r[0], r[1]))]
    return world


class MatchScore:
    """What a member looking at an open need's candidates would judge, need by need."""

    def __init__(self, world: MatchWorld) -> None:
        self.world = world
        self.offers: dict[tuple[str, str], list[str]] = defaultdict(list)
        for pid, kind in world.kind.items():
            if kind == "offer":
                self.offers[world.community[pid], world.service[pid]].append(pid)
        self.p3: list[float] = []
        self.p3_strict: list[float] = []
        self.r10: list[float] = []
        self.pair_hits: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        self.self_pairs = 0
        self.sizes: list[int] = []

    def judge(self, community: str, now: int, need: str, member: str, ranked: Sequence[str]) -> None:
        """Score ``ranked`` (best first) against the offers truly serving ``need`` and open at ``now``."""
        world = self.world
        true = {
            o
            for o in self.offers[community, world.service[need]]
            if world.member[o] != member and world.interval[o][0] <= now < world.interval[o][1]
        }
        self.self_pairs += sum(world.member[p] == member for p in ranked)
        if not true:
            return
        self.sizes.append(len(true))
        hits3 = sum(p in true for p in ranked[:3])
        self.p3.append(hits3 / min(3, len(true)))
        if len(true) >= 3:
            self.p3_strict.append(hits3 / 3)
        self.r10.append(sum(p in true for p in ranked[:10]) / min(10, len(true)))
        for o in true:
            group = "same-lang" if world.lang[need] == world.lang[o] else "cross-lang"
            self.pair_hits[group][1] += 1
            self.pair_hits[group][0] += o in ranked[:10]

    def metrics(self) -> dict[str, Any]:
        return {
            "needs": sum(k == "need" for k in self.world.kind.values()),
            "evaluations": len(self.p3),
            "mean_true": statistics.fmean(self.sizes) if self.sizes else math.nan,
            "p@3": statistics.fmean(self.p3) if self.p3 else math.nan,
            "p@3_strict": statistics.fmean(self.p3_strict) if self.p3_strict else math.nan,
            "r@10": statistics.fmean(self.r10) if self.r10 else math.nan,
            "pair_recall@10": {g: h / n for g, (h, n) in sorted(self.pair_hits.items())},
            "self_pairs": self.self_pairs,
        }


def run_matching(
    world: MatchWorld, config: MatchConfig, batch: int = 50
) -> tuple[dict[str, Any], list[Output]]:
    """Run the operator over the stream and score what members would see, once a day of event time:
    every open need's current top-k against the offers that truly serve it *and are open then*."""
    op = MatchMaker(config)
    states: dict[str, MatchState] = {}
    outputs = []
    events = world.events
    score = MatchScore(world)
    checkpoint = T0 + DAY

    def evaluate() -> None:
        for community, state in states.items():
            for need in state.posts.values():
                if need.kind == "need":
                    ranked = [p for p, _ in sorted(need.top.items(), key=lambda kv: (-kv[1], kv[0]))]
                    score.judge(community, state.clock, need.pid, need.member, ranked)

    for at in range(0, len(events), batch):
        chunk = events[at : at + batch]
        if chunk[0].ts >= checkpoint:
            evaluate()
            while checkpoint <= chunk[0].ts:
                checkpoint += DAY
        for ev in chunk:
            if ev.community not in states:
                states[ev.community] = op.new_state(ev.community)
        outputs.append(op.apply_batch(states, chunk))
    metrics = {**score.metrics(), "messages": sum(len(o.messages) for o in outputs)}
    return metrics, outputs


@dataclass(slots=True)
class _SimMeetup:
    id: str
    topic: int
    announced: int
    starts: int
    tags: tuple[str, ...]
    capacity: int | None
    quality: float  # latent popularity
    status: dict[str, str] = field(default_factory=dict)  # member → latest answer


@dataclass
class RecoWorld:
    events: list[Event]
    going: list[int]  # indexes of `going` RSVPs (the prequential test points)


def reco_stream(
    seed: int = 0,
    communities: int = 2,
    days: int = 40,
    members: int = 250,
    meetups_per_day: float = 6,
    rsvps_per_day: float = 120,
    posts_per_day: float = 20,
    reactions_per_day: float = 80,
) -> RecoWorld:
    """RSVP histories and reactions of members with latent topic interests."""
    rng = random.Random(f"reco:{seed}")
    raw: list[tuple[int, int, Event]] = []
    seq = 0
    n_topics = len(TOPIC_NAMES)
    for ci in range(communities):
        cid = f"r{ci}"
        people = [f"{cid}.u{i:03d}" for i in range(members)]
        interest = {}
        for m in people:
            w = [rng.gammavariate(0.3, 1.0) for _ in range(n_topics)]
            total = sum(w) or 1.0
            interest[m] = [x / total for x in w]
        activity = [rng.paretovariate(1.3) for _ in people]
        topic_weight = [rng.paretovariate(2.0) for _ in range(n_topics)]
        # Meetups: announced over time, start 1-10 days later; quality is a latent popularity.
        meetups: list[_SimMeetup] = []
        for j in range(int(meetups_per_day * days)):
            announced = T0 + int(rng.random() * days * DAY)
            topic = rng.choices(range(n_topics), weights=topic_weight)[0]
            meetups.append(_SimMeetup(
                f"{cid}.m{j}", topic, announced,
                announced + int(rng.uniform(1, 10) * DAY) // (30 * 60_000) * (30 * 60_000),
                ("meetup", *rng.sample(TOPIC_TAGS[topic], 2)),
                rng.choice((None, 30, 50, 80, 150)), rng.lognormvariate(0, 1.0),
            ))  # fmt: skip
        # Posts with topic tags, reactions from members interested in their topic.
        posts: list[tuple[int, str, int]] = []
        for j in range(int(posts_per_day * days)):
            ts = T0 + int(rng.random() * days * DAY)
            topic = rng.choices(range(n_topics), weights=topic_weight)[0]
            tags = tuple(rng.sample(TOPIC_TAGS[topic], 2))
            pid = f"{cid}.p{j}"
            posts.append((ts, pid, topic))
            seq += 1
            raw.append(
                (ts, seq, Post(f"e.{pid}", cid, rng.choice(people), ts, pid, "...", "post", tags, None))
            )
        posts.sort()
        for j in range(int(reactions_per_day * days)):
            m = rng.choices(people, weights=activity)[0]
            topic = rng.choices(range(n_topics), weights=interest[m])[0]
            ts = T0 + int(rng.random() * days * DAY)
            recent = [p for p in posts if p[0] <= ts and p[2] == topic][-20:]
            if recent:
                seq += 1
                reaction = rng.choice(("like", "love", "insightful", "thanks"))
                raw.append((ts, seq, Reaction(f"e.{cid}.a{j}", cid, m, ts, rng.choice(recent)[1], reaction)))
        # RSVPs in time order, so the simulated world knows who answered what.
        times = sorted(T0 + int(rng.random() * days * DAY) for _ in range(int(rsvps_per_day * days)))
        for j, ts in enumerate(times):
            m = rng.choices(people, weights=activity)[0]
            open_ = [
                x for x in meetups
                if x.announced <= ts < x.starts - 15 * 60_000 and m not in x.status
                and not (x.capacity and sum(s == "going" for s in x.status.values()) >= x.capacity)
            ]  # fmt: skip
            if not open_:
                continue
            like = [x.quality * (0.02 + interest[m][x.topic]) ** 1.5 for x in open_]
            x = rng.choices(open_, weights=like)[0]
            fit = interest[m][x.topic]
            r = rng.random()
            status = "going" if r < 0.35 + 0.6 * fit else "maybe" if r < 0.5 + 0.5 * fit else "declined"
            x.status[m] = status
            seq += 1
            ev = Rsvp(f"e.{cid}.v{j}", cid, m, ts, x.id, status, x.tags, x.starts, x.capacity)
            raw.append((ts, seq, ev))
            if status == "going":
                after = rng.random()
                if after < 0.1:  # cancels later
                    t2 = ts + int(rng.random() * max(1, x.starts - ts))
                    seq += 1
                    raw.append((t2, seq, replace(ev, id=f"{ev.id}.c", ts=t2, status="cancelled")))
                elif after < 0.75:  # checks in
                    t2 = x.starts + int(rng.random() * 2 * HOUR)
                    seq += 1
                    raw.append((t2, seq, replace(ev, id=f"{ev.id}.a", ts=t2, status="attended")))
    raw.sort(key=lambda r: (r[0], r[1]))
    events = [ev for _, _, ev in raw]
    going = [i for i, ev in enumerate(events) if ev.__class__ is Rsvp and ev.status == "going"]
    return RecoWorld(events, going)


def run_reco(world: RecoWorld, config: RecoConfig, warmup_days: float = 5) -> dict[str, float]:
    """Prequential hit rate@5 of the operator vs popularity, over ``going`` RSVPs after a warm-up."""
    op = MeetupRecommender(config)
    states: dict[str, RecoState] = {}
    test = set(world.going)
    start = T0 + int(warmup_days * DAY)
    hits = {"model": 0.0, "popularity": 0.0, "random": 0.0}
    n = 0
    for i, ev in enumerate(world.events):
        if ev.community not in states:
            states[ev.community] = op.new_state(ev.community)
        state = states[ev.community]
        if i in test and ev.ts >= start and isinstance(ev, Rsvp):
            if ev.ts > state.clock:  # what the member sees now: the operator's view at this event time
                state.clock = ev.ts
                if ev.ts >= state.retire_at:
                    op._retire(state)
            cands = [m for m in op.candidates(state) if ev.member not in state.meetups[m].responders]
            if ev.meetup in cands:  # a meetup seen before (its first RSVP cannot be predicted by anyone)
                n += 1
                recs = [m for m, _ in op.recommend(state, ev.member, 5)]
                hits["model"] += ev.meetup in recs
                pop = sorted(cands, key=lambda m: (-state.meetups[m].going, m))[:5]
                hits["popularity"] += ev.meetup in pop
                hits["random"] += min(1.0, 5 / len(cands))
        op.apply_batch(states, [ev])
    return {"tests": n, **{k: v / n for k, v in hits.items()}}
