"""The SQL files themselves: released migrations are frozen, supabase/migrations is generated."""

from __future__ import annotations

from pathlib import Path

from autoembed.migrate import SQL_ROOT, migration_files
from autoembed.supabase_migrations import render_folder

REPO = Path(__file__).resolve().parents[2]
DB = Path(str(SQL_ROOT))
SUPABASE_MIGRATIONS = REPO / "supabase" / "migrations"


def frozen() -> dict[str, str]:
    """path under db/ -> sha256, from db/frozen.txt."""
    lines = (DB / "frozen.txt").read_text(encoding="utf-8").splitlines()
    pairs = [line.split() for line in lines if line.strip() and not line.startswith("#")]
    return {path: digest for digest, path in pairs}


def test_released_migrations_are_unchanged():
    import hashlib

    listed = frozen()
    assert "migrations/20261123000001_autoembed_core.sql" in listed
    edited = [path for path, digest in listed.items()
              if hashlib.sha256((DB / path).read_bytes()).hexdigest() != digest]
    assert not edited, f"released migrations are frozen; add a new migration instead of editing {edited}"


def test_the_seven_migrations_of_0_1_are_kept():
    """Installs of 0.1 go on from wherever they are: its files stay, under their names."""
    names = [m.name for m in migration_files()]
    assert [n for n in names if n.startswith("202611230000") and n != "20261123000000_baseline.sql"] == [
        "20261123000001_autoembed_core.sql", "20261123000002_worker_role.sql", "20261123000003_http_drain.sql",
        "20261123000004_chunked_jobs.sql", "20261123000005_search_role.sql",
        "20261123000006_key_ranges_and_key_changes.sql", "20261123000007_records_only_for_existing_keys.sql"]


def test_supabase_folder_is_generated_and_current():
    rendered = render_folder()
    present = {p.name: p.read_text(encoding="utf-8") for p in SUPABASE_MIGRATIONS.glob("*.sql")}
    stale = sorted(name for name in rendered if present.get(name) != rendered[name])
    assert not stale, f"run scripts/sync-supabase-migrations.sh: stale {stale}"
    unknown = sorted(set(present) - set(rendered) - {Path(p).name for p in frozen() if p.startswith("supabase/")})
    assert not unknown, f"files in supabase/migrations that nothing generates: {unknown}"


def test_definitions_file_sorts_after_every_migration():
    """The Supabase CLI applies files by version: the release's definitions must come after its
    migrations (a view or SQL function over a column a later migration adds would fail)."""
    from autoembed.supabase_migrations import DEFINITIONS_VERSION

    latest = max(m.name[:14] for m in migration_files())
    assert DEFINITIONS_VERSION > latest, f"bump DEFINITIONS_VERSION past {latest}"


def test_supabase_folder_keeps_every_version_0_1_shipped():
    """A project that pushed 0.1's folder finds every version of its ledger here (else the CLI stops
    with 'Remote migration versions not found in local migrations directory')."""
    versions = {p.name[:14] for p in SUPABASE_MIGRATIONS.glob("*.sql")}
    assert {f"2026112300000{i}" for i in range(1, 8)} <= versions
    assert "20261123000000" not in versions  # the baseline runs inside the first file, not before it
