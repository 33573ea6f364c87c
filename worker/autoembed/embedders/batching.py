"""Split texts into sub-batches of similar length, and put the results back in input order.

A transformer pads every text in a batch to the longest one, so a batch mixing a 10-token
and a 250-token text costs as much as two 250-token texts. Sorting by length and cutting
the sorted order into short runs keeps padding small. How many texts a run may hold can
depend on their length (calibration.py measures the best number per length bucket, on texts of
one length): a run takes the next, longer text only while it holds fewer texts than that
text's length allows, and while padding stays under `MAX_PADDING` of the run's tokens.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")

#: the share of a run's padded tokens that may be padding (a 15% dearer forward pass costs
#: about what halving a short-text sub-batch does)
MAX_PADDING = 0.15


def length_groups(lengths: Sequence[int], batch_for: Callable[[int], int],
                  max_padding: float = MAX_PADDING) -> list[list[int]]:
    """Indices of the texts whose lengths are `lengths`, sorted by length, cut into runs; a run
    holds at most `batch_for(n)` texts, `n` the length of its longest (last) text, and at most
    `max_padding` of its `len(run) * n` tokens are padding.

    Every index appears exactly once. Texts of equal length keep their input order (the
    sort is stable), so the grouping is deterministic.
    """
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    groups: list[list[int]] = []
    run: list[int] = []
    real = 0  # tokens of the texts in `run`
    for index in order:
        length = lengths[index]
        limit = batch_for(length)
        if limit < 1:
            raise ValueError(f"a sub-batch must hold at least 1 text, got {limit} for length {length}")
        if run and (len(run) >= limit or real + length < (1 - max_padding) * (len(run) + 1) * length):
            groups.append(run)
            run, real = [], 0
        run.append(index)
        real += length
    if run:
        groups.append(run)
    return groups


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
