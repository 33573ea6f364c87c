"""Length grouping of texts into sub-batches (a size per length, a padding cap), and putting
results back in input order."""

from __future__ import annotations

import random

import pytest

from autoembed.embedders.batching import in_input_order, length_groups


def fixed(size):
    return lambda length: size


@pytest.mark.parametrize(
    ("lengths", "size", "sizes"),
    [
        ([], 8, []),
        ([5], 8, [1]),
        ([5] * 8, 8, [8]),
        ([5] * 9, 8, [8, 1]),
        ([5] * 17, 4, [4, 4, 4, 4, 1]),
        ([10] * 10, 1, [1] * 10),
        ([10] * 10, 100, [10]),
    ],
)
def test_group_sizes(lengths, size, sizes):
    assert [len(group) for group in length_groups(lengths, fixed(size))] == sizes


@pytest.mark.parametrize("size", [1, 2, 3, 8, 32])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_every_index_once_and_order_restored(size, seed):
    rng = random.Random(seed)
    lengths = [rng.randint(2, 256) for _ in range(rng.randint(1, 60))]
    groups = length_groups(lengths, fixed(size))
    assert sorted(i for group in groups for i in group) == list(range(len(lengths)))
    # an "embedder" that returns each text's length negated, per group
    results = [[-lengths[i] for i in group] for group in groups]
    assert in_input_order(groups, results) == [-n for n in lengths]


@pytest.mark.parametrize("size", [2, 4, 8])
def test_groups_hold_similar_lengths(size):
    lengths = [250, 3, 30, 3, 245, 36]
    groups = length_groups(lengths, fixed(size), max_padding=1.0)
    flat = [lengths[i] for group in groups for i in group]
    assert flat == sorted(flat)
    # the two shortest texts share the first group, whatever their input positions
    assert set(groups[0][:2]) == {1, 3}


def test_the_size_follows_the_length_of_the_longest_text_in_a_run():
    # 32 texts of 20 tokens a forward pass, but only 4 of 160
    def plan(length):
        return 32 if length < 60 else 4

    lengths = [20] * 40 + [160] * 10
    sizes = [len(g) for g in length_groups(lengths, plan)]
    assert sizes == [32, 8, 4, 4, 2]
    # a short run may take longer texts while it stays under their size
    mixed = [20, 20, 160, 160, 160]
    assert [len(g) for g in length_groups(mixed, plan, max_padding=1.0)] == [4, 1]


def test_korean_rows_long_in_tokens_do_not_pad_english_ones():
    # what the tokenizer counts matters, not characters: 10 English rows of ~18 tokens,
    # 2 Korean rows of ~60 tokens (their Hangul split into jamo)
    lengths = [18, 17, 60, 19, 18, 62, 18, 17, 19, 18, 18, 17]
    groups = length_groups(lengths, fixed(32))
    assert [sorted(lengths[i] for i in g) for g in groups] == [
        [17, 17, 17, 18, 18, 18, 18, 18, 19, 19], [60, 62]]


@pytest.mark.parametrize("max_padding", [0.0, 0.1, 0.15, 0.5])
def test_padding_stays_under_the_cap(max_padding):
    rng = random.Random(7)
    lengths = [rng.randint(2, 256) for _ in range(300)]
    for group in length_groups(lengths, fixed(64), max_padding=max_padding):
        longest = max(lengths[i] for i in group)
        padding = 1 - sum(lengths[i] for i in group) / (len(group) * longest)
        assert padding <= max_padding + 1e-9


def test_equal_lengths_keep_input_order():
    groups = length_groups([7, 7, 7, 7, 7], fixed(3))
    assert [i for group in groups for i in group] == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("size", [0, -1])
def test_a_size_must_be_positive(size):
    with pytest.raises(ValueError, match="at least 1"):
        length_groups([5], fixed(size))


def test_in_input_order_rejects_mismatched_results():
    with pytest.raises(ValueError):
        in_input_order([[0, 1]], [["only one"]])
    with pytest.raises(ValueError):
        in_input_order([[0], [1]], [["a"]])
