#!/usr/bin/env bash
# Copy the canonical migrations db/migrations/*.sql into supabase/migrations/ byte for byte, and
# remove .sql files there that no longer exist in db/migrations, so the Supabase CLI
# (`supabase db reset`, `supabase db push`) applies exactly what `autoembed migrate` applies.
# Idempotent: a second run changes nothing.
#
# usage: scripts/sync-supabase-migrations.sh [--check] [SRC_DIR DEST_DIR]
#   --check   change nothing; list the differences and exit 1 if there are any
#   SRC_DIR   defaults to <repo>/db/migrations
#   DEST_DIR  defaults to <repo>/supabase/migrations
set -euo pipefail
shopt -s nullglob

usage() { sed -n '7,10p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

check=0
if [ "${1:-}" = "--check" ]; then
    check=1
    shift
fi
case $# in
    0)
        repo_root=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
        src="$repo_root/db/migrations"
        dest="$repo_root/supabase/migrations"
        ;;
    2) src=$1; dest=$2 ;;
    *) usage ;;
esac

log() { printf 'sync-supabase-migrations: %s\n' "$*" >&2; }

if [ ! -d "$src" ]; then
    log "no such directory: $src"
    exit 1
fi
if [ "$check" -eq 0 ]; then
    mkdir -p -- "$dest"
fi

changes=0

# Copy new and changed migrations.
for path in "$src"/*.sql; do
    name=$(basename -- "$path")
    target="$dest/$name"
    if [ -f "$target" ] && cmp -s -- "$path" "$target"; then
        continue
    fi
    changes=$((changes + 1))
    if [ "$check" -eq 1 ]; then
        if [ -e "$target" ]; then log "differs: $name"; else log "missing: $name"; fi
    else
        # Copy to a temporary name first, so a failed copy never leaves a truncated migration.
        cp -- "$path" "$target.tmp.$$"
        mv -f -- "$target.tmp.$$" "$target"
        log "copied $name"
    fi
done

# Remove migrations that are gone from the canonical folder.
if [ -d "$dest" ]; then
    for path in "$dest"/*.sql; do
        name=$(basename -- "$path")
        if [ -e "$src/$name" ]; then
            continue
        fi
        changes=$((changes + 1))
        if [ "$check" -eq 1 ]; then
            log "stale: $name"
        else
            rm -f -- "$path"
            log "removed stale $name"
        fi
    done
fi

if [ "$check" -eq 1 ]; then
    if [ "$changes" -gt 0 ]; then
        log "$changes difference(s) between $src and $dest; run scripts/sync-supabase-migrations.sh"
        exit 1
    fi
    log "in sync"
elif [ "$changes" -eq 0 ]; then
    log "already in sync"
fi
