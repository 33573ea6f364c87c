"""Poison: job messages autoembed never writes, of every kind the worker must survive."""

from __future__ import annotations

import json

import psycopg


def deep(levels: int, inner: str = "1") -> str:
    """`inner` inside `levels` nested JSON arrays."""
    return "[" * levels + inner + "]" * levels


#: messages autoembed never writes, as JSON text (SOURCE stands for the watched table's source id)
POISON = {
    "nested 3,000 deep": '{"source_id": SOURCE, "pks": ["1"], "extra": ' + deep(3000) + "}",
    "keys nested 3,000 deep": '{"source_id": SOURCE, "pks": ' + deep(3000, '"1"') + "}",
    "a whole message nested 10,000 deep": deep(10000, '{"source_id": SOURCE, "pks": ["1"]}'),
    "a key of the wrong type (abc for bigint)": '{"source_id": SOURCE, "pks": ["abc"]}',
    "a key out of the key's range": '{"source_id": SOURCE, "pks": ["99999999999999999999"]}',
    "an empty key": '{"source_id": SOURCE, "pks": [""]}',
    "a key of 3,000 bytes": json.dumps({"source_id": 0, "pks": ["k" * 3000]}).replace("0", "SOURCE", 1),
    "source_id out of integer range": '{"source_id": 100000000000000000000, "pks": ["1"]}',
    "a negative source_id out of range": '{"source_id": -100000000000000000000, "pks": ["1"]}',
    "source_id just past int": '{"source_id": 2147483648, "pks": ["1"]}',
    "source_id a fraction": '{"source_id": 1.5, "pks": ["1"]}',
    "source_id a string": '{"source_id": "SOURCE", "pks": ["1"]}',
    "source_id true": '{"source_id": true, "pks": ["1"]}',
    "source_id null": '{"source_id": null, "pks": ["1"]}',
    "no source_id": '{"pks": ["1"]}',
    "an unknown source": '{"source_id": 987654, "pks": ["1"]}',
    "a string": '"just a string"',
    "a number": "42",
    "an array": '[{"source_id": SOURCE, "pks": ["1"]}]',
    "JSON null": "null",
    "an empty object": "{}",
    "5,000 keys": json.dumps({"source_id": 0, "pks": [str(i) for i in range(1, 5001)]}).replace("0", "SOURCE", 1),
    "no keys": '{"source_id": SOURCE, "pks": []}',
    "pks a string": '{"source_id": SOURCE, "pks": "1"}',
    "keys that are numbers": '{"source_id": SOURCE, "pks": [1, 2]}',
    "a null key": '{"source_id": SOURCE, "pks": [null]}',
    "a range backwards": '{"source_id": SOURCE, "pk_range": [5, 1]}',
    "a range of fractions": '{"source_id": SOURCE, "pk_range": [1.5, 2]}',
    "a range to 1e30": '{"source_id": SOURCE, "pk_range": [1, 1e30]}',
    "a range of strings": '{"source_id": SOURCE, "pk_range": ["1", "2"]}',
    "a range of three": '{"source_id": SOURCE, "pk_range": [1, 2, 3]}',
    "a range of 5,000 keys": '{"source_id": SOURCE, "pk_range": [1, 5000]}',
    "a range that is no list": '{"source_id": SOURCE, "pk_range": "1-2"}',
    "attempt a string": '{"source_id": SOURCE, "pks": ["1"], "attempt": "zz"}',
    "attempt negative": '{"source_id": SOURCE, "pks": ["1"], "attempt": -1}',
    "attempt huge": '{"source_id": SOURCE, "pks": ["1"], "attempt": 100000000000000000000}',
    "attempt a fraction": '{"source_id": SOURCE, "pks": ["1"], "attempt": 2.5}',
    "pk a number": '{"source_id": SOURCE, "pk": 1}',
}




def send(conn: psycopg.Connection, text: str, source_id: int | None = None) -> None:
    """Put the message `text` (JSON; SOURCE stands for `source_id`) in the job queue as it is."""
    if source_id is not None:
        text = text.replace("SOURCE", str(source_id))
    conn.execute("select pgmq.send('autoembed_jobs', %s::text::jsonb)", (text,))
