#!/bin/sh
# Regenerates v1-waiting.db with the whenthen on PATH (run from an activated venv).
# The committed file was written by the code of main at 6dac672 (store schema version 1),
# before the store became a package; regenerating it with newer code defeats its purpose.
set -eu
cd "$(dirname "$0")"
db=v1-waiting.db
rm -f "$db" "$db-wal" "$db-shm"
w() { whenthen --db "$db" --now "$@"; }
w 2026-11-20T10:00:00Z publish v1/schema.rules v1/first/rules.rules --author fixture --enable
w 2026-11-20T10:00:00Z emit order.placed '{"id": "A1", "email": "a1@example.com", "amount": 50}'
w 2026-11-20T10:01:00Z publish v1/schema.rules v1/final/rules.rules --author fixture
w 2026-11-20T10:05:00Z emit order.placed '{"id": "A2", "email": "a2@example.com", "amount": 0}'
w 2026-11-20T10:10:00Z emit payment.received '{"order_id": "A1", "amount": 50}'
w 2026-11-20T10:30:00Z worker --once
w 2026-11-20T11:00:00Z worker --once
python3 - "$db" <<'PY'
import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
c.execute("PRAGMA journal_mode=DELETE")  # one self-contained file, no -wal/-shm
c.close()
PY
rm -f "$db-wal" "$db-shm"
