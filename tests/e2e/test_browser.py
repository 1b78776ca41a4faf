"""The live page in a real browser: Debian's chromium, headless, driven by Playwright.

The page is served by ``streams.api`` over a Redis that the real worker fills from the session's
broker.  Events published through that pipeline must reorder the leaderboard in place (no
reload), an alert written the way the atmosphere operator writes one must appear in the feed, and
the community view must chart the recent windows and show the community's hot topics, members at
risk / rising and KPIs.  Screenshots go to ``artifacts/browser/`` (git
ignores it); ``docs/screenshot.png`` (the README's picture) is written when it is missing or when
``UPDATE_DOCS_SCREENSHOT=1`` (not a ``PULSE_*`` name: the test session hides those).

Chromium comes from Debian (``apt-get install chromium``), never from Playwright's own download
(``playwright install`` needs the internet).  When it is missing and this user may run apt-get, the
module installs it; it skips, saying why, only when it cannot.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from infra.local_services import EmbeddedBroker, EmbeddedRedis
from streams.api.server import serve_in_thread
from streams.sinks.redis_store import UPDATES_CHANNEL
from tests.pipelines import WINDOW_SECONDS, Pipeline, module_settings, reactions, running_pipeline
from tests.workers import ROOT

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]
ARTIFACTS = ROOT / "artifacts" / "browser"
DOCS_SCREENSHOT = ROOT / "docs" / "screenshot.png"
WAIT_MS = 20_000
# Page predicates are written as functions ("() => ..."): Playwright polls a bare expression string
# with eval() inside the page, which the page's Content-Security-Policy (no 'unsafe-eval') forbids.


def ensure_chromium() -> str | None:
    """Install Debian's chromium if it is missing and we may; the reason it is unavailable, or None."""
    if CHROMIUM.exists():
        return None
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return f"{CHROMIUM} is missing and this user cannot apt-get it: sudo apt-get install -y chromium"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    log = []
    for command in (
        ["apt-get", "install", "-y", "-q", "chromium"],
        ["apt-get", "update", "-q"],
        ["apt-get", "install", "-y", "-q", "chromium"],
    ):
        done = subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=900, stdin=subprocess.DEVNULL
        )
        log.append(f"$ {' '.join(command)} -> {done.returncode}\n{done.stderr[-800:]}")
        if command[1] == "install" and done.returncode == 0 and CHROMIUM.exists():
            return None
    return "apt-get could not install chromium:\n" + "\n".join(log)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    reason = ensure_chromium()
    if reason:
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="module")
def pipeline(
    broker: EmbeddedBroker, redis_server: EmbeddedRedis, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Pipeline]:
    # core operators only: the insight tests write the trends/members/kpis keys themselves and
    # check the page before and after; a worker running those operators would write them too
    settings = module_settings(broker, redis_server, operators="core")
    with running_pipeline(settings, tmp_path_factory.mktemp("browser") / "worker.log") as running:
        yield running


@pytest.fixture(scope="module")
def live_url(pipeline: Pipeline) -> Iterator[str]:
    with serve_in_thread(pipeline.settings) as url:
        yield url


class PageWatch:
    """A page's console errors, uncaught exceptions and requests, to assert on at the end."""

    def __init__(self, page: Any, origin: str) -> None:
        self.origin = origin
        self.errors: list[str] = []
        self.requests: list[str] = []
        page.on("pageerror", lambda exc: self.errors.append(f"pageerror: {exc}"))
        page.on("console", self._console)
        page.on("request", lambda req: self.requests.append(req.url))

    def _console(self, message: Any) -> None:
        # 404 is a documented answer (a forecast not computed yet); the browser logs it anyway.
        if message.type == "error" and "404" not in message.text:
            self.errors.append(f"console: {message.text}")

    def check(self) -> None:
        assert self.errors == []
        foreign = [u for u in self.requests if not u.startswith(self.origin) and not u.startswith("data:")]
        assert foreign == [], "the page must load nothing from elsewhere"


