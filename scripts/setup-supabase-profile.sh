#!/usr/bin/env bash
# Install what the Supabase-faithful database profile needs on Debian 12, as root, beside what
# scripts/setup-system.sh installs (run that first: PostgreSQL 15 headers, build tools and the
# Debian 13 deb-src line):
#   - pg_net 0.14.0, built from ../shared/vendor/pg_net-0.14.0 with libcurl4-openssl-dev;
#   - pg_cron 1.6.5, built from ../shared/vendor/pg_cron-1.6.5 or else Debian 13's source package,
#     replacing Debian 12's postgresql-15-cron (1.4, which refuses '10 seconds' schedules); where
#     neither source can be had, 1.4 stays and a warning says so;
#   - pgmq as an extension in two versions: 1.4.4 from ../shared/vendor/pgmq-1.4.4 (what Supabase's
#     Postgres 15 images ship) and the newest SQL of the PyPI package `pgmq` (pinned below), which
#     is the default: a bare `create extension pgmq` gets the newest, `version '1.4.4'` Supabase's;
#   - plpgsql_check (Debian package), which `supabase db lint` runs;
#   - chromium (Debian package), the headless browser the status page's test looks through;
#   - the Supabase CLI from npm, pinned, under /opt/autoembed/supabase-cli.
# Idempotent: when everything is in place it only checks, well within a second (while pg_cron's
# source is unreachable it tries apt-get source again, a second more). Without the vendor folder
# the parts it holds (pg_net, pgmq 1.4.4) are skipped with a message, not an error.
set -euo pipefail

PG_MAJOR=15
PG_CONFIG=/usr/lib/postgresql/${PG_MAJOR}/bin/pg_config
REPO_ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
VENDOR_DIR=${AUTOEMBED_VENDOR_DIR:-$REPO_ROOT/../shared/vendor}
BUILD_DIR=${AUTOEMBED_BUILD_DIR:-/var/tmp/autoembed-build}/supabase-profile
PACKAGES=(libcurl4-openssl-dev postgresql-${PG_MAJOR}-plpgsql-check chromium)
PG_NET_VERSION=0.14.0
PG_CRON_VERSION=1.6.5
PG_CRON_EXTVERSION=1.6
PGMQ_SUPABASE_VERSION=1.4.4
PGMQ_PYPI_VERSION=1.1.4   # the PyPI client whose bundled SQL is pgmq ${PGMQ_NEWEST_VERSION}
PGMQ_NEWEST_VERSION=1.13.0
SUPABASE_CLI_VERSION=2.117.0
SUPABASE_CLI_DIR=${AUTOEMBED_SUPABASE_CLI_DIR:-/opt/autoembed/supabase-cli}

log() { printf 'setup-supabase-profile: %s\n' "$*" >&2; }

if [ "$(id -u)" -ne 0 ]; then
    log "must run as root (installs Debian packages and PostgreSQL extensions); re-run with sudo"
    exit 1
fi
if [ ! -x "$PG_CONFIG" ]; then
    log "$PG_CONFIG is missing: run scripts/setup-system.sh first"
    exit 1
fi
SHAREDIR=$("$PG_CONFIG" --sharedir)/extension
PKGLIBDIR=$("$PG_CONFIG" --pkglibdir)

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
default_version() { sed -n "s/^default_version = '\(.*\)'/\1/p" "$SHAREDIR/$1.control" 2>/dev/null; }
have_vendor() { [ -d "$VENDOR_DIR/pg_net-$PG_NET_VERSION" ] && [ -d "$VENDOR_DIR/pgmq-$PGMQ_SUPABASE_VERSION" ]; }
have_packages() { local p; for p in "${PACKAGES[@]}"; do installed "$p" || return 1; done; }
have_pg_cron() { [ "$(default_version pg_cron)" = "$PG_CRON_EXTVERSION" ] && ! installed postgresql-${PG_MAJOR}-cron; }
have_pg_net() { [ "$(default_version pg_net)" = "$PG_NET_VERSION" ] && [ -f "$PKGLIBDIR/pg_net.so" ]; }
have_pgmq() {
    [ "$(default_version pgmq)" = "$PGMQ_NEWEST_VERSION" ] &&
        [ -f "$SHAREDIR/pgmq--$PGMQ_SUPABASE_VERSION.sql" ] && [ -f "$SHAREDIR/pgmq--$PGMQ_NEWEST_VERSION.sql" ]
}
have_cli() { grep -qs "\"version\": \"$SUPABASE_CLI_VERSION\"" "$SUPABASE_CLI_DIR/node_modules/supabase/package.json"; }

export DEBIAN_FRONTEND=noninteractive
mkdir -p "$BUILD_DIR"

if ! have_packages; then
    log "installing ${PACKAGES[*]}"
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >/dev/null
fi

# pg_cron's source: ../shared/vendor/pg_cron-1.6.5 where it is there, else Debian 13's source package.
# Where neither can be had, Debian 12's pg_cron 1.4 stays (no '10 seconds' schedules) with a warning.
fetch_pg_cron_source() {
    if [ -d "$VENDOR_DIR/pg_cron-$PG_CRON_VERSION" ]; then
        cp -r "$VENDOR_DIR/pg_cron-$PG_CRON_VERSION" src && chmod -R u+w src
        return
    fi
    apt-get source -qq --download-only pg-cron >/dev/null 2>&1 || return 1
    local dsc
    dsc=$(ls ./pg-cron_"$PG_CRON_VERSION"-*.dsc 2>/dev/null) || return 1
    dpkg-source -x --no-check "$dsc" src >/dev/null
}

