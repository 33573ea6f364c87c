"""`autoembed demo`: the whole pipeline on a sample table, in English and Korean."""

from __future__ import annotations

from importlib.resources import files

import click

from autoembed.api import search
from autoembed.connections import connect
from autoembed.demo_korean import available as korean_available, run_korean_demo
from autoembed.settings import Settings
from autoembed.worker import run_worker

SAMPLES = [
    ("Sourdough basics", "Mix flour, water and salt with an active starter, fold, proof overnight and bake hot."),
    ("Changing a bike tyre", "Release the brake, open the quick release, lever the tyre off and fit the new tube."),
    ("Quarterly taxes", "Freelancers pay estimated income tax four times a year to avoid penalties."),
    ("Houseplant care", "Water succulents sparingly and give them bright, indirect light."),
    ("김치찌개 끓이는 법", "잘 익은 김치와 돼지고기를 볶은 뒤 물을 붓고 두부를 넣어 끓인다."),
    ("서울 지하철 이용", "교통카드를 찍고 개찰구를 통과한 뒤 노선도를 보고 환승한다."),
]
QUERY = "How do I bake bread at home?"


def run_demo(settings: Settings, dsn: str) -> None:
    """(Re)create and watch demo_documents, insert samples, drain the queue, show status and a search."""
    with connect(dsn, autocommit=True) as conn:
        conn.execute(files("autoembed").joinpath("sql", "demo.sql").read_text(encoding="utf-8"))
        conn.execute("select autoembed.watch('public.demo_documents', 'body')")
        with conn.cursor() as cur:
            cur.executemany("insert into public.demo_documents (title, body) values (%s, %s)", SAMPLES)
        click.echo(f"inserted {len(SAMPLES)} rows into demo_documents; running the worker until the queue is empty")
    run_worker(settings, dsn, drain=True)
    with connect(dsn, autocommit=True) as conn:
        rows = conn.execute(
            "select id, title, embedding is not null, vector_dims(embedding) from public.demo_documents order by id"
        ).fetchall()
        click.echo("\n  id  embedded  dims  title")
        for row_id, title, embedded, dims in rows:
            click.echo(f"  {row_id:>2}  {'yes' if embedded else 'no':<8}  {dims or '-':>4}  {title}")
        hits = search(conn, "public.demo_documents", QUERY, k=1, settings=settings)
        click.echo(f"\nsearch {QUERY!r}:")
        for hit in hits:
            click.echo(f"  id {hit.pk}  distance {hit.distance:.3f}  {hit.content}")
    if korean_available():  # the `korean` extra: long Korean documents, chunked, found by a paraphrase
        run_korean_demo(settings, dsn)
