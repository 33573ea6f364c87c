"""Migration 20261201233000: several watches per table. A registration made before keeps working as
the watch named after its embedding column, its triggers (fixed names until then) replaced by
ones that carry its id, so that a second watch of the table can be added beside it."""

from __future__ import annotations

import numpy as np
from support import create_docs, drain, expected, watch
from support.legacy import apply_release_0_1

from autoembed import connections as db
from autoembed.migrate import apply_migrations

OLD_TRIGGERS = {"autoembed_enqueue_insert", "autoembed_enqueue_update", "autoembed_forget_delete", "autoembed_mark_changed"}


def triggers(conn) -> set[str]:
    return {name for (name,) in conn.execute("select tgname from pg_trigger where tgrelid = 'docs'::regclass")}


def test_an_earlier_watch_becomes_the_watch_named_after_its_column(empty_dsn, settings):
    with db.connect(empty_dsn) as conn:
        apply_release_0_1(conn)
        conn.autocommit = True
        create_docs(conn)
        watch(conn)
        assert OLD_TRIGGERS <= triggers(conn)
        conn.execute("insert into docs (title, body) values ('t1', 'queued before')")
        conn.autocommit = False
        apply_migrations(conn)
        conn.autocommit = True
        db.register_vectors(conn)

        assert conn.execute("select id, name from autoembed.sources").fetchall() == [(1, "embedding")]
        assert not triggers(conn) & OLD_TRIGGERS
        assert {"autoembed_enqueue_insert_1", "autoembed_mark_changed_1"} <= triggers(conn)
        assert conn.execute("select autoembed.refresh_triggers(s) from autoembed.sources s").fetchone()[0] is False

        conn.execute("alter table docs add column title_embedding vector(8)")
        assert watch(conn, content="title", embedding_column="title_embedding") == 2
        conn.execute("insert into docs (title, body) values ('t2', 'queued after')")
        drain(empty_dsn, settings)
        for body, title, vector, title_vector in conn.execute("select body, title, embedding, title_embedding from docs"):
            np.testing.assert_allclose(vector.to_numpy(), expected(body), atol=1e-6)
            np.testing.assert_allclose(title_vector.to_numpy(), expected(title, dims=8), atol=1e-6)
        assert conn.execute("select watch, embedded from autoembed.status order by source_id").fetchall() == \
            [("embedding", 2), ("title_embedding", 2)]


def test_chunk_triggers_of_an_earlier_name_are_replaced_and_dropped(conn):
    create_docs(conn)
    watch(conn, chunks=True)
    # as autoembed named them before 20261201233000 (one chunked watch per table)
    for kind in ("delete", "truncate", "key"):
        conn.execute(f"alter trigger autoembed_chunks_{kind}_1 on docs rename to autoembed_chunks_{kind}")
    watch(conn, chunks=True)  # watching again replaces them
    assert {t for t in triggers(conn) if "chunks" in t} == {"autoembed_chunks_delete_1", "autoembed_chunks_truncate_1",
                                                          "autoembed_chunks_key_1"}
    conn.execute("alter trigger autoembed_chunks_key_1 on docs rename to autoembed_chunks_key")
    conn.execute("select autoembed.unwatch('docs')")
    assert triggers(conn) == set()
