"""What the CLI says about an error (autoembed.hints): one `autoembed:` prefix, and the command or
GRANT that fixes an unmigrated database or a missing privilege. The real command's output:
tests/acceptance/test_cli.py."""

from __future__ import annotations

import psycopg
import pytest
from psycopg import errors

from autoembed import hints
from autoembed.errors import ConfigError


@pytest.mark.parametrize("text, shown", [
    ("autoembed: table notes is not watched", "table notes is not watched"),
    ("autoembed.watch: 'nope' is neither a column of notes", "'nope' is neither a column of notes"),
    ("autoembed: autoembed: twice", "autoembed: twice"),  # stripped once, in one place
    ("batch size must be at least 1, got 0", "batch size must be at least 1, got 0"),
])
def test_the_sql_apis_own_prefix_is_dropped_once(text, shown):
    assert hints.message(ConfigError(text)) == shown


@pytest.mark.parametrize("error", [
    errors.UndefinedTable('relation "autoembed.status" does not exist'),
    errors.InvalidSchemaName('schema "pgmq" does not exist'),
    errors.UndefinedFunction("function autoembed.search(regclass, vector, integer) does not exist"),
    psycopg.ProgrammingError("vector type not found in the database"),
])
def test_an_unmigrated_database_is_answered_with_migrate(error):
    assert hints.hint(error, "status", None) == hints.MIGRATE


def test_a_users_own_missing_table_gets_no_migrate_hint():
    assert hints.hint(errors.UndefinedTable('relation "notes" does not exist'), "search", None) is None


@pytest.mark.parametrize("command, dsn, advice", [
    ("worker", "postgresql://embedder@db/app", "grant autoembed_worker to embedder;  -- run it as the database owner, then try again"),
    ("search", "user=Web-App host=db", 'grant autoembed_search to "Web-App";  -- run it as the database owner, then try again'),
    ("watch", "postgresql://app@db/app", "`autoembed watch` runs as the database owner (the role that ran `autoembed migrate`), not as app"),
])
def test_a_missing_privilege_is_answered_with_the_grant_for_the_command(command, dsn, advice):
    assert hints.hint(errors.InsufficientPrivilege("permission denied for schema autoembed"), command, dsn) == advice
