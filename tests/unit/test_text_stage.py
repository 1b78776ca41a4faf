"""The text stage (online_models/text_stage.py): topics an organiser would call topics on real
posts, one analysis per post shared through ``Post.analysis``, recomputed identically on replay,
and ``pulse analyze``.

Real input: Hacker News titles and Weibo posts committed in ``online_models/data/real`` (sources
and licences in its README)."""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys

import orjson
import pytest

from online_models import text_stage
from online_models.text_stage import analysis_of, analyze, annotate, tag_topic, topics_with_tags
from schemas.events import Post
from streams.operators.runner import OperatorRunner, _events_blob, _unblob_events, run_locally
from streams.operators.trends import TrendingTopics
from tests.workers import ROOT

REAL = ROOT / "online_models" / "data" / "real"


def _column(name: str, column: str) -> list[str]:
    with (REAL / name).open(encoding="utf-8") as f:
        return [row[column] for row in csv.DictReader(f)]


HN = _column("hn_titles_2016.csv", "title")
WEIBO = _column("weibo_senti_eval.csv", "review")


def _post(i: int, text: str, tags: tuple[str, ...] = (), ts: int = 1_767_571_200_000) -> Post:
    return Post(f"e{i}", "c1", f"m{i % 7}", ts + i * 1000, f"p{i}", text, "post", tags, None)


# --- topics on real posts -------------------------------------------------------------------------
def test_no_topic_on_real_titles_is_a_number_contraction_url_or_mention():
    for title in HN:
        for topic in analyze(title).topics:
            assert not re.fullmatch(r"[\d.,%$]+[kmb]?", topic), (title, topic)
            assert "'" not in topic and "’" not in topic, (title, topic)
            assert "://" not in topic and not topic.startswith(("www.", "@")), (title, topic)
            assert topic not in {"hn", "ask", "show", "tell"}, (title, topic)  # HN's own boilerplate


def test_no_topic_on_real_weibo_posts_is_an_emoticon_code_mention_or_repost_boilerplate():
    for text in WEIBO:
        codes = set(re.findall(r"\[([\u4e00-\u9fffA-Za-z]{1,8})\]", text))
        mentions = set(re.findall(r"@([\w\-]{1,30})", text))
        topics = analyze(text).topics
        for topic in topics:
            assert topic not in {"回复", "转发", "转发微博", "微博"}, (text, topic)
            # an emoticon code's word is a topic only if the text also says it outside the brackets
            if topic in codes:
                assert re.sub(r"\[[^\]]{1,8}\]", "", text).count(topic), (text, topic)
            assert topic not in mentions or topic in re.sub(r"@[\w\-]{1,30}", "", text), (text, topic)


def test_product_and_technology_names_are_kept_as_written_not_stemmed():
    topics = analyze("Kubernetes on macOS with Postgres: a Series A story about GPUs and agents").topics
    assert {"kubernetes", "macos", "postgres", "series a", "gpu", "agent"} <= set(topics)
    assert not {"kubernete", "maco", "postgre", "sery", "series"} & set(topics)


def test_phrases_are_one_topic_and_tags_merge_with_text_terms():
    a = analyze("Machine learning agents for open-source maintainers")
    assert "machine learning" in a.topics and "machine" not in a.topics and "learning" not in a.topics
    assert "open source" in a.topics
    merged = topics_with_tags(a, ("Agents", "#Open_Source"))
    assert merged.count("agent") == 1 and merged.count("open source") == 1
    assert tag_topic("AGENTS") == "agent"


def test_the_noun_of_a_three_word_preposition_and_talk_words_are_not_topics():
    """``make demo``'s atmosphere drop once raised ``topic_surge`` for ``front`` ("hallucinated in
    front of a customer") and ``rant`` ("Bit of a rant:"): what a post is, or a preposition."""
    demo_post = analyze("Claude hallucinated in front of a customer during the demo")
    assert demo_post.topics == ("claude", "customer", "demo")
    assert analyze("Bit of a rant: our pilot got cancelled by procurement").topics == ("pilot", "procurement")
    assert analyze("In Terms Of Pricing, Stripe Wins").topics == ("stripe",)
    # the same nouns elsewhere are still topics
    assert {"front", "term"} <= set(analyze("A new front page for our long term customers").topics)


def test_mention_right_after_a_chinese_character_is_not_a_topic():
    assert "bob" not in analyze("周末一起看大模型论文@bob 好吗").topics
    assert "大模型" in analyze("周末一起看大模型论文@bob 好吗").topics


def test_language_by_script():
    assert analyze("Show HN: a Rust profiler").lang == "en"
    assert analyze("今天的大模型分享会很精彩").lang == "zh"
    assert analyze("今天的分享 was really about Kubernetes operators and GPUs").lang == "mixed"
    assert analyze("🎉🎉 !!!").lang == ""


