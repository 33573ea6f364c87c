"""Retrieval metrics over ranked result lists: pure functions, no model, no database.

`ranked[i]` is what a search returned for question i, best first; `relevant[i]` is the set
of items that answer question i (never empty). Each question of this benchmark has one
answer, which may overlap more than one item, so a question counts as recalled at k when any
of its relevant items is among the first k: recall@k is the share of such questions (what
some papers call success@k or hit rate).
"""

from __future__ import annotations

from collections.abc import Collection, Hashable, Sequence


def first_relevant_rank(ranked: Sequence[Hashable], relevant: Collection[Hashable]) -> int | None:
    """1-based rank of the first relevant item in `ranked`, or None if there is none."""
    for rank, item in enumerate(ranked, start=1):
        if item in relevant:
            return rank
    return None


def recall_at_k(
    ranked: Sequence[Sequence[Hashable]], relevant: Sequence[Collection[Hashable]], k: int
) -> float:
    """Share of questions with a relevant item among their first `k` results."""
    ranks = _first_ranks(ranked, relevant, k)
    return sum(rank is not None and rank <= k for rank in ranks) / len(ranks)


def mrr_at_k(
    ranked: Sequence[Sequence[Hashable]], relevant: Sequence[Collection[Hashable]], k: int = 10
) -> float:
    """Mean over questions of 1 / rank of the first relevant result, 0 past rank `k`."""
    ranks = _first_ranks(ranked, relevant, k)
    return sum(1.0 / rank for rank in ranks if rank is not None and rank <= k) / len(ranks)


def _first_ranks(
    ranked: Sequence[Sequence[Hashable]], relevant: Sequence[Collection[Hashable]], k: int
) -> list[int | None]:
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    if len(ranked) != len(relevant):
        raise ValueError(f"{len(ranked)} result lists for {len(relevant)} questions")
    if not ranked:
        raise ValueError("no questions")
    for index, items in enumerate(relevant):
        if not items:
            raise ValueError(f"question {index} has no relevant item")
    return [first_relevant_rank(results, items) for results, items in zip(ranked, relevant)]
