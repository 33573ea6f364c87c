"""Migration operations that watch and unwatch a model's table through autoembed's SQL API
(autoembed.watch / autoembed.unwatch), so a Django project declares its embeddings next to its
models and `manage.py migrate` (forwards and backwards) keeps them in step:

    from autoembed.django import Watch

    class Migration(migrations.Migration):
        dependencies = [("chat", "0001_initial")]
        operations = [Watch("chat.Item", content="content", embedder="openai",
                            embedding_model="text-embedding-3-small")]

`content` and `embedding_column` take a field name (its column is used) or, for `content`, the name
of a SQL function of the table's rows. `embedding_model` is autoembed.watch's `model`; the other
options are autoembed.watch's own. autoembed itself must be installed in the database first
(`autoembed migrate`); the embedding column must accept NULL (`VectorField(..., null=True)`): a row
has no vector until the worker writes it.
"""

from __future__ import annotations

from django.core.exceptions import FieldDoesNotExist
from django.db.migrations.exceptions import IrreversibleError
from django.db.migrations.operations.base import Operation

#: autoembed.watch's optional arguments, by the name an operation takes them
WATCH_OPTIONS = {"embedding_column": "embedding_column", "embedder": "embedder", "embedding_model": "model",
                 "distance": "distance", "max_attempts": "max_attempts", "clear_on_change": "clear_on_change",
                 "backfill": "backfill", "chunks": "chunks", "chunk_tokens": "chunk_tokens",
                 "chunk_overlap": "chunk_overlap", "chunk_index": "chunk_index", "query_prompt": "query_prompt",
                 "passage_prompt": "passage_prompt", "index": "index"}
NOT_INSTALLED = ("autoembed is not installed in this database: run `autoembed migrate` (as the database owner) "
                 "before `manage.py migrate`")


class Watch(Operation):
    """Watch a model's table (autoembed.watch); reversed, unwatch it."""

    reversible = True
    reduces_to_sql = True

    def __init__(self, model: str, content: str | None = None, **options):
        unknown = sorted(set(options) - set(WATCH_OPTIONS))
        if unknown:
            raise TypeError(f"{type(self).__name__}() got unknown options {', '.join(unknown)}; "
                            f"autoembed.watch takes {', '.join(WATCH_OPTIONS)}")
        self.model = model
        self.content = content
        self.options = options

    def deconstruct(self):
        """How the operation is written into a migration file."""
        return type(self).__name__, [self.model], {"content": self.content, **self.options}

    def state_forwards(self, app_label, state):
        """Models are unchanged: a watch lives in the database only."""

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        """Watch the table."""
        self._watch(schema_editor, to_state)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        """Unwatch the table."""
        self._unwatch(schema_editor, to_state)

    def describe(self):
        """What `manage.py migrate` prints for it."""
        return f"Watch {self.model} with autoembed (content: {self.content})"

    @property
    def migration_name_fragment(self):
        """The name `makemigrations` would give a migration holding it."""
        return f"autoembed_watch_{self.model.rsplit('.', 1)[-1].lower()}"

    # -- the SQL ---------------------------------------------------------------------------------------
    def _watch(self, schema_editor, state) -> None:
        model = state.apps.get_model(self.model)
        if not self._applies(schema_editor, model):
            return
        if self.content is None:
            raise IrreversibleError(f"{type(self).__name__}({self.model!r}) names no content: it cannot watch the table again")
        options = dict(self.options)
        if "embedding_column" in options:
            options["embedding_column"] = _column(model, options["embedding_column"])
        named = "".join(f", {WATCH_OPTIONS[name]} => %s" for name in options)
        schema_editor.execute(f"select autoembed.watch(%s::regclass, %s{named})",
                              [_table(schema_editor, model), _column(model, self.content), *options.values()])

    def _unwatch(self, schema_editor, state) -> None:
        model = state.apps.get_model(self.model)
        if self._applies(schema_editor, model):
            schema_editor.execute("select autoembed.unwatch(%s::regclass)", [_table(schema_editor, model)])

    def _applies(self, schema_editor, model) -> bool:
        """Whether to run on this database (a router may exclude the model); there, autoembed must
        be installed (not checked when `sqlmigrate` only collects the SQL)."""
        connection = schema_editor.connection
        if not self.allow_migrate_model(connection.alias, model):
            return False
        if connection.vendor != "postgresql":
            raise RuntimeError(f"autoembed works on PostgreSQL only, not on {connection.vendor}")
        if not schema_editor.collect_sql:
            with connection.cursor() as cursor:
                cursor.execute("select to_regprocedure('autoembed.unwatch(regclass)') is not null")
                if not cursor.fetchone()[0]:
                    raise RuntimeError(NOT_INSTALLED)
        return True


class Unwatch(Watch):
    """Unwatch a model's table (autoembed.unwatch). Reversible when it names the watch it undoes
    (`content` and the options of its Watch): reversed, it watches the table again with them."""

    @property
    def reversible(self):
        """Only with the watch to restore."""
        return self.content is not None

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        """Unwatch the table."""
        self._unwatch(schema_editor, from_state)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        """Watch the table again, as the Watch this undoes did."""
        self._watch(schema_editor, to_state)

    def describe(self):
        """What `manage.py migrate` prints for it."""
        return f"Unwatch {self.model} (autoembed)"

    @property
    def migration_name_fragment(self):
        """The name `makemigrations` would give a migration holding it."""
        return f"autoembed_unwatch_{self.model.rsplit('.', 1)[-1].lower()}"


def _table(schema_editor, model) -> str:
    """The model's table, quoted, as autoembed.watch's regclass argument."""
    return schema_editor.quote_name(model._meta.db_table)


def _column(model, name: str) -> str:
    """The column of the model's field `name`, or `name` itself (a column or SQL function name)."""
    try:
        return model._meta.get_field(name).column
    except FieldDoesNotExist:  # a SQL function, or a column no field maps
        return name
