"""Length grouping of texts into sub-batches, and putting results back in input order."""

from __future__ import annotations

import random

import pytest

from autoembed.embedders.batching import in_input_order, length_groups


def _lengths(texts, groups):
    return [[len(texts[i]) for i in group] for group in groups]


@pytest.mark.parametrize(
    ("texts", "max_batch", "sizes"),
    [
        ([], 8, []),
        (["a"], 8, [1]),
        (["a"] * 8, 8, [8]),
        (["a"] * 9, 8, [8, 1]),
        (["a"] * 17, 4, [4, 4, 4, 4, 1]),
        (["x" * n for n in range(10)], 1, [1] * 10),
        (["x" * n for n in range(10)], 100, [10]),
    ],
)
def test_group_sizes(texts, max_batch, sizes):
    assert [len(group) for group in length_groups(texts, max_batch)] == sizes


@pytest.mark.parametrize("max_batch", [1, 2, 3, 8, 32])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_every_index_once_and_order_restored(max_batch, seed):
    rng = random.Random(seed)
    texts = ["w" * rng.randint(0, 300) + str(i) for i in range(rng.randint(1, 60))]
    groups = length_groups(texts, max_batch)
    assert sorted(i for group in groups for i in group) == list(range(len(texts)))
    # an "embedder" that returns each text upper-cased, per group
    results = [[texts[i].upper() for i in group] for group in groups]
    assert in_input_order(groups, results) == [t.upper() for t in texts]


@pytest.mark.parametrize("max_batch", [2, 4, 8])
def test_groups_hold_similar_lengths(max_batch):
    texts = ["long text " * 50, "hi", "medium text " * 5, "yo", "long text " * 49, "medium " * 6]
    groups = length_groups(texts, max_batch)
    lengths = [n for group in _lengths(texts, groups) for n in group]
    assert lengths == sorted(lengths)
    # the two shortest texts share the first group, whatever their input positions
    assert set(groups[0][:2]) == {1, 3}


@pytest.mark.parametrize("max_batch", [1, 3, 5])
def test_equal_lengths_keep_input_order(max_batch):
    texts = ["abc", "def", "ghi", "jkl", "mno"]
    groups = length_groups(texts, max_batch)
    assert [i for group in groups for i in group] == [0, 1, 2, 3, 4]


def test_length_is_counted_in_characters_not_bytes():
    texts = ["한국어 문장", "abcdefghij"]  # 6 characters (16 bytes) vs 10 characters
    assert length_groups(texts, 1) == [[0], [1]]


@pytest.mark.parametrize("max_batch", [0, -1])
def test_max_batch_must_be_positive(max_batch):
    with pytest.raises(ValueError, match="max_batch"):
        length_groups(["a"], max_batch)


def test_in_input_order_rejects_mismatched_results():
    with pytest.raises(ValueError):
        in_input_order([[0, 1]], [["only one"]])
    with pytest.raises(ValueError):
        in_input_order([[0], [1]], [["a"]])