def wait_inside_one_window(margin: float = 75) -> None:
    """Sleep past a window boundary that is closer than ``margin`` seconds: the test's events must
    all land in one window, or "current" would switch under the leaderboard being watched."""
    left = WINDOW_SECONDS - time.time() % WINDOW_SECONDS
    if left < margin:
        time.sleep(left + 1)


WATCH_TOP = """underdog => {
  const tbody = document.querySelector('#leaderboard tbody');
  const look = () => {
    const first = tbody.querySelector('tr');
    if (first && first.dataset.community === underdog && !window.__reachedTop) {
      window.__reachedTop = {class: first.className, badge: first.querySelector('.move').textContent};
    }
  };
  new MutationObserver(look).observe(tbody, {childList: true, subtree: true, attributes: true});
}"""
"""Page script: remember the row's classes and badge when ``underdog`` first becomes the top row."""


def board_order(page: Any) -> list[str]:
    return page.eval_on_selector_all("#leaderboard tbody tr", "rows => rows.map(r => r.dataset.community)")


def save(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path))
    return path


def fill_current_window(pipeline: Pipeline) -> None:
    """Six made-up communities active right now, so the current window has a board of its own.

    The simulator's stream ends when the module's pipeline starts; by the time a test runs, the
    wall clock may be in a later window that holds nothing else, so the test makes its own rows.
    """
    wait_inside_one_window()
    pipeline.publish([*(m for i in range(6) for m in reactions(f"zz-browser-{'abcdef'[i]}", 14 - 2 * i))])


# Insight keys in the layouts their operators write (streams/operators/trends.py, members.py,
# kpis.py).  The module's worker runs the core operators only, so the tests write them.
TOPICS = [  # topic, trend score, hash fields; the page shows count, "→ forecast", growth arrow
    (
        "deepseek",
        4.1,
        {"count": 31, "forecast": "36.25", "growth": "3.1", "level": "4.0", "momentum": "12.5"},
    ),
    ("hiring", 3.2, {"count": 12, "forecast": "11.0", "growth": "1.0", "level": "11.5", "momentum": "11.5"}),
    ("pricing", 2.4, {"count": 4, "forecast": "3.42", "growth": "0.6", "level": "6.0", "momentum": "3.2"}),
]
TOPICS_SHOWN = [  # (name, count, forecast, growth) as the page must render them
    ("deepseek", "31", "→ 36", "▲ ×3.1"),
    ("hiring", "12", "→ 11", "▸ ×1.0"),
    ("pricing", "4", "→ 3.4", "▼ ×0.6"),
]
AT_RISK = {"quiet-ann": 0.9312, "quiet-bob": 0.7788, "quiet-cy": 0.61}
RISING = {"new-dee": 1.8, "new-eve": 0.9349}
KPIS = {
    "posts": 29, "replied": 21, "reply_rate": "0.7241", "median_first_reply_s": "540.0",
    "needs_opened": 6, "needs_resolved": 4, "match_success_rate": "0.6667",
    "meetups": 2, "capacity": 60, "attended": 47, "fill_rate": "0.7833",
    "going": 50, "no_shows": 9, "no_show_rate": "0.18",
    "new_members": 7, "returned": 0, "return_rate": "", "final": 0,
}  # fmt: skip
KPIS_SHOWN = {  # tile -> text: rates in whole percent, the median as a duration, undefined as "–"
    "match_success_rate": "67%",
    "fill_rate": "78%",
    "no_show_rate": "18%",
    "reply_rate": "72%",
    "median_first_reply_s": "9 min",
    "return_rate": "–",
}


def write_insights(client: Any, community: str, start: int) -> list[str]:
    """The trends, members and kpis operators' keys for ``community`` (KPIs of window ``start``)."""
    trends = f"pulse:trends:{community}"
    keys = [trends, f"pulse:members:at-risk:{community}", f"pulse:members:rising:{community}"]
    client.delete(*keys)
    client.zadd(trends, {name: score for name, score, _ in TOPICS})
    for name, score, fields in TOPICS:
        client.hset(f"{trends}:{name}", mapping={**fields, "score": score, "first_seen": 1_767_571_200_000})
        keys.append(f"{trends}:{name}")
    client.zadd(keys[1], AT_RISK)
    client.zadd(keys[2], RISING)
    kpi = f"pulse:kpi:{community}:{WINDOW_SECONDS}s:{start}"
    client.hset(kpi, mapping=KPIS)
    return [*keys, kpi]


