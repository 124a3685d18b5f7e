#!/bin/sh
# Regenerates v2-waiting.pg.sql: the same history as generate.sh, written into an empty PostgreSQL
# database by the whenthen on PATH, then dumped as plain SQL (INSERTs, so a driver can replay it
# without psql). The committed file was written by main at e2b9c8a (store schema version 2, the
# first PostgreSQL store); regenerating it with newer code defeats its purpose.
# Usage: generate-pg.sh postgresql://postgres@127.0.0.1:5432/empty_database
set -eu
cd "$(dirname "$0")"
db="$1"
w() { whenthen --db "$db" --now "$@"; }
w 2026-11-20T10:00:00Z publish v1/schema.rules v1/first/rules.rules --author fixture --enable
w 2026-11-20T10:00:00Z emit order.placed '{"id": "A1", "email": "a1@example.com", "amount": 50}'
w 2026-11-20T10:01:00Z publish v1/schema.rules v1/final/rules.rules --author fixture
w 2026-11-20T10:05:00Z emit order.placed '{"id": "A2", "email": "a2@example.com", "amount": 0}'
w 2026-11-20T10:10:00Z emit payment.received '{"order_id": "A1", "amount": 50}'
w 2026-11-20T10:30:00Z worker --once
w 2026-11-20T11:00:00Z worker --once
# psql's \restrict guard lines are not SQL: dropped so psycopg can run the script
pg_dump --dbname "$db" --inserts --no-owner --no-privileges --no-comments | sed '/^\\\(un\)\?restrict /d' \
  > v2-waiting.pg.sql
