"""The schema of a whenthen database: its version and the tables (SQLite dialect)."""

from __future__ import annotations

SCHEMA_VERSION = 1

_TABLES = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS rules (
  name TEXT PRIMARY KEY, state TEXT NOT NULL, version INTEGER NOT NULL, trigger TEXT NOT NULL,
  created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS versions (
  rule TEXT NOT NULL, version INTEGER NOT NULL, source TEXT NOT NULL, bytecode BLOB NOT NULL,
  hash TEXT NOT NULL, author TEXT, created_at TEXT NOT NULL, trigger TEXT NOT NULL,
  PRIMARY KEY (rule, version));
CREATE TABLE IF NOT EXISTS uses (
  rule TEXT NOT NULL, version INTEGER NOT NULL, trigger TEXT NOT NULL, how TEXT NOT NULL,
  PRIMARY KEY (rule, version, trigger, how));
CREATE TABLE IF NOT EXISTS decls (kind TEXT NOT NULL, name TEXT NOT NULL, body TEXT NOT NULL,
  PRIMARY KEY (kind, name));
CREATE TABLE IF NOT EXISTS events (
  id INTEGER PRIMARY KEY, trigger TEXT, data TEXT, at TEXT NOT NULL, status TEXT NOT NULL,
  error TEXT, depth INTEGER NOT NULL DEFAULT 0, origin TEXT NOT NULL DEFAULT 'external',
  parent_run INTEGER, lease_owner TEXT, lease_expires REAL);
CREATE INDEX IF NOT EXISTS events_status_page ON events (status, id);
CREATE TABLE IF NOT EXISTS idempotency_keys (
  key TEXT PRIMARY KEY, event_id INTEGER NOT NULL, created REAL NOT NULL);
CREATE INDEX IF NOT EXISTS events_pending ON events (status) WHERE status IN ('pending', 'processing');
CREATE TABLE IF NOT EXISTS runs (
  id INTEGER PRIMARY KEY, rule TEXT NOT NULL, version INTEGER NOT NULL, event_id INTEGER,
  status TEXT NOT NULL, frame BLOB, deadline REAL, wait_trigger TEXT, resume_event INTEGER,
  depth INTEGER NOT NULL DEFAULT 0, started_at TEXT NOT NULL, updated_at TEXT NOT NULL,
  error TEXT, lease_owner TEXT, lease_expires REAL, fence INTEGER NOT NULL DEFAULT 0,
  activation INTEGER NOT NULL DEFAULT 0, UNIQUE (event_id, rule));
CREATE INDEX IF NOT EXISTS runs_due ON runs (deadline, id) WHERE status IN ('running', 'waiting');
CREATE INDEX IF NOT EXISTS runs_rule ON runs (rule, status);
CREATE INDEX IF NOT EXISTS runs_rule_page ON runs (rule, id);
CREATE INDEX IF NOT EXISTS runs_status_page ON runs (status, id);
CREATE TABLE IF NOT EXISTS steps (
  run_id INTEGER NOT NULL, activation INTEGER NOT NULL, ordinal INTEGER NOT NULL,
  attempt INTEGER NOT NULL DEFAULT 0, at TEXT NOT NULL, kind TEXT NOT NULL, action TEXT,
  step INTEGER, idem_key TEXT UNIQUE, status TEXT, args TEXT, result BLOB, error TEXT, data TEXT,
  PRIMARY KEY (run_id, activation, ordinal, attempt));
CREATE INDEX IF NOT EXISTS steps_action ON steps (run_id, step) WHERE step IS NOT NULL;
CREATE TABLE IF NOT EXISTS waits (
  run_id INTEGER NOT NULL, kind TEXT NOT NULL, clause INTEGER NOT NULL, trigger TEXT NOT NULL,
  field TEXT, value TEXT);
CREATE INDEX IF NOT EXISTS waits_lookup ON waits (trigger, kind, field, value);
CREATE INDEX IF NOT EXISTS waits_run ON waits (run_id);
CREATE TABLE IF NOT EXISTS wait_fields (trigger TEXT NOT NULL, kind TEXT NOT NULL, field TEXT NOT NULL,
  PRIMARY KEY (trigger, kind, field));
CREATE TABLE IF NOT EXISTS counters (rule TEXT NOT NULL, version INTEGER NOT NULL,
  filtered INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (rule, version));
CREATE TABLE IF NOT EXISTS active_sets (set_id TEXT NOT NULL, rule TEXT NOT NULL, version INTEGER NOT NULL,
  PRIMARY KEY (set_id, rule, version));
CREATE TABLE IF NOT EXISTS trigger_seen (trigger TEXT NOT NULL, set_id TEXT NOT NULL,
  n INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (trigger, set_id));
CREATE TABLE IF NOT EXISTS outbox (
  id INTEGER PRIMARY KEY, run_id INTEGER, action TEXT NOT NULL, args TEXT NOT NULL,
  idem_key TEXT UNIQUE, created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS schedules (
  rule TEXT PRIMARY KEY, last_slot REAL NOT NULL, event_id INTEGER);
"""
