"""Issue #5, end to end: a community whose atmosphere suddenly sours gets exactly one
``atmosphere_drop`` alert — on the ``alerts`` topic, in ``pulse:alerts:{community}`` and in
``pulse_alerts_total`` — with evidence that names the posts and members we wrote, while a steady
control community beside it stays silent.  Real broker, real Redis, a real ``pulse worker``.

The stream is replayed in event time, faster than real time but in the order it happened, as a
live platform delivers it: the worker runs while we publish (see the pacing note in the test).
Expectations come from the script (which posts we wrote as complaints, by whom, which reactions
we sent), never from the operator's output.
"""

from __future__ import annotations

import random
import subprocess
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from infra.local_services import free_port
from online_models.sentiment import sentiment
from streams.config import Settings
from streams.publisher import Outgoing, Publisher
from streams.topics import ensure_topics
from tests.reference import read_topic
from tests.texts import REACTIONS, TEXTS
from tests.workers import applied, pulse, stop

pytestmark = pytest.mark.slow

MIN = 60_000
HOUR = 3_600_000
WARM_HOURS = 72  # three days: the hour-of-day activity profile needs two, the tone baseline one
DROP_MINUTES = 45
POSTS_PER_HOUR = 90  # plus ~1.5 reactions and ~0.2 RSVPs per post: ~240 events an hour
DROP, CONTROL = "hikers-berlin", "readers-shanghai"

GRUMBLES = {
    "en": ("The venue was a bit noisy.", "Parking was a problem again.",
           "Slightly annoying that the room changed."),
    "zh": ("场地有点吵", "网络有点慢"),
}  # fmt: skip
"""The everyday negative posts of a healthy community: mild, and never as bad as a complaint."""
COMPLAINTS = {
    "en": ("This is terrible, the meetup was cancelled again.", "Awful experience, total waste of time.",
           "Really disappointed and frustrated with this group.",
           "The organizers ignored every complaint, this is a disgrace.",
           "Worst meetup ever, angry and disgusted."),
    "zh": ("太失望了，活动又取消了，浪费时间", "体验很差，太糟糕了", "这个群越来越无聊，广告太多，我要退群了",
           "组织者态度恶劣，太让人生气了"),
}  # fmt: skip
"""What the souring community writes: every one of these scores below every grumble."""
CALM = {"pos": 0.5, "neu": 0.4, "neg": 0.1}
SOUR = {"pos": 0.05, "neu": 0.2, "neg": 0.75}
NEGATIVE_REACTIONS = frozenset(("sad", "angry", "report"))
ALERT_BOUND_MS = 15 * MIN


@dataclass(frozen=True, slots=True)
class Scripted:
    """One event as published, with what the script meant by it (never what Pulse made of it)."""

    topic: str
    value: dict[str, Any]
    tone: str  # pos | neu | neg for posts, the tone of the post reacted to for reactions, "" for RSVPs
    phase: str  # warm | drop

    @property
    def ts(self) -> int:
        return int(self.value["ts"])

    @property
    def community(self) -> str:
        return str(self.value["community"])


def text(rng: random.Random, lang: str, tone: str, phase: str) -> str:
    if tone == "neg":
        return rng.choice((COMPLAINTS if phase == "drop" else GRUMBLES)[lang])
    return rng.choice(TEXTS[lang][tone])


def script(
    community: str, start: int, end: int, tone: dict[str, float], langs: dict[str, float], phase: str
) -> list[Scripted]:
    """A Poisson stream: posts with the given tone and language mix, reactions to the five latest
    posts in the tone of the post, a few RSVPs; sixty members, a fixed seed per community and phase."""
    rng = random.Random(f"{community}:{phase}")
    rate = POSTS_PER_HOUR * 2.7 / HOUR  # all events per ms
    out: list[Scripted] = []
    recent: list[tuple[str, str]] = []
    t = float(start)
    n = 0
    while (t := t + rng.expovariate(rate)) < end:
        n += 1
        base = {"id": f"{community}:{phase}:{n}", "community": community,
                "member": f"{community[:2]}{rng.randrange(60):02d}", "ts": int(t)}  # fmt: skip
        r = rng.random()
        if r < 1 / 2.7 or not recent:
            kind = rng.choices(list(tone), list(tone.values()))[0]
            lang = rng.choices(list(langs), list(langs.values()))[0]
            post = f"{community}:{phase}:p{n}"
            recent = [*recent[-4:], (post, kind)]
            value = {**base, "post": post, "text": text(rng, lang, kind, phase)}
            out.append(Scripted("posts", value, kind, phase))
        elif r < 2.5 / 2.7:
            post, kind = rng.choice(recent)
            value = {**base, "post": post, "reaction": rng.choice(REACTIONS[kind])}
            out.append(Scripted("reactions", value, kind, phase))
        else:
            value = {**base, "meetup": f"{community}:weekly", "status": "going"}
            out.append(Scripted("rsvps", value, "", phase))
    return out


