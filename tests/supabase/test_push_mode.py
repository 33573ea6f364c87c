"""Push mode on the Supabase profile: pg_cron runs autoembed.request_drain, pg_net POSTs to
`autoembed serve`, which drains the queue; rows are embedded through that path end to end. The
drain token never appears in pg_cron's tables, and autoembed.capabilities() tells per database
whether pg_net really sends from it (pg_net serves one database: `postgres` here, as on Supabase).

These tests run in that database (the `served` fixture), each with tables of its own."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from reliability.harness import wait_until
from support import DIMS
from support.http import call, serving
from support.legacy import apply_release_0_1
from support.supabase import PGMQ_NEWEST_VERSION, SupabaseDatabase, missing_parts, use_pgmq

from autoembed import connections as db
from autoembed.devdb import free_port
from autoembed.migrate import apply_migrations

JOB = "autoembed-drain-requests"


@pytest.fixture
def drain_server(served: SupabaseDatabase, tmp_path) -> Iterator[tuple[str, str]]:
    """`autoembed serve` on 127.0.0.1 for the served database, as `postgres`: (base URL, token)."""
    port, token = free_port(), secrets.token_urlsafe(24)
    env = {"DATABASE_URL": served.postgres_dsn, "AUTOEMBED_DRAIN_TOKEN": token, "AUTOEMBED_POLL_INTERVAL": "0.2",
           "AUTOEMBED_HOME": str(tmp_path)}
    with serving(["serve", "--port", str(port)], port, env, tmp_path / "serve.log") as url:
        yield url, token


@pytest.fixture
def notes(served_conn) -> Iterator[str]:
    """A watched table of the served database (hashing embedder), dropped afterwards with the
    drain target, the drain job and what pg_net recorded."""
    served_conn.execute(f"create table push_notes (id bigint generated always as identity primary key, body text, "
                        f"embedding vector({DIMS}))")
    served_conn.execute("select autoembed.watch('push_notes', 'body', embedder => 'hashing', model => 'push')")
    try:
        yield "push_notes"
    finally:
        served_conn.execute("select cron.unschedule(jobid) from cron.job where jobname = %s", (JOB,))
        served_conn.execute("select autoembed.unwatch('push_notes')")
        served_conn.execute("drop table push_notes")
        served_conn.execute("delete from autoembed.drain_targets")


def responses(conn, request_id: int):
    """pg_net's record of a request once it has one: (status_code, JSON body)."""
    row = conn.execute("select status_code, content, error_msg from net._http_response where id = %s",
                       (request_id,)).fetchone()
    if row is None:
        return None
    assert row[2] is None, f"pg_net could not send: {row[2]}"
    return row[0], json.loads(row[1])


def status_of(conn, table: str):
    return conn.execute("select rows, embedded, pending from autoembed.status where source = %s",
                        (f"public.{table}",)).fetchone()


def cron_text(conn) -> str:
    """Everything pg_cron keeps about the drain job: its command and its runs' commands and messages."""
    rows = conn.execute("select j.command, d.command, d.return_message from cron.job j "
                        "left join cron.job_run_details d on d.jobid = j.jobid where j.jobname = %s", (JOB,)).fetchall()
    return json.dumps(rows)


def test_pg_cron_and_pg_net_drive_serve_and_rows_are_embedded(served_conn, notes, drain_server):
    conn = served_conn
    conn.execute("select autoembed.set_drain_target('default', %s, %s)", (f"{drain_server[0]}/drain", drain_server[1]))
    conn.execute("select autoembed.schedule_drain_requests('default', '* * * * *')")
    command = conn.execute("select command from cron.job where jobname = %s", (JOB,)).fetchone()[0]
    assert command == "select autoembed.request_drain('default')"  # a name, not the URL or the token

    assert conn.execute(command).fetchone() == (None,)  # nothing waits: no request
    conn.execute("insert into push_notes (body) values ('pushed one'), ('pushed two'), ('pushed three')")
    request_id = conn.execute(command).fetchone()[0]  # what pg_cron runs, run now
    status, answer = wait_until(lambda: responses(conn, request_id), timeout=60, what="pg_net's response")
    assert status == 200 and answer["status"] == "drained" and answer["embedded"] == 3, answer
    assert status_of(conn, notes) == (3, 3, 0)
    assert drain_server[1] not in cron_text(conn)
    assert conn.execute("select token from autoembed.drain_targets").fetchone() == (drain_server[1],)
    for role in ("anon", "authenticated", "service_role", "autoembed_worker"):
        assert conn.execute("select has_table_privilege(%s, 'autoembed.drain_targets', 'select')",
                            (role,)).fetchone() == (False,)