if ! have_pg_cron; then
    rm -rf "$BUILD_DIR/pg_cron" && mkdir -p "$BUILD_DIR/pg_cron" && cd "$BUILD_DIR/pg_cron"
    if fetch_pg_cron_source; then
        log "building pg_cron $PG_CRON_VERSION"
        make -s -C src PG_CONFIG="$PG_CONFIG" >/dev/null
        make -s -C src PG_CONFIG="$PG_CONFIG" DESTDIR="$BUILD_DIR/pg_cron/stage" install >/dev/null
        # Remove Debian's 1.4 package right before copying 1.6.5 in, so that no server starting in
        # between finds no pg_cron library to preload.
        if installed postgresql-${PG_MAJOR}-cron; then
            dpkg --remove postgresql-${PG_MAJOR}-cron >/dev/null 2>&1
        fi
        cp -a "$BUILD_DIR/pg_cron/stage/." /
        have_pg_cron || { log "pg_cron build finished but pg_cron.control is not $PG_CRON_EXTVERSION"; exit 1; }
    else
        log "WARNING: pg_cron $PG_CRON_VERSION's source is neither in $VENDOR_DIR/pg_cron-$PG_CRON_VERSION nor" \
            "downloadable with apt-get source pg-cron; pg_cron stays at $(default_version pg_cron)"
    fi
fi

if have_vendor && ! have_pg_net; then
    log "building pg_net $PG_NET_VERSION from $VENDOR_DIR"
    rm -rf "$BUILD_DIR/pg_net" && cp -r "$VENDOR_DIR/pg_net-$PG_NET_VERSION" "$BUILD_DIR/pg_net"
    chmod -R u+w "$BUILD_DIR/pg_net"
    make -s -C "$BUILD_DIR/pg_net" PG_CONFIG="$PG_CONFIG" >/dev/null
    make -s -C "$BUILD_DIR/pg_net" PG_CONFIG="$PG_CONFIG" install >/dev/null
    have_pg_net || { log "pg_net build finished but pg_net.control is not $PG_NET_VERSION"; exit 1; }
fi

if have_vendor && ! have_pgmq; then
    log "installing pgmq $PGMQ_SUPABASE_VERSION (vendor) and $PGMQ_NEWEST_VERSION (PyPI pgmq==$PGMQ_PYPI_VERSION) as extension versions"
    rm -rf "$BUILD_DIR/pgmq" && mkdir -p "$BUILD_DIR/pgmq" && cd "$BUILD_DIR/pgmq"
    python3 -m venv pip-venv
    pip-venv/bin/pip download --no-deps --only-binary=:all: "pgmq==$PGMQ_PYPI_VERSION" -d wheel > pip.log 2>&1 ||
        { cat pip.log >&2; exit 1; }
    pip-venv/bin/python - wheel/pgmq-*.whl "$PGMQ_NEWEST_VERSION" <<'PY'
import sys, zipfile
wheel, expected = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z:
    pinned = [line.strip() for line in z.read("pgmq/sql/VERSION").decode().splitlines()
              if line.strip() and not line.startswith("#")][0]
    if pinned != expected:
        sys.exit(f"{wheel} bundles pgmq {pinned}, not {expected}")
    open("pgmq-newest.sql", "wb").write(z.read("pgmq/sql/pgmq.sql"))
PY
    vendor_pgmq="$VENDOR_DIR/pgmq-$PGMQ_SUPABASE_VERSION"
    sed "s/^default_version = .*/default_version = '$PGMQ_NEWEST_VERSION'/" "$vendor_pgmq/pgmq.control" > pgmq.control
    install -m 644 "$vendor_pgmq/sql/pgmq.sql" "$SHAREDIR/pgmq--$PGMQ_SUPABASE_VERSION.sql"
    install -m 644 pgmq-newest.sql "$SHAREDIR/pgmq--$PGMQ_NEWEST_VERSION.sql"
    install -m 644 pgmq.control "$SHAREDIR/pgmq.control"
    have_pgmq || { log "pgmq files were copied but pgmq.control is not $PGMQ_NEWEST_VERSION"; exit 1; }
fi

if ! have_cli; then
    log "installing the Supabase CLI $SUPABASE_CLI_VERSION (npm) into $SUPABASE_CLI_DIR"
    mkdir -p "$SUPABASE_CLI_DIR"
    npm install --prefix "$SUPABASE_CLI_DIR" --no-audit --no-fund --loglevel=error "supabase@$SUPABASE_CLI_VERSION" >/dev/null
    have_cli || { log "npm finished but $SUPABASE_CLI_DIR has no supabase $SUPABASE_CLI_VERSION"; exit 1; }
fi

have_vendor || log "no vendor folder at $VENDOR_DIR: pg_net and pgmq $PGMQ_SUPABASE_VERSION are not installed"
log "ready: pg_cron $(default_version pg_cron), plpgsql_check, chromium, Supabase CLI $SUPABASE_CLI_VERSION$(have_vendor && echo ", pg_net $(default_version pg_net), pgmq $PGMQ_SUPABASE_VERSION + $(default_version pgmq) (default)")"
