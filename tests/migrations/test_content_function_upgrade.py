"""Migration 20261201230100: autoembed.sources.content_function, a regprocedure until then (which
pg_upgrade refuses in user tables), becomes the function's name. Registrations made before keep
working: through their function, their column, or, for a function dropped meanwhile, broken as
before, with the same report."""

from __future__ import annotations

from support import DIMS, drain, expected
from support.legacy import apply_release_0_1

from autoembed import connections as db
from autoembed.migrate import apply_migrations


def test_registrations_made_with_a_regprocedure_keep_their_function_by_name(empty_dsn, settings):
    with db.connect(empty_dsn) as conn:
        apply_release_0_1(conn)
        conn.autocommit = True
        for table in ("by_function", "by_column", "function_gone"):
            conn.execute(f"create table {table} (id bigint generated always as identity primary key, title text, "
                         f"body text, embedding vector({DIMS}))")
            conn.execute(f"create function {table}_input(d {table}) returns text language sql immutable "
                         "as $$ select d.title || ': ' || d.body $$")
        for table, content in (("by_function", "by_function_input"), ("by_column", "body"),
                               ("function_gone", "function_gone_input")):
            conn.execute("select autoembed.watch(%s, %s, embedder => 'hashing', model => 'hashing-test')",
                         (table, content))
        conn.execute("drop function function_gone_input(function_gone) cascade")
        conn.autocommit = False
        apply_migrations(conn)
        conn.autocommit = True
        db.register_vectors(conn)  # pgvector came with the migrations, after this connection opened
        registered = conn.execute("select table_name, content_column, content_function, "
                                  "pg_typeof(content_function)::text from autoembed.sources order by id").fetchall()
        assert [r[:3] for r in registered] == [("by_function", None, "public.by_function_input"),
                                              ("by_column", "body", None),
                                              ("function_gone", None, registered[2][2])]
        assert {r[3] for r in registered} == {"text"}
        assert registered[2][2].strip('"').isdigit()  # the dropped function's old oid: names nothing

        conn.execute("insert into by_function (title, body) values ('upgraded', 'still embedded')")
        drain(empty_dsn, settings)
        vector = conn.execute("select embedding from by_function").fetchone()[0]
        assert (vector.to_numpy() == expected("upgraded: still embedded")).all()
        states = dict(conn.execute("select source, state from autoembed.status").fetchall())
        assert states["public.by_function"] == "ok" and states["public.by_column"] == "ok"
        assert "content function" in states["public.function_gone"] and "dropped or renamed" in states[
            "public.function_gone"]
