"""AUTOEMBED_WATCHES: the watches a worker is limited to."""

from __future__ import annotations

import pytest

from autoembed.settings import Settings, parse_watches


@pytest.mark.parametrize(("raw", "watches"), [
    (None, ()),
    ("", ()),
    (" , ", ()),
    ("docs", ("docs",)),
    ("docs.embedding, notes.title_embedding,", ("docs.embedding", "notes.title_embedding")),
    ('public."Docs".embedding', ('public."Docs".embedding',)),
])
def test_watches_are_a_comma_separated_list(raw, watches):
    assert parse_watches(raw) == watches


def test_the_environment_limits_the_worker():
    assert Settings.from_env({"AUTOEMBED_WATCHES": "docs.embedding,notes"}).watches == ("docs.embedding", "notes")
    assert Settings.from_env({}).watches == ()
