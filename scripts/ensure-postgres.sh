#!/usr/bin/env bash
# ensure-postgres.sh makes sure PostgreSQL's server binaries (initdb, pg_ctl,
# postgres), which make demo, make test and .ci/run need, are installed. When
# they are missing it installs Debian's (or Ubuntu's) postgresql package
# (apt-install.sh: as root directly, otherwise through sudo; where it
# cannot, it prints the one command to run and fails). As root it also creates the
# postgres OS user when missing: the server refuses to run as root, so the
# demo and the tests run it as that user.
set -euo pipefail

has_binaries() { [ -x "$1/initdb" ] && [ -x "$1/pg_ctl" ] && [ -x "$1/postgres" ]; }

# installed looks where the Go code (internal/pgcluster.BinDir) looks:
# PG_BINDIR, then /usr/lib/postgresql/*/bin, then $PATH.
installed() {
  if [ -n "${PG_BINDIR:-}" ]; then
    has_binaries "$PG_BINDIR"
    return
  fi
  local d
  for d in /usr/lib/postgresql/*/bin; do
    has_binaries "$d" && return 0
  done
  local initdb
  initdb=$(command -v initdb) && has_binaries "$(dirname "$initdb")"
}

ensure_user() {
  if [ "$(id -u)" = 0 ] && ! id postgres >/dev/null 2>&1; then
    echo "creating the postgres OS user the server runs as: useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres"
    useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
  fi
}

if installed; then
  ensure_user
  exit 0
fi
if [ -n "${PG_BINDIR:-}" ]; then
  echo "PG_BINDIR=$PG_BINDIR holds no initdb, pg_ctl and postgres: point it at the directory that does, or unset it." >&2
  exit 1
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "PostgreSQL's server binaries (initdb, pg_ctl, postgres) are not installed, and this is not Debian or Ubuntu:" >&2
  echo "install PostgreSQL's server with your system's package manager, or set PG_BINDIR to the directory of its binaries." >&2
  exit 1
fi
"$(dirname "$0")/apt-install.sh" postgresql "PostgreSQL's server binaries (initdb, pg_ctl, postgres)"
if ! installed; then
  echo "the postgresql package is installed but its server binaries are not in /usr/lib/postgresql/*/bin: set PG_BINDIR to their directory" >&2
  exit 1
fi
ensure_user