def kpi_tiles(page: Any) -> dict[str, str]:
    return dict(
        page.eval_on_selector_all(
            "#kpis .kpi",
            "tiles => tiles.map(t => [t.dataset.kpi, t.querySelector('.kpi-value').textContent])",
        )
    )


def test_community_view_shows_hot_topics_members_and_kpis(
    browser: Any, pipeline: Pipeline, live_url: str
) -> None:
    """Insight keys appear in the open community view on the pushed update, with the right values."""
    client = pipeline.client
    fill_current_window(pipeline)
    community = "zz-browser-c"
    start = int(float(client.zrevrange(f"pulse:windows:{WINDOW_SECONDS}s", 0, 0)[0]))
    page = browser.new_page(viewport={"width": 1366, "height": 768})
    watch = PageWatch(page, live_url)
    page.goto(f"{live_url}/#c={community}")
    page.wait_for_selector("#live[data-state='live']", timeout=WAIT_MS)
    page.wait_for_selector(
        f"#insights[data-community='{community}'] #kpis[data-state='absent']", timeout=WAIT_MS
    )
    assert page.locator("#topics-empty").is_visible() and page.locator("#at-risk-empty").is_visible()
    assert set(kpi_tiles(page).values()) == {"–"}
    page.evaluate("window.__sameDocument = 'yes'")

    keys = write_insights(client, community, start)
    try:
        client.publish(UPDATES_CHANNEL, orjson.dumps([community]))  # as the worker announces a batch
        page.wait_for_selector("#kpis[data-state='present']", timeout=WAIT_MS)
        page.wait_for_function("() => document.querySelectorAll('#topics li').length === 3", timeout=WAIT_MS)
        topics = page.eval_on_selector_all(
            "#topics li",
            "rows => rows.map(r => [...r.querySelectorAll('span')].map(s => s.textContent))",
        )
        assert [tuple(t) for t in topics] == TOPICS_SHOWN
        growth = page.eval_on_selector_all("#topics .topic-growth", "g => g.map(x => x.classList[2])")
        assert growth == ["up", "same", "down"]
        people = "rows => rows.map(r => [r.dataset.member, r.querySelector('.person-score').textContent])"
        assert page.eval_on_selector_all("#at-risk li", people) == [
            ["quiet-ann", "93%"],
            ["quiet-bob", "78%"],
            ["quiet-cy", "61%"],
        ]
        assert page.eval_on_selector_all("#rising li", people) == [["new-dee", "1.80"], ["new-eve", "0.93"]]
        assert kpi_tiles(page) == KPIS_SHOWN
        assert page.locator("#kpis").get_attribute("data-window") == str(start)
        note = page.locator("#kpi-window").text_content() or ""
        assert note.endswith("UTC · in progress"), note
        assert page.locator(".kpi[data-kpi='match_success_rate']").get_attribute("title") == (
            "4 of 6 needs resolved within 7 days"
        )
        assert page.locator("#topics-empty").is_hidden() and page.locator("#at-risk-empty").is_hidden()

        # The cohort matures: a later write of the same hash, announced again, updates the tiles.
        client.hset(
            f"pulse:kpi:{community}:{WINDOW_SECONDS}s:{start}",
            mapping={"returned": 3, "return_rate": "0.4286"},
        )
        client.publish(UPDATES_CHANNEL, orjson.dumps([community]))
        tile = "#kpis [data-kpi='return_rate'] .kpi-value"
        page.wait_for_function(
            "sel => document.querySelector(sel).textContent === '43%'", arg=tile, timeout=WAIT_MS
        )
        assert page.evaluate("window.__sameDocument") == "yes"  # no reload
        save(page, "5-insights.png")
        page.locator("#insights").screenshot(path=str(ARTIFACTS / "5-insights-panel.png"))
        scroll = page.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
        assert scroll[0] <= scroll[1], "no horizontal scrolling on a laptop screen"
        watch.check()
    finally:
        client.delete(*keys)
        page.close()


