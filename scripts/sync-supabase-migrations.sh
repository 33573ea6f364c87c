#!/usr/bin/env bash
# Regenerate supabase/migrations from the package's SQL (worker/autoembed/db, linked as db/):
# one guarded file per migration and one file of current definitions per release. Never edit
# those files by hand; tests/migrations/test_supabase_folder.py fails when they are stale.
set -euo pipefail
repo_root=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
python=${PYTHON:-$repo_root/.venv/bin/python}
exec "$python" -c 'import sys
from pathlib import Path
from autoembed.supabase_migrations import write_folder
for path in write_folder(Path(sys.argv[1])):
    print(f"wrote {path}")' "$repo_root/supabase/migrations"
