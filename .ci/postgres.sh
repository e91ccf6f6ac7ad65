#!/usr/bin/env bash
# Start a throw-away PostgreSQL cluster on 127.0.0.1 (Debian's `postgresql` binaries) and print the SQLAlchemy URL
# of its maintenance database. The tests create one fresh database per test on it and drop it afterwards.
#   url=$(.ci/postgres.sh start)      .ci/postgres.sh stop
# The server refuses to run as root, so as root it runs as the `postgres` user.
set -euo pipefail
PORT="${STUDIO_TEST_PG_PORT:-5433}"
DATA="${STUDIO_TEST_PG_DATA:-/tmp/studio-test-pg}"
PGBIN="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)"
[ -n "$PGBIN" ] || { echo "PostgreSQL is not installed (apt-get install postgresql)" >&2; exit 2; }
as_owner() { if [ "$(id -u)" = 0 ]; then su postgres -s /bin/sh -c "$*"; else sh -c "$*"; fi; }

case "${1:-start}" in
  start)
    if [ ! -f "$DATA/PG_VERSION" ]; then
      mkdir -p "$DATA"
      [ "$(id -u)" = 0 ] && chown postgres "$DATA"
      as_owner "'$PGBIN/initdb' -D '$DATA' -A trust -U studio --no-sync" >/dev/null
    fi
    as_owner "'$PGBIN/pg_ctl' -D '$DATA' -l '$DATA/server.log' -w -o \"-c listen_addresses=127.0.0.1 -p $PORT \
      -c unix_socket_directories='$DATA' -c fsync=off -c synchronous_commit=off -c max_connections=200\" start" \
      >/dev/null
    echo "postgresql+psycopg://studio@127.0.0.1:$PORT/postgres"
    ;;
  stop)
    as_owner "'$PGBIN/pg_ctl' -D '$DATA' -m immediate stop" >/dev/null || true
    rm -rf "$DATA"
    ;;
esac
