"""Split texts into sub-batches of similar length, and put the results back in input order.

A transformer pads every text in a batch to the longest one, so a batch mixing a 10-token
and a 250-token text costs as much as two 250-token texts. Sorting by length and cutting
the sorted order into short runs keeps padding small (bench/embedder_engines.py measures it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")


def length_groups(texts: Sequence[str], max_batch: int) -> list[list[int]]:
    """Indices of `texts`, sorted by character length, cut into runs of at most `max_batch`.

    Every index appears exactly once. Texts of equal length keep their input order (the
    sort is stable), so the grouping is deterministic.
    """
    if max_batch < 1:
        raise ValueError(f"max_batch must be at least 1, got {max_batch}")
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    return [order[start : start + max_batch] for start in range(0, len(order), max_batch)]


def in_input_order(groups: Sequence[Sequence[int]], results: Sequence[Sequence[T]]) -> list[T]:
    """Undo `length_groups`: `results[g][k]` belongs to input index `groups[g][k]`."""
    if len(groups) != len(results):
        raise ValueError(f"{len(groups)} groups but {len(results)} result lists")
    size = sum(len(group) for group in groups)
    out: list = [None] * size
    for group, values in zip(groups, results):
        if len(group) != len(values):
            raise ValueError(f"a group of {len(group)} indices got {len(values)} results")
        for index, value in zip(group, values):
            out[index] = value
    return out