def test_leaderboard_reorders_and_alert_appears_without_reload(
    browser: Any, pipeline: Pipeline, live_url: str
) -> None:
    client = pipeline.client
    fill_current_window(pipeline)
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    watch = PageWatch(page, live_url)
    page.goto(f"{live_url}/")
    page.wait_for_selector("#live[data-state='live']", timeout=WAIT_MS)
    page.wait_for_function(
        "() => document.querySelectorAll('#leaderboard tbody tr').length >= 5", timeout=WAIT_MS
    )
    page.evaluate("window.__sameDocument = 'yes'")
    order = board_order(page)
    shown = [
        row["community"]
        for row in orjson.loads(page.evaluate("fetch('api/communities?limit=20').then(r => r.text())"))[
            "communities"
        ]
    ]
    assert order == shown  # the page shows the API's leaderboard, in its order
    leader, underdog = order[0], order[-1]
    start = int(float(client.zrevrange(f"pulse:windows:{WINDOW_SECONDS}s", 0, 0)[0]))
    board = f"pulse:lb:communities:{WINDOW_SECONDS}s:{start}"
    gap = float(client.zscore(board, leader)) - float(client.zscore(board, underdog))
    save(page, "1-before.png")

    # Through the real pipeline: enough reactions (0.5 each, more for new members) to take the lead.
    # The page may well re-render before publish() returns (it waits for the worker's offsets), so
    # the page itself records the moment the underdog reaches the top, with its highlight then.
    page.evaluate(WATCH_TOP, underdog)
    pipeline.publish(reactions(underdog, math.ceil(gap / 0.5) + 10, members=8))
    top = page.wait_for_function("() => window.__reachedTop", timeout=WAIT_MS).json_value()
    assert "moved-up" in top["class"], top  # highlighted, with a "▲n" badge
    assert top["badge"].startswith("▲"), top
    assert board_order(page)[1:].index(leader) >= 0  # the old leader is still on the board, below
    save(page, "2-reordered.png")

    # An alert, written and announced the way the worker does it (LPUSH + PUBLISH).
    alert = {  # the atmosphere operator's shape (streams/operators/atmosphere.py)
        "id": uuid.uuid4().hex[:20],
        "kind": "atmosphere_drop",
        "community": underdog,
        "ts": int(time.time() * 1000),
        "index_before": 0.41,
        "index_after": -0.12,
        "baseline": 0.38,
        "evidence": {"negative_posts": [], "members": ["m1", "m2"], "reaction_mix": {"angry": 0.4}},
    }
    client.lpush(f"pulse:alerts:{underdog}", orjson.dumps(alert))
    client.lpush("pulse:alerts", orjson.dumps(alert))  # and the list of every community's alerts
    client.hset(
        f"pulse:atmosphere:{underdog}",
        mapping={"index": -0.35, "baseline": 0.38, "updated": alert["ts"], "posts": 12, "reactions": 30},
    )
    client.publish(UPDATES_CHANNEL, orjson.dumps([underdog]))
    item = page.locator("#alerts li", has_text="Atmosphere dropped 0.41 → -0.12 (baseline 0.38) · m1, m2")
    item.wait_for(timeout=WAIT_MS)
    assert item.get_attribute("data-community") == underdog
    assert "fresh" in (item.get_attribute("class") or "")

    # The community view: click a row; bars for the recent windows, the atmosphere line, matches.
    page.locator(f"#leaderboard tbody tr[data-community='{underdog}']").click()
    page.wait_for_selector(f"#community[data-community='{underdog}']", timeout=WAIT_MS)
    page.wait_for_selector("#atmosphere[data-state='present'] .chip[data-field='index']", timeout=WAIT_MS)
    windows = client.zcard(f"pulse:windows:{WINDOW_SECONDS}s")
    page.wait_for_function(
        "n => document.querySelectorAll('#sparkline svg rect').length === n",
        arg=min(24, windows),
        timeout=WAIT_MS,
    )
    assert page.locator("#matches-empty").is_visible()
    client.zadd(f"pulse:matches:{underdog}:post-42", {"post-7": 0.91, "post-9": 0.64})
    client.zadd(f"pulse:matches:{underdog}", {"post-42": int(time.time() * 1000)})  # its index
    client.publish(UPDATES_CHANNEL, orjson.dumps([underdog]))
    page.locator("#matches li[data-post='post-42']").wait_for(timeout=WAIT_MS)
    assert page.locator("#matches-empty").is_hidden()
    assert page.evaluate("window.__sameDocument") == "yes"  # everything above happened without a reload

    page.wait_for_timeout(2800)  # let the highlight settle for the picture
    shot = save(page, "3-community.png")
    if not DOCS_SCREENSHOT.exists() or os.environ.get("UPDATE_DOCS_SCREENSHOT") == "1":
        DOCS_SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, DOCS_SCREENSHOT)
    scroll = page.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
    assert scroll[0] <= scroll[1], "no horizontal scrolling on a laptop screen"
    watch.check()
    page.close()