def outgoing(events: Sequence[Scripted]) -> Iterator[Outgoing]:
    for e in events:
        yield Outgoing(e.topic, e.community.encode(), orjson.dumps(e.value))


def wait_applied(
    client: redis.Redis, total: int, worker: subprocess.Popen[bytes], timeout: float, log: Path
) -> None:
    """Until the worker's stored offsets cover every message published (fresh topics start at 0)."""
    deadline = time.monotonic() + timeout
    while sum(applied(client).values()) < total:
        assert worker.poll() is None, f"worker exited:\n{log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, (
            f"{sum(applied(client).values())}/{total} applied after {timeout} s"
        )
        time.sleep(0.05)


def wait_assigned(worker: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    """Until the worker owns its partitions: publishing before that would hand it a backlog."""
    deadline = time.monotonic() + timeout
    while " assigned " not in log.read_text(errors="replace"):
        assert worker.poll() is None, f"worker exited:\n{log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"worker not assigned after {timeout} s"
        time.sleep(0.05)


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The worker's /metrics as {(sample name, sorted labels): value}."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        body = resp.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body)
        for s in family.samples
    }


def expected_mix(reactions: Sequence[Scripted], at: int) -> dict[str, float]:
    """Reaction shares as the operator documents the mix (recent reactions, decayed with the index's
    one-hour half-life), recomputed from what we published rather than from anything Pulse stored."""
    weights: dict[str, float] = {}
    for e in reactions:
        if e.ts <= at:
            kind = e.value["reaction"]
            weights[kind] = weights.get(kind, 0.0) + 0.5 ** ((at - e.ts) / HOUR)
    total = sum(weights.values())
    return {k: v / total for k, v in weights.items()}


def negative_share(mix: dict[str, float]) -> float:
    return sum(v for k, v in mix.items() if k in NEGATIVE_REACTIONS)


