"""Matching on real posts (issue 18): Hacker News "Ask HN" titles as needs and "Show HN" titles as
offers (``online_models/data/real``); no candidate may rest on one common word."""

from __future__ import annotations

from online_models.text_stage import informativeness
from streams.evaluation.realtext import real_match_candidates
from streams.operators.matching import MatchConfig


def test_no_candidate_on_real_ask_and_show_posts_rests_on_one_common_word():
    pairs = real_match_candidates()
    assert pairs, "the real stream should produce some candidates"
    for pair in pairs:
        terms = pair["reasons"]["matched_terms"]
        assert pair["reasons"]["shared_tags"] or len(terms) >= 2 or informativeness(terms[0]) >= 0.9, pair
        assert not (len(terms) == 1 and informativeness(terms[0]) < 0.4), pair


def test_the_old_rule_did_pair_on_single_common_words():
    """The same stream under the pre-issue-18 rule (no informative-term requirement) shows the defect,
    so the test above is not vacuous."""
    old = real_match_candidates(MatchConfig(min_shared_terms=0, informative=0.0, rare=2.0))
    assert any(len(p["reasons"]["matched_terms"]) == 1 for p in old)
