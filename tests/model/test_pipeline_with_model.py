"""The whole pipeline with the real all-MiniLM-L6-v2 (ONNX Runtime), as an application sees it."""

from __future__ import annotations

import numpy as np
import pytest
from support import drain

from autoembed.embedders import EmbedderCache, build_embedder
from autoembed.api import search

pytestmark = pytest.mark.model

MODEL = "sentence-transformers/all-MiniLM-L6-v2"
ROWS = [
    ("A loaf of sourdough needs flour, water, salt and a lively starter; bake it in a hot oven.", "bread"),
    ("Replace a flat bicycle tyre by removing the wheel and fitting a new inner tube.", "bike"),
    ("Estimated quarterly income tax payments are due four times a year for freelancers.", "tax"),
    ("The central bank raised interest rates to fight inflation.", "economy"),
    ("잘 익은 김치와 돼지고기를 볶은 뒤 두부를 넣어 김치찌개를 끓인다.", "korean-food"),
    ("서울 지하철은 교통카드로 타고 노선도를 보며 환승한다. 🚇", "korean-subway"),
]


@pytest.fixture
def model_settings(settings, tmp_path_factory):
    return settings.replace(cache_dir=tmp_path_factory.getbasetemp() / "model-cache")


def test_inserted_rows_get_model_embeddings_and_search_finds_the_right_one(conn, dsn, model_settings):
    conn.execute("create table docs (id bigint generated always as identity primary key, topic text, body text, "
                 "embedding vector(384))")
    conn.execute("create index on docs using hnsw (embedding vector_cosine_ops)")
    conn.execute("select autoembed.watch('docs', 'body', model => %s)", (MODEL,))
    with conn.cursor() as cur:
        cur.executemany("insert into docs (body, topic) values (%s, %s)", ROWS)
    embedders = EmbedderCache(model_settings)
    drain(dsn, model_settings, embedders)

    stored = conn.execute("select body, embedding from docs order by id").fetchall()
    assert [body for body, _ in stored] == [body for body, _ in ROWS]  # Korean and emoji intact
    model = build_embedder("local", MODEL, 384, model_settings)
    for body, vector in stored:
        assert vector is not None
        np.testing.assert_allclose(vector.to_numpy(), model.embed([body])[0], atol=1e-4)

    hits = search(conn, "docs", "How do I make bread at home?", k=2, settings=model_settings, embedders=embedders)
    topic = conn.execute("select topic from docs where id = %s", (int(hits[0].pk),)).fetchone()[0]
    assert topic == "bread" and hits[0].distance < hits[1].distance

    hits = search(conn, "docs", "What did the bank do about inflation?", k=1, settings=model_settings, embedders=embedders)
    assert conn.execute("select topic from docs where id = %s", (int(hits[0].pk),)).fetchone()[0] == "economy"

    korean = search(conn, "docs", "김치찌개 끓이는 방법", k=1, settings=model_settings, embedders=embedders)
    assert korean[0].content == ROWS[4][0]  # the Korean row comes back byte for byte
