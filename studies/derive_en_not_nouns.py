"""Derive ``online_models/data/en_not_nouns.txt`` from lemminflect's dictionary.

The text stage asks one yes/no question of an English word: does a dictionary know it only as a
verb, adjective or adverb (``robust``, ``prepare``, ``stolen``), never as a noun or proper noun?
lemminflect answers it, but its lookup table costs a worker ~46 MB of resident memory (measured:
190 → 144 MB without it, at start-up) and ~0.35 s to load, for a set of ~29,000 words that fits
in ~3 MB.  So the answer is derived once, here, for every word lemminflect knows (its lemma table
and overrides, lower-cased, as ``getAllLemmas`` looks them up), and committed as a sorted word
list; ``tests/unit/test_text_stage.py`` checks that the list still equals what the installed
lemminflect says, word for word.

Source and licence: lemminflect (MIT), whose dictionary is derived from the NIH's SPECIALIST
Lexicon (as lemminflect's README says); the list is a fact-per-word summary of that dictionary.

Run from the repository root (needs lemminflect, a dev dependency)::

    python -m studies.derive_en_not_nouns      # rewrites the list; same lemminflect, same bytes
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Sequence
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "online_models" / "data" / "en_not_nouns.txt"
HEADER = "# English words lemminflect knows only as verb/adjective/adverb: studies/derive_en_not_nouns.py"


def known_words() -> set[str]:
    """Every word lemminflect's ``getAllLemmas`` can find (it looks up the lower-cased word)."""
    from lemminflect.core.Lemmatizer import Lemmatizer

    lemmatizer = Lemmatizer()
    keys: Iterable[str] = [*lemmatizer._getLemmaDict(), *lemmatizer._getOverridesDict()]
    return {k.lower() for k in keys}


def is_not_noun(word: str) -> bool:
    """lemminflect's answer: known, and with no NOUN or PROPN reading."""
    import lemminflect

    pos = lemminflect.getAllLemmas(word)
    return bool(pos) and "NOUN" not in pos and "PROPN" not in pos


def derive() -> list[str]:
    return sorted(w for w in known_words() if is_not_noun(w))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    words = derive()
    args.out.write_text(HEADER + "\n" + "\n".join(words) + "\n", encoding="utf-8")
    print(f"wrote {len(words):,} words to {args.out}")


if __name__ == "__main__":
    main()
