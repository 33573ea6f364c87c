#!/usr/bin/env bash
# Install what the database needs on Debian 12, as root: PostgreSQL 15 server + headers,
# pg_cron (Debian package) and pgvector built from Debian 13's source package.
# Idempotent: when everything is present it checks and exits within seconds.
set -euo pipefail

PG_MAJOR=15
PG_CONFIG=/usr/lib/postgresql/${PG_MAJOR}/bin/pg_config
# prometheus: its promtool checks deploy/prometheus/autoembed-rules.yml (tests/unit/test_dashboards.py)
PACKAGES=(postgresql-${PG_MAJOR} postgresql-server-dev-${PG_MAJOR} postgresql-${PG_MAJOR}-cron build-essential dpkg-dev prometheus)
TRIXIE_SOURCES=/etc/apt/sources.list.d/autoembed-trixie-src.sources
BUILD_DIR=${AUTOEMBED_BUILD_DIR:-/var/tmp/autoembed-build}

log() { printf 'setup-system: %s\n' "$*" >&2; }

if [ "$(id -u)" -ne 0 ]; then
    log "must run as root (installs Debian packages); re-run with sudo"
    exit 1
fi

missing=()
for pkg in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done

have_vector() { [ -f "$("$PG_CONFIG" --sharedir)/extension/vector.control" ]; }

if [ ${#missing[@]} -eq 0 ] && have_vector; then
    log "PostgreSQL ${PG_MAJOR}, pg_cron and pgvector already installed"
    exit 0
fi

export DEBIAN_FRONTEND=noninteractive
if [ ! -f "$TRIXIE_SOURCES" ]; then
    log "adding Debian 13 (trixie) source packages for pgvector"
    cat > "$TRIXIE_SOURCES" <<SRC
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
fi
log "apt-get update"
apt-get update -qq
if [ ${#missing[@]} -ne 0 ]; then
    log "installing ${missing[*]}"
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if ! have_vector; then
    log "building pgvector from Debian 13's source package"
    rm -rf "$BUILD_DIR" && mkdir -p "$BUILD_DIR" && cd "$BUILD_DIR"
    apt-get source -qq --download-only pgvector
    dpkg-source -x --no-check ./pgvector_*.dsc pgvector-src >/dev/null
    make -s -C pgvector-src PG_CONFIG="$PG_CONFIG" OPTFLAGS="" >/dev/null
    make -s -C pgvector-src PG_CONFIG="$PG_CONFIG" install >/dev/null
    have_vector || { log "pgvector build finished but vector.control is missing"; exit 1; }
fi
log "done: $("$PG_CONFIG" --version), pg_cron, pgvector $(sed -n "s/^default_version = '\(.*\)'/\1/p" "$("$PG_CONFIG" --sharedir)/extension/vector.control")"