def test_the_every_minute_schedule_drains_by_itself(served_conn, notes, drain_server):
    conn = served_conn
    conn.execute("select autoembed.set_drain_target('default', %s, %s)", (f"{drain_server[0]}/drain", drain_server[1]))
    conn.execute("select autoembed.schedule_drain_requests('default', '* * * * *')")
    conn.execute("insert into push_notes (body) values ('scheduled')")
    wait_until(lambda: status_of(conn, notes) == (1, 1, 0), timeout=75, interval=0.5, what="pg_cron's next minute")
    runs = conn.execute("select d.status from cron.job_run_details d join cron.job j using (jobid) "
                        "where j.jobname = %s", (JOB,)).fetchall()
    assert ("succeeded",) in runs
    assert drain_server[1] not in cron_text(conn)


def test_a_ten_second_schedule_runs_on_pg_cron_1_5_or_later(served_conn, notes, drain_server):
    version = served_conn.execute("select extversion from pg_extension where extname = 'pg_cron'").fetchone()[0]
    if tuple(int(p) for p in version.split("-")[0].split(".")) < (1, 5):
        pytest.skip(f"pg_cron here is {version}, which refuses '10 seconds' (1.5+ takes it, Supabase ships 1.6); "
                    "scripts/setup-supabase-profile.sh could not get pg_cron 1.6.5's source")
    conn = served_conn
    conn.execute("select autoembed.set_drain_target('default', %s, %s)", (f"{drain_server[0]}/drain", drain_server[1]))
    conn.execute("select autoembed.schedule_drain_requests('default', '10 seconds')")
    conn.execute("insert into push_notes (body) values ('every ten seconds')")
    wait_until(lambda: status_of(conn, notes) == (1, 1, 0), timeout=25, interval=0.5, what="a 10-second run")


def test_without_the_token_or_with_another_the_server_refuses_and_nothing_is_drained(served_conn, notes, drain_server):
    conn = served_conn
    conn.execute("insert into push_notes (body) values ('waits')")
    for token in ("not-the-token", drain_server[1][:-1]):
        conn.execute("select autoembed.set_drain_target('default', %s, %s)", (f"{drain_server[0]}/drain", token))
        request_id = conn.execute("select autoembed.request_drain()").fetchone()[0]
        status, answer = wait_until(lambda: responses(conn, request_id), timeout=30, what="pg_net's response")
        assert (status, answer) == (401, {"error": "a bearer token is required"})
    assert call(f"{drain_server[0]}/drain", "POST")[0] == 401
    assert status_of(conn, notes) == (1, 0, 1)


def test_capabilities_tell_per_database_whether_pg_net_sends_and_pg_cron_runs(served_conn, project):
    served = dict((f, (a, d)) for f, a, d in served_conn.execute("select * from autoembed.capabilities()"))
    assert served["pg_net"][0] and "sends the requests of this database" in served["pg_net"][1]
    assert served["pg_cron"][0] and "sweep job scheduled" in served["pg_cron"][1]

    with db.connect(project.postgres_dsn) as conn:  # another database: both extensions installed there
        apply_migrations(conn)
    with db.connect(project.postgres_dsn, autocommit=True) as conn:
        other = dict((f, (a, d)) for f, a, d in conn.execute("select * from autoembed.capabilities()"))
        assert other["pg_net"][0] is False
        assert "its worker sends the requests of database postgres" in other["pg_net"][1]
        assert other["pg_cron"][0] is False and "runs the jobs of database postgres" in other["pg_cron"][1]
        conn.execute("select autoembed.set_drain_target('default', 'http://127.0.0.1:9/drain', 'x')")
        with pytest.raises(psycopg.Error, match="pg_net's worker does not send the requests of database project_"):
            conn.execute("select autoembed.request_drain('default')")
        conn.execute("create role caps_reader login in role autoembed_worker")
    try:  # a role that may not read superuser-only settings (cron.database_name) still gets an answer
        with psycopg.connect(project.dsn("caps_reader")) as conn:
            assert conn.execute("select pg_has_role('pg_read_all_settings', 'usage')").fetchone() == (False,)
            assert dict(conn.execute("select feature, available from autoembed.capabilities()").fetchall())[
                "pg_net"] is False
    finally:
        with psycopg.connect(project.admin_dsn, autocommit=True) as conn:
            conn.execute("drop role caps_reader")