def test_sudden_drop_alerts_once_with_true_evidence_and_control_stays_silent(
    make_settings, redis_client: redis.Redis, tmp_path: Path
) -> None:
    complaint_scores = [sentiment(t) for ts in COMPLAINTS.values() for t in ts]
    assert max(complaint_scores) < min(sentiment(t) for ts in GRUMBLES.values() for t in ts) <= -0.05, (
        "the script's premise: a complaint always reads worse than a grumble, and both are negative"
    )
    now = int(time.time() * 1000)
    t0 = (now // HOUR - WARM_HOURS - 2) * HOUR  # entirely in the past: no event is "from the future"
    drop_at = t0 + WARM_HOURS * HOUR
    end = drop_at + DROP_MINUTES * MIN
    mixed, english = {"en": 0.6, "zh": 0.4}, {"en": 1.0}
    events = sorted(
        [
            *script(DROP, t0, drop_at, CALM, mixed, "warm"),
            *script(DROP, drop_at, end, SOUR, mixed, "drop"),
            *script(CONTROL, t0, end, CALM, english, "warm"),
        ],
        key=lambda e: e.ts,
    )

    port = free_port()
    settings: Settings = make_settings(
        partitions=2, operators="atmosphere", metrics_host="127.0.0.1", metrics_port=port
    )
    ensure_topics(settings)
    log = tmp_path / "worker.log"
    worker = pulse("worker", settings=settings, log=log)
    try:
        wait_assigned(worker, log, 60)
        # Live pacing.  The worker reads ~50 ms batches topic by topic, so within a batch reactions
        # reach the operator after the posts of the same minutes (applied at the newest time seen).
        # The warm-up runs at 3,000 msg/s (~20,000x real time, a batch ~15 min of event time); from
        # an hour before the change at 250 msg/s (~2,000x, a batch ~1.5 min), so the alert's timing
        # and evidence are those of a live stream.
        publisher = Publisher(settings)
        slow_from = drop_at - HOUR
        sent = publisher.publish(outgoing([e for e in events if e.ts < slow_from]), rate=3000)
        sent += publisher.publish(outgoing([e for e in events if e.ts >= slow_from]), rate=250)
        assert publisher.failed == 0 and sent == len(events)
        wait_applied(redis_client, len(events), worker, 60, log)
        key = ("pulse_alerts_total", (("kind", "atmosphere_drop"),))
        deadline = time.monotonic() + 10  # counted just after the batch's Redis commit
        while not (metrics := scrape(port)).get(key):
            assert time.monotonic() < deadline, "no atmosphere_drop counter on /metrics"
            time.sleep(0.05)
    finally:
        stop(worker)

    # The same alert, byte for byte, on the topic and in the community's Redis list; nothing else.
    records = read_topic(settings.kafka_bootstrap, settings.topic("alerts"))
    assert [(r.key, orjson.loads(r.value or b"null")["kind"]) for r in records] == [
        (DROP.encode(), "atmosphere_drop")
    ], log.read_text()[-3000:]
    stored = redis_client.lrange(f"pulse:alerts:{DROP}", 0, -1)
    assert stored == [records[0].value]
    assert redis_client.exists(f"pulse:alerts:{CONTROL}") == 0
    alert = orjson.loads(stored[0])
    assert (alert["kind"], alert["community"]) == ("atmosphere_drop", DROP)
    assert alert["index_after"] < alert["baseline"] and alert["index_after"] < alert["index_before"]

    # When: at an event we published, not before the first complaint, within ALERT_BOUND_MS of the
    # change.  90 posts/h, 3 in 4 of them complaints each >= 2.5 SDs (the clip) below this community's
    # usual negativity: the 4-minute detector (z >= 4.2 against 4 pseudo-observations) needs about
    # seven of them, ~8 min here in exact order; 15 min (~17 complaints) leaves room for live batching.
    drop_events = [e for e in events if e.community == DROP]
    complaints = [e for e in drop_events if e.phase == "drop" and e.topic == "posts" and e.tone == "neg"]
    assert alert["ts"] in {e.ts for e in drop_events}
    assert complaints[0].ts <= alert["ts"] <= drop_at + ALERT_BOUND_MS, (alert["ts"] - drop_at) / MIN

    # Evidence: the most negative posts of the hour are complaints we wrote before the alert, with
    # their writers and their scores; members start with those writers, then negative reactors.
    evidence = alert["evidence"]
    written = {e.value["post"]: e for e in complaints if e.ts <= alert["ts"]}
    posts = evidence["negative_posts"]
    assert len(posts) == 5 <= len(written)
    for p in posts:
        assert p["post"] in written, p
        assert p["member"] == written[p["post"]].value["member"]
        assert p["score"] == sentiment(written[p["post"]].value["text"])
    assert (
        sorted(p["score"] for p in posts) == sorted(sentiment(e.value["text"]) for e in written.values())[:5]
    )
    assert [p["score"] for p in posts] == sorted(p["score"] for p in posts)
    writers = list(dict.fromkeys(p["member"] for p in posts))
    assert evidence["members"][: len(writers)] == writers
    reactors = {
        e.value["member"]
        for e in drop_events
        if e.topic == "reactions"
        and e.value["reaction"] in NEGATIVE_REACTIONS
        and alert["ts"] - HOUR <= e.ts <= alert["ts"]
    }
    assert set(evidence["members"][len(writers) :]) <= reactors
    assert len(evidence["members"]) == 10  # enough negative reactors in the hour to fill the list

    # Reaction mix: the shares of the reactions we published, one-hour half-life; the negative
    # share is above the community's usual one (reactions are delivered up to a batch late: 0.02).
    mix = evidence["reaction_mix"]
    reactions = [e for e in drop_events if e.topic == "reactions"]
    wanted = expected_mix(reactions, alert["ts"])
    assert set(mix) == set(wanted) and abs(sum(mix.values()) - 1) < 0.01
    assert all(abs(mix[k] - wanted[k]) < 0.02 for k in wanted), (mix, wanted)
    usual = [e.value["reaction"] for e in reactions if e.phase == "warm"]
    usual_share = sum(r in NEGATIVE_REACTIONS for r in usual) / len(usual)
    assert negative_share(mix) > usual_share + 0.03 and {"angry", "report"} <= set(mix)

    # The atmosphere hashes: everything we published is counted; the soured community's index is
    # well below its baseline (45 min of mostly complaints against a one-hour index), the control's at it.
    for community in (DROP, CONTROL):
        mine = [e for e in events if e.community == community]
        h = {k.decode(): float(v) for k, v in redis_client.hgetall(f"pulse:atmosphere:{community}").items()}
        assert h["updated"] == mine[-1].ts
        assert h["posts"] == sum(e.topic == "posts" for e in mine)
        assert h["reactions"] == sum(e.topic == "reactions" for e in mine)
        assert metrics[("pulse_atmosphere_index", (("community", community),))] == h["index"]
        if community == DROP:
            assert h["index"] < h["baseline"] - 0.2, h
        else:
            assert abs(h["index"] - h["baseline"]) < 0.1, h

    # Prometheus: one atmosphere_drop, no other kind of alert.
    counted = {labels: v for (name, labels), v in metrics.items() if name == "pulse_alerts_total" and v}
    assert counted == {(("kind", "atmosphere_drop"),): 1.0}  # every other kind's series is at 0
