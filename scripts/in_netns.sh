#!/usr/bin/env bash
# Runs inside `unshare -n` (see test.sh): loopback up, a throwaway PostgreSQL, pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
ip link set lo up 2>/dev/null || true

PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
PGDIR=$(mktemp -d /tmp/posture-pg.XXXXXX)
PGPORT=${POSTURE_TEST_PG_PORT:-55432}
cleanup() {
  if [ -n "${PGBIN:-}" ] && [ -f "$PGDIR/data/postmaster.pid" ]; then
    run_pg "$PGBIN/pg_ctl" -D "$PGDIR/data" -m immediate stop >/dev/null 2>&1 || true
  fi
  rm -rf "$PGDIR"
}
trap cleanup EXIT
run_pg() {
  if [ "$(id -u)" = 0 ]; then su postgres -s /bin/sh -c "$(printf '%q ' "$@")"; else "$@"; fi
}
if [ -z "${POSTURE_TEST_PG_URL:-}" ] && [ -n "$PGBIN" ]; then
  [ "$(id -u)" = 0 ] && chown postgres "$PGDIR"
  # Host connections need a real password (the tests check a wrong one is refused);
  # the superuser sets things up over the private socket directory.
  run_pg "$PGBIN/initdb" -D "$PGDIR/data" -U postgres --auth-local=trust --auth-host=scram-sha-256 --no-sync >/dev/null
  run_pg "$PGBIN/pg_ctl" -D "$PGDIR/data" -w -l "$PGDIR/log" \
    -o "-c listen_addresses=127.0.0.1 -p $PGPORT -k $PGDIR -c fsync=off -c full_page_writes=off" start >/dev/null
  run_pg "$PGBIN/psql" -h "$PGDIR" -p "$PGPORT" -U postgres -qc \
    "CREATE ROLE posture LOGIN PASSWORD 'posture' CREATEDB" >/dev/null
  export POSTURE_TEST_PG_URL="postgresql+psycopg://posture:posture@127.0.0.1:$PGPORT/postgres"
fi
.venv/bin/pytest "$@"
