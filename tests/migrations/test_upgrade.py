"""Upgrading a database that already watches tables and holds queued jobs."""

from __future__ import annotations

import numpy as np
import pytest
from pgvector.psycopg import register_vector
from support import create_docs, drain, expected, queue_depth, watch
from support.legacy import RELEASE_0_1, apply_release_0_1

from autoembed import connections as db
from autoembed.migrate import apply_migrations, migration_files

#: the first migration applied by the upgrade -> the messages the two queued rows had before it
UPGRADES = {
    "20261123000004_chunked_jobs.sql": [{"source_id": 1, "pk": "1"}, {"source_id": 1, "pk": "2"}],
    "20261123000006_key_ranges_and_key_changes.sql": [{"source_id": 1, "pks": ["1", "2"]}],
}


@pytest.mark.parametrize("upgrade", UPGRADES)
def test_upgrade_keeps_queued_jobs_and_replaces_the_triggers(empty_dsn, settings, tmp_path, upgrade):
    with db.connect(empty_dsn) as conn:
        apply_release_0_1(conn, before=upgrade)
        conn.autocommit = True
        register_vector(conn)
        create_docs(conn)
        watch(conn)
        conn.execute("insert into docs (body) values ('queued before'), ('also before')")
        assert [m for (m,) in conn.execute("select message from pgmq.q_autoembed_jobs order by msg_id")] == UPGRADES[upgrade]

        conn.autocommit = False
        # the rest of 0.1's migrations run as they were; the baseline, which stands in for them on
        # fresh installs only, is recorded beside them
        assert apply_migrations(conn) == [m.name for m in migration_files()
                                          if m.name not in {r.name for r in RELEASE_0_1 if r.name < upgrade}]
        conn.autocommit = True
        triggers = {r[0] for r in conn.execute("select tgname from pg_trigger where tgrelid = 'docs'::regclass")}
        assert "autoembed_mark_changed_1" in triggers and "autoembed_clear_embedding" not in triggers
        assert "autoembed_mark_changed" not in triggers  # named per watch since 20261201233000_named_watches
        # the triggers are exactly today's: refreshing them finds nothing to do
        assert conn.execute("select autoembed.refresh_triggers(s) from autoembed.sources s").fetchone()[0] is False
        assert conn.execute("select pending from autoembed.status").fetchone()[0] == 2
        conn.execute("insert into docs (body) values ('queued after')")
        conn.execute("update docs set views = 1")  # no content change: no job
        assert queue_depth(conn) == 3

        drain(empty_dsn, settings)
        stored = dict(conn.execute("select body, embedding from docs"))
        for body, vector in stored.items():
            np.testing.assert_allclose(vector.to_numpy(), expected(body), atol=1e-6)
        assert queue_depth(conn) == 0
