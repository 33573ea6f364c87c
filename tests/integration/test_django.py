"""The Django integration (autoembed.django) in a real Django project, made in the test: the seed's
`chat.Item` model (pgvector's VectorField, an HNSW cosine index) with a text column and
`null=True` on its vector, a migration declaring `Watch("chat.Item", content="content", ...)`,
`manage.py migrate` forwards and backwards, rows written through the ORM embedded by the worker,
and a nearest-neighbour query through the ORM. Skipped where Django is not installed."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import psycopg
import pytest

pytest.importorskip("django", reason="Django is not installed (pip install 'autoembed[django]')")

SETTINGS = """
SECRET_KEY = "autoembed-test"
INSTALLED_APPS = ["chat"]
DATABASES = {{"default": {{"ENGINE": "django.db.backends.postgresql", {database}}}}}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
"""
MANAGE = """
import os, sys
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "site_settings")
from django.core.management import execute_from_command_line
execute_from_command_line(sys.argv)
"""
# seed 001's model; what is new: the text to embed, and null=True (no vector until the worker writes it)
MODELS = """
from django.db import models
from pgvector.django import HnswIndex, VectorField


class Item(models.Model):
    content = models.TextField()
    embedding = VectorField(dimensions=3, editable=False, null=True)

    class Meta:
        indexes = [
            HnswIndex(name="item_embedding_hnsw_idx", fields=["embedding"], m=16, ef_construction=64,
                      opclasses=["vector_cosine_ops"]),
        ]
"""
WATCH = """
from django.db import migrations

from autoembed.django import Watch


class Migration(migrations.Migration):
    dependencies = [("chat", "0001_initial")]
    operations = [Watch("chat.Item", content="content", embedder="hashing", embedding_model="h3",
                        distance="cosine")]
"""
UNWATCH = """
from django.db import migrations

from autoembed.django import Unwatch


class Migration(migrations.Migration):
    dependencies = [("chat", "0002_watch")]
    operations = [Unwatch("chat.Item", content="content", embedder="hashing", embedding_model="h3",
                          distance="cosine")]
"""


@pytest.fixture
def make_project(tmp_path):
    """make_project(dsn): a Django project on that database with app `chat` (its 0001_initial made
    by `makemigrations`, then 0002_watch); returns a `manage.py` runner and the app's folder."""
    return lambda dsn: _project(dsn, tmp_path / "project")


@pytest.fixture
def project(make_project, dsn):
    """The project on this test's database (migrated for autoembed)."""
    return make_project(dsn)


def _project(dsn: str, tmp_path: Path):
    tmp_path.mkdir()
    params = psycopg.conninfo.conninfo_to_dict(dsn)
    database = ", ".join(f"{key!r}: {str(params[name])!r}" for key, name in
                         (("NAME", "dbname"), ("USER", "user"), ("HOST", "host"), ("PORT", "port")) if name in params)
    (tmp_path / "site_settings.py").write_text(SETTINGS.format(database=database))
    (tmp_path / "manage.py").write_text(MANAGE)
    app = tmp_path / "chat"
    (app / "migrations").mkdir(parents=True)
    (app / "__init__.py").write_text("")
    (app / "migrations" / "__init__.py").write_text("")
    (app / "models.py").write_text(MODELS)

    def manage(*args: str, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run([sys.executable, "manage.py", *args], cwd=tmp_path, capture_output=True, text=True,
                                timeout=120, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
        if check:
            assert result.returncode == 0, f"manage.py {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
        return result

    manage("makemigrations", "chat")  # 0001_initial, as the seed's project has it
    (app / "migrations" / "0002_watch.py").write_text(textwrap.dedent(WATCH))
    return manage, app


def registered(conn) -> list[tuple]:
    return conn.execute("select source::text, content_column, embedding_column, embedder, model, distance "
                        "from autoembed.sources").fetchall()


def drain(dsn: str, tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "autoembed.cli", "worker", "--drain"], check=True, timeout=120,
                   capture_output=True, env={**os.environ, "DATABASE_URL": dsn, "AUTOEMBED_HOME": str(tmp_path)})


def test_a_django_migration_watches_the_model_and_orm_rows_get_embedded(project, conn, dsn, tmp_path):
    manage, _app = project
    assert "select autoembed.watch(" in manage("sqlmigrate", "chat", "0002").stdout
    out = manage("migrate", "chat").stdout
    assert "Applying chat.0002_watch... OK" in out
    assert registered(conn) == [("chat_item", "content", "embedding", "hashing", "h3", "cosine")]
    manage("shell", "-c", "from chat.models import Item\n"
                          "for text in ('the cat sat on the mat', 'stock market news', 'a cat on a mat'):\n"
                          "    Item.objects.create(content=text)")
    drain(dsn, tmp_path)
    nearest = manage("shell", "-c", "from chat.models import Item\n"
                                    "from pgvector.django import CosineDistance\n"
                                    "probe = Item.objects.get(content='the cat sat on the mat').embedding\n"
                                    "qs = Item.objects.annotate(d=CosineDistance('embedding', probe)).order_by('d')\n"
                                    "print([item.content for item in qs[:1]], Item.objects.filter(embedding=None).count())")
    assert nearest.stdout.strip().splitlines()[-1] == "['the cat sat on the mat'] 0"  # after Django's own notes


def test_migrating_backwards_unwatches_and_forwards_again_rewatches(project, conn, dsn):
    manage, _app = project
    manage("migrate", "chat")
    conn.execute("insert into chat_item (content) values ('one'), ('two')")
    out = manage("migrate", "chat", "0001").stdout
    assert "Unapplying chat.0002_watch... OK" in out
    assert registered(conn) == []
    assert conn.execute("select count(*) from pg_trigger where tgrelid = 'chat_item'::regclass "
                        "and tgname like 'autoembed%'").fetchone() == (0,)
    assert conn.execute("select count(*) from autoembed.jobs").fetchone() == (0,)  # its pending jobs went
    manage("migrate", "chat")
    assert len(registered(conn)) == 1
    assert conn.execute("select count(*) from autoembed.jobs").fetchone() == (2,)  # backfilled again


def test_an_unwatch_migration_is_reversible_with_the_watch_it_undoes(project, conn):
    manage, app = project
    (app / "migrations" / "0003_unwatch.py").write_text(textwrap.dedent(UNWATCH))
    manage("migrate", "chat")
    assert registered(conn) == []
    manage("migrate", "chat", "0002")
    assert registered(conn) == [("chat_item", "content", "embedding", "hashing", "h3", "cosine")]


def test_a_database_without_autoembed_gets_told_to_migrate_it_first(make_project, empty_dsn):
    with psycopg.connect(empty_dsn, autocommit=True) as empty:
        empty.execute("create extension if not exists vector")  # the model's own migration needs it; autoembed is not there
    manage, _app = make_project(empty_dsn)
    result = manage("migrate", "chat", check=False)
    assert result.returncode != 0
    assert "autoembed is not installed in this database: run `autoembed migrate`" in result.stderr
