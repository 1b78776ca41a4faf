"""Cost of the text stage per post, uncached: real short posts and the longest valid post.

``python -m studies.bench_text_stage`` prints µs per post for Hacker News titles, Weibo
posts (``data/real``), mixed-script posts built from both, and 10,000-character posts (the
schema's longest) in English, Chinese and mixed text, analysed up to ``TEXT_MAX_CHARS``.
Targets (issue 18): ≤ 30 µs for a typical post (≤ 300 characters), ≤ 1 ms for the longest.
Each figure is the median of ``--repeat`` passes over the set, in CPU time of this process (the
machine is shared).  "cold": every cache (texts, words) cleared before each pass, so each distinct
word is looked up once per pass (wordfreq, rjieba's ``tag``); "warm words": only the
per-text caches cleared — new texts made of words seen before, a worker's steady state.  (Until
session 4 the stage also cached Chinese topics per run of Han characters — per clause — which a
repeated pass over the same texts found hot: its "warm" Chinese figures were optimistic.)
"""

from __future__ import annotations

import argparse
import csv
import statistics
import time
from collections.abc import Sequence
from pathlib import Path

from online_models import sentiment, text_stage

REAL = Path(__file__).resolve().parents[1] / "online_models" / "data" / "real"


def _titles() -> list[str]:
    with (REAL / "hn_titles_2016.csv").open(encoding="utf-8") as f:
        return [row["title"] for row in csv.DictReader(f)]


def _weibo() -> list[str]:
    with (REAL / "weibo_senti_eval.csv").open(encoding="utf-8") as f:
        return [row["review"] for row in csv.DictReader(f)]


def per_post_us(
    texts: Sequence[str], repeat: int, max_chars: int = text_stage.TEXT_MAX_CHARS, warm_words: bool = False
) -> float:
    """Median over ``repeat`` passes of the mean µs per text.  Before each pass every cache is
    cleared (cold: each distinct word is looked up once per pass), or with ``warm_words`` only the
    per-text caches (a worker's steady state: new texts, words it has seen before)."""
    runs = []
    for _ in range(repeat):
        sentiment.clear_cache()  # its own per-text cache: a new text is scored in full
        if warm_words:
            text_stage._cached.cache_clear()
            text_stage._terms.cache_clear()
        else:
            text_stage.cache_clear()
        t0 = time.process_time()
        for text in texts:
            text_stage.analyze(text, max_chars)
        runs.append((time.process_time() - t0) / len(texts) * 1e6)
    return statistics.median(runs)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    text_stage.warm_up()
    hn, weibo = _titles(), _weibo()
    mixed = [f"{a} {b}" for a, b in zip(hn, weibo, strict=False)]
    long_en = [(" ".join(hn[i : i + 200]))[:10_000] for i in range(0, 2000, 200)]
    long_zh = [("".join(weibo[i : i + 200]))[:10_000] for i in range(0, 1000, 100)]
    long_mixed = [(" ".join(mixed[i : i + 100]))[:10_000] for i in range(0, 1000, 100)]
    rows = [
        ("Hacker News titles", hn),
        ("Weibo posts", weibo),
        ("mixed (title + Weibo post)", mixed),
        ("10,000 chars English", long_en),
        ("10,000 chars Chinese", long_zh),
        ("10,000 chars mixed", long_mixed),
    ]
    print(f"text stage, analysing up to {text_stage.TEXT_MAX_CHARS} characters; µs per post (CPU time)")
    print(f"  {'':28s} {'texts':>5s}  {'chars':>7s}  {'cold':>8s}  {'warm words':>10s}")
    for name, texts in rows:
        chars = statistics.mean(map(len, texts))
        cold = per_post_us(texts, args.repeat)
        per_post_us(texts, 1)  # fill the word caches
        warm = per_post_us(texts, args.repeat, warm_words=True)
        print(f"  {name:28s} {len(texts):5d}  {chars:7.0f}  {cold:8.1f}  {warm:10.1f}")


if __name__ == "__main__":
    main()