def test_the_not_noun_list_is_what_lemminflect_says_of_every_word_it_knows():
    """``data/en_not_nouns.txt`` stands in for lemminflect's 46 MB table: it must hold exactly the
    words lemminflect knows only as verb, adjective or adverb, asked one by one through its public
    ``getAllLemmas`` for every key of its two tables (the only words that call can find)."""
    import lemminflect
    from lemminflect.core.Lemmatizer import Lemmatizer

    lemmatizer = Lemmatizer()
    known = {k.lower() for k in [*lemmatizer._getLemmaDict(), *lemmatizer._getOverridesDict()]}
    expected = set()
    for word in known:
        pos = lemminflect.getAllLemmas(word)
        if pos and "NOUN" not in pos and "PROPN" not in pos:
            expected.add(word)
    assert expected == text_stage.NOT_NOUNS_EN
    assert {"robust", "stolen", "prepare"} <= expected and not {"agent", "kubernetes", "series"} & expected
    # as the stage uses it: a verb/adjective is no topic, unless capitalised inside a sentence (a name)
    assert "vivid" in expected and "vivid" not in analyze("we moved our docs to a vivid site").topics
    assert "vivid" in analyze("we moved our docs to Vivid last week").topics


# --- one analysis per post, shared and replayed ---------------------------------------------------
def test_analysis_is_a_pure_function_of_the_text_across_processes():
    texts = HN[:200] + WEIBO[:200]
    here = [analyze(t).as_dict() for t in texts]
    code = (
        "import sys, orjson; from online_models.text_stage import analyze;"
        "texts = orjson.loads(sys.stdin.buffer.read());"
        "sys.stdout.buffer.write(orjson.dumps([analyze(t).as_dict() for t in texts]))"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONHASHSEED": "12345"}
    done = subprocess.run(
        [sys.executable, "-c", code], input=orjson.dumps(texts), capture_output=True, env=env, check=True
    )
    assert orjson.loads(done.stdout) == here


def test_cache_and_prefix_bound_change_nothing_but_length():
    long = " ".join(HN[:400])
    assert len(long) > 10_000
    text_stage.cache_clear()
    assert analyze(long) == analyze(long[: text_stage.TEXT_MAX_CHARS])
    assert analyze(HN[0]) == text_stage._analyze(HN[0])  # cached == computed


def test_the_log_does_not_carry_the_analysis_and_replay_recomputes_it():
    """Operator logs hold events as rows without ``analysis``; annotating the replayed events gives
    the same analyses, so a replayed state equals the live one (independent of the runner's API)."""
    events = [_post(i, t) for i, t in enumerate(HN[:60] + WEIBO[:60])]
    annotate(events)
    replayed = _unblob_events(_events_blob(events))
    assert all(ev.analysis is None for ev in replayed)
    annotate(replayed)
    assert [ev.analysis for ev in replayed] == [ev.analysis for ev in events]
    _, live = run_locally(TrendingTopics(), events, batch=20)
    _, again = run_locally(TrendingTopics(), replayed, batch=20)
    digest = {n: t.__getstate__() for n, t in live["c1"].topics.items()}
    assert digest == {n: t.__getstate__() for n, t in again["c1"].topics.items()}


def test_the_runner_annotates_every_post_of_a_batch_once():
    """(This branch's runner API: ``load(name, blobs)``; main's is ``load(stored)``.)"""
    events = [_post(i, t) for i, t in enumerate(HN[:30] + WEIBO[:30])]
    runner = OperatorRunner([TrendingTopics()], snapshot_every=1000)
    runner.load({"c1": ({}, [])})
    runner.run(events)
    assert all(ev.analysis == analyze(ev.text) for ev in events)
    first = [ev.analysis for ev in events]
    runner.run(events)  # already annotated: kept, not recomputed
    assert all(a is b for a, b in zip(first, (ev.analysis for ev in events), strict=True))


def test_operators_compute_the_analysis_themselves_when_none_was_attached():
    bare = _post(1, "Kubernetes on macOS")
    assert bare.analysis is None
    assert analysis_of(bare) == analyze("Kubernetes on macOS")
    annotated = _post(1, "Kubernetes on macOS")
    annotate([annotated])
    assert analysis_of(annotated) is annotated.analysis
    assert len(_events_blob([annotated])) == len(_events_blob([bare]))  # logs never carry it


# --- pulse analyze ----------------------------------------------------------------------------------
@pytest.mark.parametrize("via_stdin", [False, True])
def test_pulse_analyze_prints_one_json_object_per_text(via_stdin: bool):
    texts = [HN[3], WEIBO[5], "Honestly 很失望，真的很 frustrating"]
    args = [sys.executable, "-m", "streams.cli", "analyze"] + ([] if via_stdin else texts)
    stdin = ("\n".join(texts) + "\n").encode() if via_stdin else None
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(args, input=stdin, capture_output=True, env=env, check=True, cwd=ROOT)
    lines = [orjson.loads(line) for line in done.stdout.splitlines()]
    assert [d["text"] for d in lines] == texts
    for doc, text in zip(lines, texts, strict=True):
        a = analyze(text)
        assert (doc["lang"], doc["topics"], doc["terms"], doc["sentiment"]) == (
            a.lang, list(a.topics), list(a.terms), a.sentiment,
        )  # fmt: skip
