"""Pure functions: the retry policy, job grouping, settings from the environment."""

from __future__ import annotations

import pytest

from autoembed.errors import ConfigError
from autoembed.jobs import Job, group_jobs, parse_job
from autoembed.retry import retry_delay
from autoembed.settings import Settings


@pytest.mark.parametrize("attempt, retry_after, expected", [
    (1, None, 2), (2, None, 4), (3, None, 8), (9, None, 300),  # doubles, capped at 300
    (1, 30.0, 30), (5, 1.0, 32),                                # Retry-After wins only when longer
])
def test_retry_delay_doubles_is_capped_and_honours_retry_after(attempt, retry_after, expected):
    assert retry_delay(attempt, base=2.0, cap=300.0, retry_after=retry_after) == expected


def test_retry_delay_is_never_zero():
    assert retry_delay(1, base=0.1, cap=0.2) == 1


def test_group_jobs_collapses_duplicates_per_row_and_keeps_the_highest_attempt():
    jobs = [Job(1, 1, 7, ("a", "c")), Job(2, 3, 7, ("b",)), Job(3, 2, 7, ("a",)), Job(4, 1, 8, ("a",))]
    grouped = group_jobs(jobs)
    assert list(grouped) == [7, 8]
    assert list(grouped[7]) == ["a", "c", "b"]
    assert grouped[7]["a"].msg_ids == [1, 3] and grouped[7]["a"].attempt == 2
    assert grouped[7]["c"].msg_ids == [1] and grouped[7]["c"].attempt == 1
    assert grouped[8]["a"].msg_ids == [4]


@pytest.mark.parametrize("body, expected", [
    ({"source_id": 3, "pks": ["1", "2"]}, Job(9, 2, 3, ("1", "2"))),
    ({"source_id": 3, "pks": ["1"], "attempt": 4}, Job(9, 6, 3, ("1",))),   # attempts made before a requeue
    ({"source_id": 3, "pk": "7"}, Job(9, 2, 3, ("7",))),                   # the one-row shape of 0.1
    ({"source_id": 3, "pk_range": [-1, 2], "attempt": 1}, Job(9, 3, 3, ("-1", "0", "1", "2"))),
    ({"source_id": 3, "pk_range": [2**63 - 1, 2**63 - 1]}, Job(9, 2, 3, (str(2**63 - 1),))),
    ({"source_id": 3, "pk_range": [5, 4]}, None), ({"source_id": 3, "pk_range": [1, 2**63]}, None),
    ({"source_id": 3, "pk_range": [1.0, 2]}, None), ({"source_id": 3, "pk_range": [1, 2, 3]}, None),
    ({"source_id": 3, "pk_range": ["1", "2"]}, None), ({"source_id": True, "pks": ["1"]}, None),
    ({"source_id": "3", "pks": ["1"]}, None), ({"source_id": 3, "pks": []}, None),
    ({"source_id": 3, "pks": [1]}, None), ({"source_id": 3}, None), (["not", "a", "job"], None),
    ({"source_id": 3, "pks": ["1"], "attempt": "2"}, None),
])
def test_parse_job_reads_every_message_shape_and_rejects_anything_else(body, expected):
    assert parse_job(9, 2, body) == expected


def test_settings_read_the_environment_and_flags_override():
    settings = Settings.from_env({"DATABASE_URL": "postgresql://x/y", "AUTOEMBED_BATCH_SIZE": "250",
                                  "AUTOEMBED_LISTEN": "off", "OPENAI_API_KEY": "sk-secret"})
    assert (settings.database_url, settings.batch_size, settings.listen) == ("postgresql://x/y", 250, False)
    assert "sk-secret" not in repr(settings)
    assert settings.replace(batch_size=10, listen=None).batch_size == 10
    assert settings.replace(listen=None).listen is False  # an absent flag keeps the environment's value


@pytest.mark.parametrize("env, message", [
    ({"AUTOEMBED_BATCH_SIZE": "many"}, "AUTOEMBED_BATCH_SIZE must be a whole number, got 'many'"),
    ({"AUTOEMBED_POLL_INTERVAL": "soon"}, "AUTOEMBED_POLL_INTERVAL must be a number, got 'soon'"),
    ({"AUTOEMBED_LISTEN": "maybe"}, "AUTOEMBED_LISTEN must be true or false, got 'maybe'"),
    ({"AUTOEMBED_BATCH_SIZE": "0"}, "batch size must be at least 1, got 0"),
    ({"AUTOEMBED_LOCAL_BACKEND": "cuda"}, "local backend must be torch, onnx or onnx-int8, got 'cuda'"),
])
def test_bad_settings_are_named_in_the_error(env, message):
    with pytest.raises(ConfigError, match=message):
        Settings.from_env(env)
