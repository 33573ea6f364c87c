"""The Supabase profile (tests/support/supabase.py) for the tests of this folder: one cluster per
session, skipped with the reason when this machine lacks its parts."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.supabase import SupabaseDatabase, missing_parts, start_supabase_cluster


@pytest.fixture(scope="session")
def supabase_db() -> Iterator[SupabaseDatabase]:
    """A Supabase-faithful cluster; its database `postgres` is the one pg_cron and pg_net serve."""
    missing = missing_parts()
    if missing:
        pytest.skip("Supabase profile unavailable: missing " + "; ".join(missing))
    directory = Path(tempfile.mkdtemp(prefix="autoembed-supabase-"))
    os.environ.setdefault("AUTOEMBED_DEV_DB_FSYNC", "off")
    profile = start_supabase_cluster(directory)
    try:
        yield profile
    finally:
        profile.stop()
        shutil.rmtree(directory, ignore_errors=True)