def test_wall_display_mode_is_large_and_fits(browser: Any, pipeline: Pipeline, live_url: str) -> None:
    fill_current_window(pipeline)
    client = pipeline.client
    start = int(float(client.zrevrange(f"pulse:windows:{WINDOW_SECONDS}s", 0, 0)[0]))
    leader = client.zrevrange(f"pulse:lb:communities:{WINDOW_SECONDS}s:{start}", 0, 0)[0].decode()
    keys = write_insights(client, leader, start)  # the followed #1 with full insight panels must fit too
    try:
        check_wall_and_laptop(browser, live_url)
    finally:
        client.delete(*keys)


def check_wall_and_laptop(browser: Any, live_url: str) -> None:
    sizes = {}
    for mode, query, viewport in (("laptop", "", (1366, 768)), ("wall", "?wall=1", (1920, 1080))):
        page = browser.new_page(viewport={"width": viewport[0], "height": viewport[1]})
        watch = PageWatch(page, live_url)
        page.goto(f"{live_url}/{query}")
        page.wait_for_function(
            "() => document.querySelectorAll('#leaderboard tbody tr').length >= 5", timeout=WAIT_MS
        )
        sizes[mode] = page.evaluate(
            "parseFloat(getComputedStyle(document.querySelector('#leaderboard tbody td.name')).fontSize)"
        )
        assert page.evaluate("document.body.classList.contains('wall')") == (mode == "wall")
        page.wait_for_selector("#community[data-community] #sparkline svg", timeout=WAIT_MS)  # follows #1
        page.wait_for_selector("#kpis[data-state='present']", timeout=WAIT_MS)
        page.wait_for_function("() => document.querySelectorAll('#topics li').length >= 3", timeout=WAIT_MS)
        page.wait_for_timeout(500)
        save(page, f"4-{mode}.png")
        box = page.evaluate(
            "[document.documentElement.scrollWidth, document.documentElement.clientWidth,"
            " document.documentElement.scrollHeight, document.documentElement.clientHeight]"
        )
        assert box[0] <= box[1], f"{mode}: no horizontal scrolling"
        if mode == "wall":
            assert box[2] <= box[3], f"wall: everything fits the screen, no vertical scrolling ({box})"
            clipped = page.evaluate(
                "() => { const i = document.getElementById('insights').getBoundingClientRect();"
                " const rows = '#insights .kpi, #topics li, #at-risk li, #rising li';"
                " return [...document.querySelectorAll(rows)]"
                ".filter(n => n.getBoundingClientRect().bottom > i.bottom + 0.5).length; }"
            )
            assert clipped == 0, "wall: the insight panels show whole rows, none cut off"
        watch.check()
        page.close()
    assert sizes["wall"] >= 1.4 * sizes["laptop"], sizes
