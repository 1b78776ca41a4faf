// Pulse live page: no framework, no build step, nothing loaded from elsewhere.
//
// The server pushes *which* communities changed (server-sent events on api/events); the page then
// re-reads what it shows from the JSON API.  Reads are coalesced: at most one request per view in
// flight, and one more right after it if something changed meanwhile, so a busy stream costs a
// browser a few requests per second, whatever the event rate.
//
// Every text that comes from data is set with textContent (community and member ids are arbitrary
// strings), and styles are set through the CSSOM, so the page runs under a strict CSP.
"use strict";

(() => {
  const params = new URLSearchParams(location.search);
  const WALL = params.get("wall") === "1";
  const BOARD_LIMIT = WALL ? 10 : 20; // the wall shows what fits a 1080p screen without scrolling
  const HISTORY_WINDOWS = 24;
  const TOPICS = WALL ? 4 : 8; // hot topics shown (the wall: what fits under the leaderboard)
  const PEOPLE = WALL ? 4 : 5; // members at risk / rising shown
  const MOVE_HIGHLIGHT_MS = 2600;
  const FALLBACK_POLL_MS = 15000;
  const reduceMotion = window.matchMedia("(prefers-reduced-motion: reduce)").matches;

  const $ = (id) => document.getElementById(id);
  const el = (tag, cls, text) => {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  };
  const SVG_NS = "http://www.w3.org/2000/svg";
  const svg = (tag, attrs) => {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    return node;
  };

  const state = {
    windowSeconds: null,
    window: null,
    selected: null, // community id shown in the community panel
    userSelected: false, // false: follow the leader (#1) until someone clicks
    ranks: new Map(), // community -> rank last rendered (for live move arrows)
    rows: new Map(), // community -> <tr>
    seenAlerts: new Set(),
    alertsLoaded: false,
    live: false,
  };

  if (WALL) document.body.classList.add("wall");
  $("wall-link").href = WALL ? "?" : "?wall=1";
  $("wall-link").textContent = WALL ? "laptop view" : "wall display";

  // ---------------------------------------------------------------------------------------------
  // Formatting
  // ---------------------------------------------------------------------------------------------

  const fmtScore = (x) => (Math.abs(x) >= 1000 ? x.toFixed(0) : x.toFixed(1));
  const fmtInt = (x) => Number(x).toLocaleString("en-US");
  const fmtValue = (v) => {
    if (typeof v === "number") return Number.isInteger(v) ? fmtInt(v) : String(Number(v.toFixed(Math.abs(v) < 10 ? 2 : 1)));
    if (typeof v === "string") return v;
    return JSON.stringify(v);
  };
  const pad = (n) => String(n).padStart(2, "0");
  const hhmm = (epochS) => {
    const d = new Date(epochS * 1000);
    return `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}`;
  };
  const day = (epochS) => new Date(epochS * 1000).toISOString().slice(0, 10);
  const duration = (s) => (s % 3600 === 0 ? `${s / 3600} h` : s % 60 === 0 ? `${s / 60} min` : `${s} s`);
  const alertMs = (a) => {
    const ts = a.ts;
    if (typeof ts === "number") return Math.abs(ts) < 1e11 ? ts * 1000 : ts;
    if (typeof ts === "string") {
      const t = Date.parse(ts);
      return Number.isNaN(t) ? 0 : t;
    }
    return 0;
  };
  const ago = (ms) => {
    if (!ms) return "";
    const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
    if (s < 60) return `${s}s ago`;
    if (s < 3600) return `${Math.round(s / 60)} min ago`;
    if (s < 86400) return `${Math.round(s / 3600)} h ago`;
    return new Date(ms).toISOString().slice(0, 16).replace("T", " ");
  };

  // ---------------------------------------------------------------------------------------------
  // API
  // ---------------------------------------------------------------------------------------------

  async function api(path) {
    const resp = await fetch(path, { headers: { Accept: "application/json" }, cache: "no-store" });
    if (resp.status === 404) return null; // optional data not there (yet): the caller shows an empty state
    if (!resp.ok) throw new Error(`${path}: HTTP ${resp.status}`);
    return resp.json();
  }
  const communityPath = (c) => `api/communities/${encodeURIComponent(c)}`;

  // One refresh of a view at a time; a request while one runs makes exactly one more run after it.
  function coalesced(fn, minGapMs) {
    let running = false;
    let again = false;
    const run = async () => {
      if (running) {
        again = true;
        return;
      }
      running = true;
      try {
        await fn();
      } catch (err) {
        console.warn(err);
      } finally {
        if (again) {
          again = false;
          setTimeout(() => {
            running = false;
            run();
          }, minGapMs);
        } else {
          running = false;
        }
      }
    };
    return run;
  }

  // ---------------------------------------------------------------------------------------------
  // Leaderboard
  // ---------------------------------------------------------------------------------------------

  function deltaCell(td, row) {
    td.replaceChildren();
    td.className = "delta";
    if (row.previous_rank === null || row.previous_rank === undefined) {
      td.append(el("span", "tag-new", "new"));
      td.title = "No activity in the previous window";
      return;
    }
    const d = row.previous_rank - row.rank;
    td.title = `Rank ${row.previous_rank} in the previous window`;
    if (d > 0) td.append(el("span", "up", `▲${d}`));
    else if (d < 0) td.append(el("span", "down", `▼${-d}`));
    else td.append(el("span", "same", "–"));
  }

  function makeRow(community) {
    const tr = el("tr");
    tr.dataset.community = community;
    tr.tabIndex = 0;
    tr.setAttribute("role", "button");
    tr.setAttribute("aria-label", `Show ${community}`);
    const cells = ["num rank", "delta", "name", "num score-col", "num opt", "num opt", "num opt"].map((c) =>
      el("td", c),
    );
    const name = cells[2];
    name.append(el("span", "name-text"), el("span", "move"));
    const score = cells[3];
    const bar = el("span", "bar");
    score.append(bar, el("span", "score-text"));
    tr.append(...cells);
    tr.addEventListener("click", () => select(community, true));
    tr.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter" || ev.key === " ") {
        ev.preventDefault();
        select(community, true);
      }
    });
    return tr;
  }

  // windowChanged: the "current" window rolled over, so rank moves against the last render mean
  // nothing (everyone restarts from zero) and are not flagged.
  function renderBoard(doc, windowChanged) {
    const tbody = $("leaderboard").tBodies[0];
    const rows = doc.communities;
    const maxScore = rows.reduce((m, r) => Math.max(m, r.score), 0) || 1;
    // FLIP: remember where every row is, reorder, then animate from the old place to the new.
    const before = new Map();
    for (const [c, tr] of state.rows) before.set(c, tr.getBoundingClientRect().top);
    const ordered = [];
    const keep = new Set();
    for (const row of rows) {
      let tr = state.rows.get(row.community);
      const fresh = !tr;
      if (fresh) {
        tr = makeRow(row.community);
        state.rows.set(row.community, tr);
      }
      keep.add(row.community);
      tr.dataset.rank = String(row.rank);
      const [rankTd, deltaTd, nameTd, scoreTd, iTd, cTd, hTd] = tr.cells;
      rankTd.textContent = String(row.rank);
      deltaCell(deltaTd, row);
      nameTd.querySelector(".name-text").textContent = row.community;
      scoreTd.querySelector(".score-text").textContent = fmtScore(row.score);
      scoreTd.querySelector(".bar").style.width = `${Math.max(2, (100 * row.score) / maxScore)}%`;
      iTd.textContent = fmtInt(row.interactions);
      cTd.textContent = fmtInt(row.participants);
      hTd.textContent = fmtInt(row.posts);
      tr.classList.toggle("selected", row.community === state.selected);
      const last = state.ranks.get(row.community);
      if (!windowChanged && last !== undefined && last !== row.rank) flagMove(tr, last - row.rank);
      else if (!windowChanged && fresh && state.ranks.size) flagMove(tr, 0);
      ordered.push(tr);
    }
    for (const [c, tr] of state.rows) {
      if (!keep.has(c)) {
        tr.remove();
        state.rows.delete(c);
      }
    }
    tbody.replaceChildren(...ordered);
    if (!reduceMotion) {
      for (const tr of ordered) {
        const was = before.get(tr.dataset.community);
        if (was === undefined) continue;
        const dy = was - tr.getBoundingClientRect().top;
        if (Math.abs(dy) < 1) continue;
        tr.style.transition = "none";
        tr.style.transform = `translateY(${dy}px)`;
        void tr.offsetHeight; // commit the start position before animating to the new one
        tr.style.transition = "";
        tr.style.transform = "";
      }
    }
    state.ranks = new Map(rows.map((r) => [r.community, r.rank]));
    $("board-empty").hidden = rows.length > 0;
    $("leaderboard").hidden = rows.length === 0;
    $("board-meta").textContent = doc.total > rows.length ? `top ${rows.length} of ${doc.total}` : "";
  }

  function flagMove(tr, delta) {
    const badge = tr.querySelector(".move");
    tr.classList.remove("moved-up", "moved-down", "moved-new");
    void tr.offsetWidth; // restart the highlight animation
    if (delta > 0) {
      tr.classList.add("moved-up");
      badge.textContent = `▲${delta}`;
    } else if (delta < 0) {
      tr.classList.add("moved-down");
      badge.textContent = `▼${-delta}`;
    } else {
      tr.classList.add("moved-new");
      badge.textContent = "new";
    }
    clearTimeout(tr._moveTimer);
    tr._moveTimer = setTimeout(() => {
      tr.classList.remove("moved-up", "moved-down", "moved-new");
      badge.textContent = "";
    }, MOVE_HIGHLIGHT_MS);
  }

  function renderWindowLabel(doc) {
    state.windowSeconds = doc.window_seconds;
    state.window = doc.window;
    const label = $("window-label");
    if (doc.window === null) {
      label.textContent = "waiting for data…";
      return;
    }
    const end = doc.window + doc.window_seconds;
    label.textContent = `window ${day(doc.window)} ${hhmm(doc.window)}–${hhmm(end)} UTC · ${duration(doc.window_seconds)}`;
  }

  const refreshBoard = coalesced(async () => {
    const doc = await api(`api/communities?limit=${BOARD_LIMIT}`);
    if (!doc) return;
    const windowChanged = state.window !== doc.window;
    renderBoard(doc, windowChanged);
    renderWindowLabel(doc);
    if (!state.userSelected && doc.communities.length && state.selected !== doc.communities[0].community) {
      select(doc.communities[0].community, false);
    } else if (windowChanged && state.selected) {
      refreshCommunity();
    }
  }, 250);

  // ---------------------------------------------------------------------------------------------
  // Community view
  // ---------------------------------------------------------------------------------------------

  function select(community, byUser) {
    if (byUser) {
      state.userSelected = true;
      history.replaceState(null, "", `#c=${encodeURIComponent(community)}`);
    }
    if (state.selected !== community) {
      state.selected = community;
      for (const [c, tr] of state.rows) tr.classList.toggle("selected", c === community);
      $("community").dataset.community = community;
      $("community-title").textContent = community;
      $("community-body").classList.add("loading");
      $("insights").dataset.community = community;
      $("insights-community").textContent = community;
      $("insights-body").classList.add("loading");
    }
    refreshCommunity();
  }

  function renderSparkline(history) {
    const box = $("sparkline");
    const n = history.length;
    const max = history.reduce((m, h) => Math.max(m, h.score), 0) || 1;
    const W = 100 * Math.max(n, 1);
    const H = 100;
    const chart = svg("svg", {
      viewBox: `0 0 ${W} ${H}`,
      preserveAspectRatio: "none",
      role: "img",
      "aria-label": `Activity score over the last ${n} windows`,
    });
    history.forEach((h, i) => {
      const height = h.score > 0 ? Math.max(2, (H - 4) * (h.score / max)) : 0.8;
      const rect = svg("rect", {
        x: i * 100 + 12,
        y: H - height,
        width: 76,
        height,
        rx: 6,
        class: i === n - 1 ? "bar-now" : h.score > 0 ? "bar-past" : "bar-zero",
      });
      const title = svg("title");
      title.textContent = `${day(h.start)} ${hhmm(h.start)} UTC: score ${fmtScore(h.score)} · I ${h.interactions} · C ${h.participants} · H ${h.posts}`;
      rect.append(title);
      chart.append(rect);
    });
    box.replaceChildren(chart);
    $("spark-from").textContent = n ? `${hhmm(history[0].start)} UTC` : "";
    $("spark-to").textContent = n ? `${hhmm(history[n - 1].start)} UTC` : "";
    $("spark-max").textContent = n ? `peak ${fmtScore(max)}` : "";
  }

  // Display names of the operators' hash fields (streams/operators/atmosphere.py, forecasts.py).
  const FIELD_NAMES = { demand: "needs", supply: "offers", mae: "error (MAE)" };

  // A hash written by an operator, as "key value" chips: its well-known fields first; with `only`,
  // nothing else (a forecast hash also holds model diagnostics nobody reads on a wall).
  function renderFields(node, label, fields, preferred, only = false) {
    node.replaceChildren(el("span", "signal-label", label));
    let keys = Object.keys(fields).filter((k) => fields[k] !== "" && fields[k] !== null); // "": not scored yet
    if (only) keys = keys.filter((k) => preferred.includes(k));
    keys.sort((a, b) => {
      const ia = preferred.indexOf(a);
      const ib = preferred.indexOf(b);
      return (ia < 0 ? 99 : ia) - (ib < 0 ? 99 : ib) || a.localeCompare(b);
    });
    for (const k of keys.slice(0, WALL ? 3 : 5)) {
      const chip = el("span", "chip");
      chip.dataset.field = k;
      const name = FIELD_NAMES[k] || k.replace(/_/g, " ");
      chip.append(el("span", "chip-key", name), el("span", "chip-value", fmtValue(fields[k])));
      if (k === "index" || k === "atmosphere_index" || k === "score") {
        const v = Number(fields[k]);
        if (!Number.isNaN(v)) chip.classList.add(v >= 0.2 ? "good" : v <= -0.2 ? "bad" : "neutral");
      }
      node.append(chip);
    }
  }

  function renderAtmosphere(doc) {
    const node = $("atmosphere");
    if (!doc || (!doc.atmosphere && !doc.alerts.length)) {
      node.replaceChildren(el("span", "signal-label", "Atmosphere"), el("span", "muted", "not measured yet"));
      node.dataset.state = "absent";
      return;
    }
    node.dataset.state = "present";
    const fields = { ...(doc.atmosphere || {}) };
    const updated = fields.updated;
    delete fields.updated; // event time (ms) of the last scored event: shown as an age, not a number
    renderFields(node, "Atmosphere", fields, ["index", "baseline", "label", "mood", "posts", "reactions"]);
    if (typeof updated === "number") node.append(el("span", "muted small", ago(updated)));
    if (doc.alerts.length) {
      const a = doc.alerts[0];
      node.append(el("span", `chip alert-chip sev-${severity(a)}`, `⚠ ${describeAlert(a)}`));
    }
  }

  function renderForecast(doc) {
    const node = $("forecast");
    node.hidden = !doc;
    if (!doc) return;
    const fields = { ...doc.forecast };
    const next = fields.window;
    delete fields.window; // the forecast window's start: shown as a time
    delete fields.tags; // per-tag detail: too much for one line
    renderFields(node, next ? `Forecast ${hhmm(next)} UTC` : "Forecast", fields, ["demand", "supply", "gap", "mae"], true);
  }

  function renderMembers(rows) {
    $("members").replaceChildren(
      ...rows.map((m) => {
        const li = el("li");
        li.append(el("span", "member", m.member), el("span", "num muted", fmtValue(m.contribution)));
        return li;
      }),
    );
    if (!rows.length) $("members").append(el("li", "empty small", "No members in this window."));
  }

  function renderMatches(doc) {
    const posts = doc ? doc.posts : [];
    const list = $("matches");
    list.replaceChildren(
      ...posts.map((p) => {
        const li = el("li");
        li.dataset.post = p.post;
        const head = el("div", "match-head");
        head.append(el("span", "match-post", p.post), el("span", "num match-best", fmtValue(p.best)));
        const cands = el("div", "match-cands muted");
        cands.textContent = p.candidates.map((c) => `${c.candidate} ${fmtValue(c.score)}`).join(" · ");
        li.append(head, cands);
        return li;
      }),
    );
    $("matches-empty").hidden = posts.length > 0;
  }

  // ---------------------------------------------------------------------------------------------
  // Insights: hot topics, members at risk / rising, operations KPIs (trends, members, kpis operators)
  // ---------------------------------------------------------------------------------------------

  const pct = (v) => `${Math.round(v * 100)}%`;
  const fmtSeconds = (s) => (s < 90 ? `${Math.round(s)} s` : s < 5400 ? `${Math.round(s / 60)} min` : `${(s / 3600).toFixed(1)} h`);
  const fmtCount = (v) => (v < 10 ? v.toFixed(1) : fmtInt(Math.round(v)));
  const GROWTH_UP = 1.2;
  const GROWTH_DOWN = 1 / GROWTH_UP;

  // KPI tile → how its value reads and what stands behind it (a tooltip).
  const KPI_TILES = {
    match_success_rate: (k) => [pct, `${k.needs_resolved} of ${k.needs_opened} needs resolved within 7 days`],
    fill_rate: (k) => [pct, `${k.attended} check-ins for ${k.capacity} seats (${k.meetups} meetups)`],
    no_show_rate: (k) => [pct, `${k.no_shows} of ${k.going} going did not check in`],
    reply_rate: (k) => [pct, `${k.replied} of ${k.posts} posts replied to within a day`],
    median_first_reply_s: (k) => [fmtSeconds, `median time to the first reply of ${k.replied} replied posts`],
    return_rate: (k) => [pct, `${k.returned} of ${k.new_members} new members came back within a week`],
  };

  function renderKpis(doc) {
    const box = $("kpis");
    box.dataset.state = doc ? "present" : "absent";
    box.dataset.window = doc ? String(doc.window) : "";
    for (const tile of box.querySelectorAll(".kpi")) {
      const key = tile.dataset.kpi;
      const value = doc ? doc.kpis[key] : null;
      const [fmt, why] = doc ? KPI_TILES[key](doc.kpis) : [null, "not measured yet"];
      tile.querySelector(".kpi-value").textContent = value === null || value === undefined ? "–" : fmt(value);
      tile.classList.toggle("undefined", value === null || value === undefined);
      tile.title = why;
    }
    const note = $("kpi-window");
    if (!doc) note.textContent = "not measured yet";
    else {
      const size = doc.window_seconds;
      note.textContent = `${hhmm(doc.window)}–${hhmm(doc.window + size)} UTC · ${doc.final ? "final" : "in progress"}`;
    }
  }

  function renderTopics(doc) {
    const topics = doc ? doc.topics : [];
    $("topics").replaceChildren(
      ...topics.map((t) => {
        const li = el("li");
        li.dataset.topic = t.topic;
        const g = t.growth;
        const dir = g === null ? "same" : g >= GROWTH_UP ? "up" : g <= GROWTH_DOWN ? "down" : "same";
        const arrow = dir === "up" ? "▲" : dir === "down" ? "▼" : "▸";
        li.append(
          el("span", "topic-name", t.topic),
          el("span", "num topic-count", t.count === null ? "–" : fmtInt(t.count)),
          el("span", "num topic-next muted", t.forecast === null ? "" : `→ ${fmtCount(t.forecast)}`),
          el("span", `num topic-growth ${dir}`, g === null ? "" : `${arrow} ×${g.toFixed(1)}`),
        );
        li.title = `${t.topic}: ${t.count ?? "?"} mentions this window, ${t.forecast === null ? "?" : fmtCount(t.forecast)} expected next window, growth ×${g === null ? "?" : g.toFixed(2)}`;
        return li;
      }),
    );
    $("topics-empty").hidden = topics.length > 0;
  }

  function renderPeople(id, list, fmt) {
    const rows = list ? list.members : [];
    $(id).replaceChildren(
      ...rows.map((m) => {
        const li = el("li");
        li.dataset.member = m.member;
        li.append(el("span", "member", m.member), el("span", "num muted person-score", fmt(m.score)));
        return li;
      }),
    );
    $(`${id}-empty`).hidden = rows.length > 0;
  }

  function renderInsights(trends, people, kpis) {
    $("insights-empty").hidden = true;
    $("insights-body").hidden = false;
    $("insights-body").classList.remove("loading");
    renderKpis(kpis);
    renderTopics(trends);
    renderPeople("at-risk", people && people.at_risk, pct);
    renderPeople("rising", people && people.rising, (x) => x.toFixed(2));
  }

  const refreshCommunity = coalesced(async () => {
    const c = state.selected;
    if (!c) return;
    const base = communityPath(c);
    const [detail, atmos, forecast, matches, trends, people, kpis] = await Promise.all([
      api(`${base}?windows=${HISTORY_WINDOWS}&limit=${WALL ? 3 : 5}`),
      api(`${base}/atmosphere?limit=3`),
      api(`${base}/forecast`),
      api(`${base}/matches?limit=5&candidates=3`),
      api(`${base}/trends?limit=${TOPICS}`),
      api(`${base}/insights?limit=${PEOPLE}`),
      api(`${base}/kpis`),
    ]);
    if (c !== state.selected) return; // another community was clicked meanwhile
    $("community-empty").hidden = true;
    $("community-body").hidden = false;
    $("community-body").classList.remove("loading");
    const rank = $("community-rank");
    if (!detail) {
      rank.hidden = true;
      ["stat-score", "stat-i", "stat-c", "stat-h"].forEach((id) => ($(id).textContent = "–"));
      renderSparkline([]);
      renderMembers([]);
    } else {
      rank.hidden = detail.rank === null;
      rank.textContent = detail.rank === null ? "" : `#${detail.rank}`;
      $("stat-score").textContent = fmtScore(detail.activity.score);
      $("stat-i").textContent = fmtInt(detail.activity.interactions);
      $("stat-c").textContent = fmtInt(detail.activity.participants);
      $("stat-h").textContent = fmtInt(detail.activity.posts);
      renderSparkline(detail.history);
      renderMembers(detail.members);
    }
    renderAtmosphere(atmos);
    renderForecast(forecast);
    renderMatches(matches);
    renderInsights(trends, people, kpis);
  }, 250);

  // ---------------------------------------------------------------------------------------------
  // Alerts
  // ---------------------------------------------------------------------------------------------

  const severity = (a) => {
    const s = String(a.severity || a.level || (a.kind === "recovery" ? "info" : "warning")).toLowerCase();
    return ["info", "warning", "critical"].includes(s) ? s : "warning";
  };
  const words = (kind) => String(kind || "alert").replace(/_/g, " ");
  const num = (x) => (typeof x === "number" ? fmtValue(x) : "?");

  // One line for a person, from the fields the atmosphere operator writes (a `message` wins).
  function describeAlert(a) {
    if (a.message || a.text) return String(a.message || a.text);
    const act = a.activity && typeof a.activity === "object" ? a.activity : null;
    const actText = act ? `${num(act.events)} events vs ${num(act.expected)} expected in ${num(act.minutes)} min` : "";
    const who = a.evidence && Array.isArray(a.evidence.members) ? a.evidence.members.slice(0, 3) : [];
    const by = who.length ? ` · ${who.join(", ")}` : "";
    switch (a.kind) {
      case "atmosphere_drop":
        return `Atmosphere dropped ${num(a.index_before)} → ${num(a.index_after)} (baseline ${num(a.baseline)})${by}`;
      case "activity_drop":
        return `Activity dropped: ${actText || "far below expectation"}`;
      case "recovery": {
        const what = a.recovers && a.recovers.kind ? words(a.recovers.kind) : "the last alert";
        return `Recovered from ${what}${actText ? `: ${actText}` : a.index_after !== undefined ? `: index ${num(a.index_after)}` : ""}`;
      }
      default: {
        const facts = Object.entries(a)
          .filter(([k, v]) => !["community", "ts", "kind", "id", "severity"].includes(k) && typeof v !== "object")
          .slice(0, 4)
          .map(([k, v]) => `${words(k)} ${fmtValue(v)}`);
        return `${words(a.kind)}${facts.length ? `: ${facts.join(" · ")}` : ""}`;
      }
    }
  }
  const alertKey = (a) => JSON.stringify([a.community, a.ts, a.kind, a.message, a.id]);

  const refreshAlerts = coalesced(async () => {
    const doc = await api(`api/alerts?limit=${WALL ? 6 : 15}`);
    if (!doc) return;
    const list = $("alerts");
    const items = doc.alerts.map((a) => {
      const key = alertKey(a);
      const li = el("li", `alert sev-${severity(a)}`);
      li.dataset.community = a.community;
      if (state.alertsLoaded && !state.seenAlerts.has(key)) li.classList.add("fresh");
      state.seenAlerts.add(key);
      const head = el("div", "alert-head");
      const who = el("button", "alert-community", a.community);
      who.type = "button";
      who.addEventListener("click", () => select(a.community, true));
      const when = el("time", "muted", ago(alertMs(a)));
      const ms = alertMs(a);
      if (ms) when.dateTime = new Date(ms).toISOString();
      head.append(who, el("span", "alert-kind", words(a.kind || severity(a))), when);
      li.append(head, el("p", "alert-text", describeAlert(a)));
      return li;
    });
    list.replaceChildren(...items);
    state.alertsLoaded = true;
    $("alerts-empty").hidden = items.length > 0;
    $("alerts-meta").textContent = items.length ? `${items.length} newest` : "";
  }, 500);

  // ---------------------------------------------------------------------------------------------
  // Live updates
  // ---------------------------------------------------------------------------------------------

  function setLive(stateName, text) {
    const node = $("live");
    node.dataset.state = stateName;
    node.querySelector(".live-text").textContent = text;
    state.live = stateName === "live";
  }

  function refreshAll() {
    refreshBoard();
    refreshAlerts();
    if (state.selected) refreshCommunity();
  }

  function connect() {
    if (!window.EventSource) {
      setLive("offline", "polling");
      return;
    }
    const source = new EventSource("api/events");
    source.addEventListener("ready", () => {
      setLive("live", "live");
      refreshAll();
    });
    source.addEventListener("resync", refreshAll);
    source.addEventListener("update", (ev) => {
      let changed = [];
      try {
        changed = JSON.parse(ev.data);
      } catch (err) {
        changed = [];
      }
      refreshBoard();
      refreshAlerts();
      if (state.selected && (!changed.length || changed.includes(state.selected))) refreshCommunity();
      $("live").title = `last update ${new Date().toLocaleTimeString()}`;
    });
    source.addEventListener("error", () => setLive("reconnecting", "reconnecting"));
  }

  // Minute-level texts ("2 min ago") age without events; a slow poll also covers a broken stream.
  setInterval(() => {
    if (!state.live) refreshAll();
    else refreshAlerts();
  }, FALLBACK_POLL_MS);

  let fromHash = "";
  try {
    fromHash = decodeURIComponent((location.hash.match(/^#c=(.+)$/) || [])[1] || "");
  } catch (err) {
    fromHash = ""; // a hand-edited, malformed link: ignore it
  }
  if (fromHash) select(fromHash, true);
  refreshAll();
  connect();
})();
