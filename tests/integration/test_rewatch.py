"""Watching a table again after `unwatch`: nothing stored while nobody watched is taken on trust."""

from __future__ import annotations

import pytest
from support import DIMS, create_docs, drain, expected, queue_depth, watch


def test_content_changed_while_unwatched_is_embedded_again(conn, dsn, settings):
    """The old vector stayed, nothing was queued, status said embedded and the sweep found nothing."""
    create_docs(conn)
    watch(conn)
    conn.execute("insert into docs (body) values ('one'), ('two'), ('three')")
    drain(dsn, settings)
    conn.execute("select autoembed.unwatch('docs')")
    conn.execute("update docs set body = 'one, changed while nobody watched' where id = 1")
    conn.execute("delete from docs where id = 3")
    conn.execute("insert into docs (body) values ('four, inserted while nobody watched')")
    watch(conn)
    assert {pk for (pk,) in conn.execute("select pk from autoembed.jobs")} >= {"1", "4"}
    assert conn.execute("select pending from autoembed.status").fetchone()[0] >= 2
    drain(dsn, settings)
    for body, vector in conn.execute("select body, embedding from docs order by id").fetchall():
        assert vector.to_list() == pytest.approx(expected(body).tolist(), abs=1e-6), body
    assert queue_depth(conn) == 0


@pytest.mark.parametrize("emptied", ["null", "''", "'   '"])
def test_content_emptied_while_unwatched_loses_its_old_vector(conn, dsn, settings, emptied):
    """A vector left beside content that went empty while nobody watched was taken as up to date
    (no recorded hash compared equal to the hash of NULL): it stayed, with no failure, forever."""
    create_docs(conn)
    watch(conn)
    conn.execute("insert into docs (body) values ('one'), ('two')")
    drain(dsn, settings)
    conn.execute("select autoembed.unwatch('docs')")
    conn.execute(f"update docs set body = {emptied} where id = 1")
    conn.execute("update docs set id = default where id = 2")  # re-keyed, its vector moves along
    conn.execute("update docs set body = null where id = 3")
    watch(conn, clear_on_change=False)
    drain(dsn, settings)
    assert conn.execute("select count(*) from docs where embedding is not null and coalesce(trim(body), '') = ''"
                        ).fetchone()[0] == 0
    assert {pk for (pk,) in conn.execute("select pk from autoembed.failures where error_class = 'EmptyContent'")} == {"1", "3"}
    assert queue_depth(conn) == 0


@pytest.mark.parametrize("options", [{"clear_on_change": False}, {"model": "another-model"}])
def test_a_vector_written_before_this_registration_is_embedded_again(conn, dsn, settings, options):
    create_docs(conn)
    conn.execute(f"insert into docs (body, embedding) values ('loaded with a vector', array_fill(0.5, array[{DIMS}])::vector)")
    watch(conn, **options)
    assert [pk for (pk,) in conn.execute("select pk from autoembed.jobs")] == ["1"]
    drain(dsn, settings)
    vector = conn.execute("select embedding from docs").fetchone()[0]
    assert vector.to_list() == pytest.approx(expected("loaded with a vector").tolist(), abs=1e-6)


def test_watching_again_without_unwatch_keeps_what_is_known(conn, dsn, settings):
    create_docs(conn)
    watch(conn)
    conn.execute("insert into docs (body) values ('one'), ('two')")
    drain(dsn, settings)
    watch(conn, max_attempts=3)  # the same content, vector and model: nothing to embed again
    assert queue_depth(conn) == 0
