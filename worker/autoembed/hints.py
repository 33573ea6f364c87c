"""What the `autoembed` command says about an error: one line naming the problem (a leading
`autoembed: ` or `autoembed.<function>: ` of the SQL API's messages dropped, since the command
puts its own), and a hint with the command or GRANT that fixes an unmigrated database or a
missing privilege."""

from __future__ import annotations

import getpass
import re

import psycopg
from psycopg import errors

_PREFIX = re.compile(r"^autoembed(?:\.\w+)?: ")
#: errors of a database autoembed is not installed in (or an older version of it is)
_MISSING = (errors.UndefinedTable, errors.UndefinedFunction, errors.InvalidSchemaName, errors.UndefinedObject)
#: the role a command's login needs, beside the owner's (who runs migrate, watch, ...)
_ROLE_OF_COMMAND = {"worker": "autoembed_worker", "serve": "autoembed_worker", "search": "autoembed_search"}
MIGRATE = "run `autoembed migrate` (as the database owner) to install or upgrade autoembed in this database"


def message(exc: BaseException) -> str:
    """The error's first line, without a leading `autoembed: ` / `autoembed.<function>: `."""
    if isinstance(exc, psycopg.Error) and exc.diag.message_primary:
        text = exc.diag.message_primary
    else:
        text = str(exc).strip() or type(exc).__name__
    return _PREFIX.sub("", text, count=1)


def hint(exc: BaseException, command: str | None, dsn: str | None) -> str | None:
    """What to do about `exc`, raised by `command` connected with `dsn`: the migrate command, the
    GRANT to run, the database's own hint, or None."""
    text = str(exc)
    if isinstance(exc, _MISSING) and ("autoembed" in text or "pgmq" in text) or "vector type not found" in text:
        return MIGRATE
    if isinstance(exc, errors.InsufficientPrivilege):
        role = _ROLE_OF_COMMAND.get(command or "")
        login = _login(dsn)
        if role is None:
            return f"`autoembed {command}` runs as the database owner (the role that ran `autoembed migrate`), not as {login}"
        return f"grant {role} to {login};  -- run it as the database owner, then try again"
    if isinstance(exc, psycopg.Error) and exc.diag.message_hint:
        return exc.diag.message_hint
    return None


def _login(dsn: str | None) -> str:
    """The role a DSN logs in as (without one: the operating-system user), quoted for SQL."""
    try:
        user = psycopg.conninfo.conninfo_to_dict(dsn or "").get("user")
    except psycopg.ProgrammingError:
        user = None
    name = user or getpass.getuser()
    return name if re.fullmatch(r"[a-z_][a-z0-9_$]*", name) else '"' + name.replace('"', '""') + '"'
