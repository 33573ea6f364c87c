"""recall@k and MRR@k of bench/korean/metrics.py on hand-made rankings."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from korean.metrics import first_relevant_rank, mrr_at_k, recall_at_k  # noqa: E402

# question 0: answer first; 1: answer third (either of two relevant items); 2: answer 12th; 3: never
RANKED = [
    ["a", "b", "c"],
    ["x", "y", "q2", "q1"],
    [f"n{i}" for i in range(11)] + ["hit"],
    ["u", "v"],
]
RELEVANT = [{"a"}, {"q1", "q2"}, {"hit"}, {"missing"}]


@pytest.mark.parametrize(
    ("ranked", "relevant", "rank"),
    [
        (["a", "b"], {"a"}, 1),
        (["a", "b"], {"b", "z"}, 2),
        (["a", "b"], {"z"}, None),
        ([], {"z"}, None),
    ],
)
def test_first_relevant_rank(ranked, relevant, rank):
    assert first_relevant_rank(ranked, relevant) == rank


@pytest.mark.parametrize(("k", "expected"), [(1, 1 / 4), (2, 1 / 4), (3, 2 / 4), (11, 2 / 4), (12, 3 / 4)])
def test_recall_at_k_counts_questions_answered_within_k(k, expected):
    assert recall_at_k(RANKED, RELEVANT, k) == pytest.approx(expected)


def test_mrr_at_10_ignores_answers_past_rank_10():
    assert mrr_at_k(RANKED, RELEVANT) == pytest.approx((1 + 1 / 3 + 0 + 0) / 4)
    assert mrr_at_k(RANKED, RELEVANT, k=12) == pytest.approx((1 + 1 / 3 + 1 / 12 + 0) / 4)


def test_perfect_and_useless_rankings():
    perfect = [["a", "b"], ["c", "d"]]
    assert recall_at_k(perfect, [{"a"}, {"c"}], 1) == 1.0
    assert mrr_at_k(perfect, [{"a"}, {"c"}]) == 1.0
    assert recall_at_k(perfect, [{"z"}, {"y"}], 2) == 0.0
    assert mrr_at_k(perfect, [{"z"}, {"y"}]) == 0.0


def test_a_relevant_item_counts_once_however_many_share_the_answer():
    # two relevant passages in the top 2 still make one recalled question, reciprocal rank 1
    assert recall_at_k([["p1", "p2"]], [{"p1", "p2"}], 2) == 1.0
    assert mrr_at_k([["p1", "p2"]], [{"p1", "p2"}]) == 1.0


@pytest.mark.parametrize(
    ("ranked", "relevant", "k", "complaint"),
    [
        ([["a"]], [{"a"}], 0, "k must be at least 1"),
        ([["a"], ["b"]], [{"a"}], 1, "2 result lists for 1 questions"),
        ([], [], 1, "no questions"),
        ([["a"]], [set()], 1, "question 0 has no relevant item"),
    ],
)
def test_malformed_input_is_refused(ranked, relevant, k, complaint):
    with pytest.raises(ValueError, match=complaint):
        recall_at_k(ranked, relevant, k)
    with pytest.raises(ValueError, match=complaint):
        mrr_at_k(ranked, relevant, k)