def test_a_drain_job_of_the_old_api_becomes_a_target_without_the_token_in_its_command(project):
    """0.1's schedule_drain_requests(url, every, headers) put the token in cron.job.command; the
    migration moves it into a drain target and schedules a command that names the target."""
    if missing_parts(PGMQ_NEWEST_VERSION):
        pytest.skip("needs pgmq " + PGMQ_NEWEST_VERSION + " as an extension (0.1 needs pgmq 1.5+)")
    use_pgmq(project, PGMQ_NEWEST_VERSION)
    with db.connect(project.admin_dsn) as conn:  # 0.1 on pgmq 1.5+, as a superuser: its own era
        apply_release_0_1(conn)
        conn.execute("select autoembed.schedule_drain_requests('https://worker.example/drain', '* * * * *', "
                     "'{\"Authorization\": \"Bearer old-token\"}'::jsonb)")
        conn.commit()
        assert "old-token" in conn.execute("select command from cron.job where jobname = %s", (JOB,)).fetchone()[0]
        apply_migrations(conn)
        assert conn.execute("select command from cron.job where jobname = %s", (JOB,)).fetchall() == [
            ("select autoembed.request_drain('default')",)]
        assert conn.execute("select name, url, token from autoembed.drain_targets").fetchall() == [
            ("default", "https://worker.example/drain", "old-token")]


def test_schedules_are_validated_against_the_pg_cron_version(served_conn):
    conn = served_conn
    version = conn.execute("select extversion from pg_extension where extname = 'pg_cron'").fetchone()[0]
    assert conn.execute("select autoembed.drain_schedule(' * * * * * ')").fetchone() == ("* * * * *",)
    for bad, message in [("every day", "is neither 'N seconds' nor a five-field cron expression"),
                         ("0 seconds", "a seconds schedule takes 1 to 59 seconds"),
                         ("90 seconds", "a seconds schedule takes 1 to 59 seconds")]:
        with pytest.raises(psycopg.Error, match=message):
            conn.execute("select autoembed.drain_schedule(%s)", (bad,))
    if tuple(int(p) for p in version.split("-")[0].split(".")) < (1, 5):
        with pytest.raises(psycopg.Error, match=f"pg_cron {version} schedules by the minute only"):
            conn.execute("select autoembed.drain_schedule('10 seconds')")
    else:
        assert conn.execute("select autoembed.drain_schedule('10 seconds')").fetchone() == ("10 seconds",)


def test_without_pg_cron_or_pg_net_the_drain_functions_refuse_clearly(project):
    with psycopg.connect(project.admin_dsn, autocommit=True) as conn:
        conn.execute("drop extension pg_cron")
        conn.execute("drop extension pg_net")
    with db.connect(project.postgres_dsn) as conn:
        apply_migrations(conn)
    with db.connect(project.postgres_dsn, autocommit=True) as conn:
        with pytest.raises(psycopg.Error, match="pg_cron is not installed in this database"):
            conn.execute("select autoembed.drain_schedule('* * * * *')")
        conn.execute("select autoembed.set_drain_target('default', 'http://127.0.0.1:9/drain', 'x')")
        with pytest.raises(psycopg.Error, match="request_drain needs pg_net, which is not installed"):
            conn.execute("select autoembed.request_drain()")
        caps = dict(conn.execute("select feature, detail from autoembed.capabilities()").fetchall())
    assert caps["pg_net"].startswith("not installed") and caps["pg_cron"].startswith("available but not enabled")


VAULT_STAND_IN = Path(__file__).resolve().parents[1] / "support" / "vault_stand_in.sql"


def test_where_vault_is_the_token_is_kept_there_and_request_drain_reads_it(served, served_conn, notes, drain_server):
    """Supabase projects have Vault (the profile has no pgsodium: a stand-in with its interface)."""
    conn, (url, token) = served_conn, drain_server
    conn.execute("select autoembed.set_drain_target('default', %s, 'registered before Vault')", (f"{url}/drain",))
    conn.execute(VAULT_STAND_IN.read_text())
    try:
        with db.connect(served.postgres_dsn) as migrating:  # the current definitions, applied again
            apply_migrations(migrating)
        secret = conn.execute("select d.token, s.decrypted_secret from autoembed.drain_targets d "
                              "join vault.decrypted_secrets s on s.id = d.vault_secret_id").fetchone()
        assert secret == (None, "registered before Vault")  # moved out of the table
        assert conn.execute("select available from autoembed.capabilities() where feature = 'vault'").fetchone() == (
            True,)

        conn.execute("insert into push_notes (body) values ('token from Vault')")
        request_id = conn.execute("select autoembed.request_drain('default')").fetchone()[0]
        assert wait_until(lambda: responses(conn, request_id), timeout=30, what="pg_net's response")[0] == 401
        conn.execute("select autoembed.set_drain_target('default', %s, %s)", (f"{url}/drain", token))
        assert conn.execute("select token from autoembed.drain_targets").fetchone() == (None,)
        request_id = conn.execute("select autoembed.request_drain('default')").fetchone()[0]
        status, answer = wait_until(lambda: responses(conn, request_id), timeout=30, what="pg_net's response")
        assert (status, answer["embedded"]) == (200, 1)
        assert conn.execute("select count(*) from vault.secrets").fetchone() == (1,)  # updated, not added
    finally:
        conn.execute("drop schema vault cascade")
