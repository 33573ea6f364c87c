"""AUTOEMBED_INDEX_MAINTENANCE_WORK_MEM and AUTOEMBED_INDEX_PARALLEL_WORKERS: how the worker builds
the vector index a watch wants."""

from __future__ import annotations

import os

import pytest

from autoembed.errors import ConfigError
from autoembed.settings import Settings


def test_defaults_and_the_environment():
    default = Settings.from_env({})
    assert default.index_maintenance_work_mem == "512MB"
    assert default.index_parallel_workers == max(0, len(os.sched_getaffinity(0)) - 1)
    chosen = Settings.from_env({"AUTOEMBED_INDEX_MAINTENANCE_WORK_MEM": " 2GB ", "AUTOEMBED_INDEX_PARALLEL_WORKERS": "0"})
    assert (chosen.index_maintenance_work_mem, chosen.index_parallel_workers) == ("2GB", 0)


@pytest.mark.parametrize(("env", "message"), [
    ({"AUTOEMBED_INDEX_MAINTENANCE_WORK_MEM": "lots"}, "AUTOEMBED_INDEX_MAINTENANCE_WORK_MEM must be an amount of memory"),
    ({"AUTOEMBED_INDEX_MAINTENANCE_WORK_MEM": "512 MB; reset all"}, "e.g. 512MB or 2GB, got '512 MB; reset all'"),
    ({"AUTOEMBED_INDEX_PARALLEL_WORKERS": "-1"}, "AUTOEMBED_INDEX_PARALLEL_WORKERS must be 0 or more, got -1"),
    ({"AUTOEMBED_INDEX_PARALLEL_WORKERS": "two"}, "AUTOEMBED_INDEX_PARALLEL_WORKERS must be a whole number"),
])
def test_bad_values_are_named_in_the_error(env, message):
    with pytest.raises(ConfigError, match=message):
        Settings.from_env(env)
