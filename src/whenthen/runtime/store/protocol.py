"""The store interface the engine talks to, grouped by concern; the row type and the errors.

Every backend (`sqlite.py`, `postgres.py`) implements `Store`. Times shown to people are ISO 8601
text; deadlines and leases are epoch seconds. Every write that advances a run is fenced by the
run's `fence` counter read when it was claimed and raises `LeaseLost` when another worker has
claimed the run since.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from whenthen.diagnostics import WhenthenError

# (kind, clause, trigger, field, value): one registration of a waiting run in the wait index
WaitEntry = tuple[str, int, str, "str | None", "str | None"]
# (trigger, data, depth, at): an event a run emits, committed with its activation
EmitEntry = tuple[str, str, int, str]


class StoreError(WhenthenError):
    """The database cannot be opened or is not a whenthen database."""


class StoreUnavailable(StoreError):
    """The database server went away, or aborted a transaction (a deadlock): nothing of that
    transaction was committed, and trying again later may work (a worker waits and retries)."""


class LeaseLost(WhenthenError):
    """Another worker claimed this run (or event) since we did: stop advancing it."""


@dataclass
class RunRow:
    id: int
    rule: str
    version: int
    event_id: int | None
    status: str
    frame: bytes | None
    deadline: float | None
    resume_event: int | None
    depth: int
    fence: int
    activation: int
    damaged: str | None = None  # the snapshot failed its checksum (then `frame` is None): why


class SchemaVersions(Protocol):
    """The schema version a database records, and upgrading it (schema.py's migrations)."""

    def schema_version(self) -> int:
        """The schema version the database records (cheap: `/readyz` calls it)."""

    def upgrade(self) -> tuple[int, int]:
        """Bring the database to this whenthen's schema in one transaction; (from, to)."""


class Transactions(Protocol):
    """How writes are grouped into commits."""

    shared: bool  # other processes may write to the same database (a long dispatch pauses for them)

    def close(self) -> None: ...

    def batch(self) -> AbstractContextManager[None]:
        """One commit for the writes inside (one event's dispatch, one resumed run)."""

    def group(self) -> AbstractContextManager[None]:
        """One transaction for several batches (`Engine.ingest`)."""

    def commit_now(self) -> None:
        """Inside a batch, make what is written durable now (before an action's effect)."""

    def wait_for_work(self, timeout: float, stop: Callable[[], bool] | None = None) -> None:
        """An idle worker's pause: at most `timeout` seconds, less when the backend learns of new
        work sooner (PostgreSQL's LISTEN/NOTIFY; SQLite just sleeps), or once `stop()` is true
        (checked at least every half second)."""


class RulesAndVersions(Protocol):
    """Rules, their stored versions, declarations and the `uses` index.

    `version()` verifies the bytecode's checksum: its `damaged` is None, or why the version must
    not be loaded. Likewise runs read with a damaged or foreign snapshot come with `frame` None
    and `damaged` set, and journal rows with a damaged result with `damaged` set."""

    def generation(self) -> int: ...
    def bump_generation(self) -> None: ...
    def rule(self, name: str) -> dict[str, Any] | None: ...
    def rules(self) -> list[dict[str, Any]]: ...
    def version(self, rule: str, version: int) -> dict[str, Any] | None: ...
    def versions(self, rule: str) -> list[dict[str, Any]]: ...
    def add_version(self, rule: str, source: str, bytecode: bytes, hash_: str, author: str | None,
                    at: str, trigger: str, state_if_new: str) -> int: ...
    def set_state(self, rule: str, state: str) -> None: ...
    def active_versions(self) -> list[tuple[str, int, str, bytes]]: ...
    def save_uses(self, rule: str, version: int, uses: list[tuple[str, str]]) -> None: ...
    def version_uses(self, rule: str, version: int) -> list[tuple[str, str]]: ...
    def uses(self, trigger: str) -> list[dict[str, Any]]: ...
    def save_decl(self, kind: str, name: str, body: Any) -> None: ...
    def decls(self, kind: str) -> dict[str, Any]: ...


class EventQueue(Protocol):
    """Events: recorded, claimed under a lease, finished once."""

    def insert_event(self, trigger: str | None, data: str, at: str, status: str, *, error: str | None = None,
                     depth: int = 0, origin: str = "external", parent_run: int | None = None,
                     owner: str | None = None, lease_expires: float | None = None) -> int: ...
    def open_event(self, trigger: str, data: str, at: str, origin: str, owner: str, lease_expires: float) -> int: ...
    def claim_next_event(self, owner: str, wall_now: float, lease_expires: float
                         ) -> tuple[int, str, str, str, int] | None: ...
    def claim_event(self, event_id: int, owner: str, wall_now: float, lease_expires: float) -> bool: ...
    def reject_event(self, event_id: int, error: str) -> None: ...
    def finish_event(self, event_id: int, owner: str, filtered: dict[tuple[str, int], int],
                     seen: tuple[str, str] | None = None,
                     unstarted: dict[tuple[str, int], int] | None = None) -> bool: ...
    def has_claimable_event(self, wall_now: float) -> bool: ...
    def event(self, event_id: int) -> dict[str, Any] | None: ...
    def events(self, status: str | None = None) -> list[dict[str, Any]]: ...
    def accept_event(self, trigger: str, data: str, at: str, *, idempotency_key: str | None = None,
                     wall_now: float = 0.0, key_ttl: float = 86400.0) -> tuple[int, bool]:
        """Record a validated event `pending`, and its idempotency key in the same transaction;
        (id, duplicate): a key younger than `key_ttl` returns its first event and records nothing."""
    def events_page(self, status: str | None = None, before: int | None = None, limit: int = 50
                    ) -> list[dict[str, Any]]:
        """Events newest first, ids below `before` (keyset paging)."""


class RunsAndSnapshots(Protocol):
    """Runs, their frame snapshots, leases and fences, the wait index."""

    def get_run(self, run_id: int) -> RunRow | None: ...
    def create_run(self, rule: str, version: int, event_id: int | None, frame: bytes, deadline: float,
                   depth: int, at: str, owner: str, lease_expires: float,
                   exits: list[WaitEntry] = ()) -> RunRow | None: ...
    def store_new_run(self, rule: str, version: int, event_id: int | None, depth: int, *, status: str,
                      frame: bytes | None, deadline: float | None, wait_trigger: str | None,
                      waits: list[WaitEntry], steps: list[dict[str, Any]], at: str,
                      emits: list[EmitEntry]) -> tuple[RunRow, list[int]] | None: ...
    def has_due_run(self, now: float, wall_now: float) -> bool: ...
    def claim_next_due_run(self, now: float, wall_now: float, owner: str, lease_expires: float) -> RunRow | None: ...
    def next_deadline(self) -> float | None: ...
    def claim_run(self, run: RunRow, owner: str, wall_now: float, lease_expires: float,
                  resume_event: int | None = None) -> RunRow | None: ...
    def commit_activation(self, run: RunRow, *, status: str, frame: bytes | None, deadline: float | None,
                          wait_trigger: str | None, waits: list[WaitEntry], steps: list[dict[str, Any]],
                          error: str | None, at: str, emits: list[EmitEntry]) -> list[int]: ...
    def defer_run(self, run: RunRow, deadline: float, at: str) -> None: ...
    def exit_run(self, run_id: int, at: str, steps: list[dict[str, Any]]) -> bool: ...
    def wait_candidates(self, kind: str, trigger: str, field_value: dict[str, str | None]) -> list[tuple[int, int]]: ...
    def dispatch_candidates(self, trigger: str, key_of: Callable[[str], str | None]
                            ) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]: ...
    def wait_fields(self, kind: str, trigger: str) -> list[str]: ...
    def runs(self, rule: str | None = None, status: str | None = None, limit: int | None = None,
             run_id: int | None = None) -> list[dict]: ...
    def runs_page(self, rule: str | None = None, status: str | None = None, before: int | None = None,
                  limit: int = 50) -> list[dict]:
        """Runs newest first, ids below `before` (keyset paging, never OFFSET)."""
    def steps(self, run_id: int) -> list[dict[str, Any]]: ...
    def run_of_event(self, rule: str, event_id: int) -> dict[str, Any] | None:
        """The run of `rule` whose start event is `event_id` (as `runs` shows it), or None: one
        lookup in the `(event_id, rule)` unique index, never a scan of the runs (`explain`)."""


class Journal(Protocol):
    """The action journal (intent, then result, under one idempotency key) and the outbox."""

    def journal_get(self, run_id: int, step: int) -> list[dict[str, Any]]: ...
    def journal_intent(self, run: RunRow, lease_expires: float, pending_steps: list[dict[str, Any]],
                       row: dict[str, Any]) -> None: ...
    def journal_result(self, run: RunRow, idem_key: str, status: str, result: bytes | None, error: str | None,
                       outbox: tuple[str, str, str] | None = None) -> None: ...
    def outbox(self) -> list[dict[str, Any]]: ...


class Schedules(Protocol):
    """Schedule slots: each fired once, however many workers run."""

    def schedule_slots(self) -> dict[str, float]: ...
    def arm_schedule(self, rule: str, at: float) -> None: ...
    def rewind_schedule(self, rule: str, at: float) -> bool: ...
    def claim_schedule_slot(self, rule: str, slot: float, trigger: str, data: str, at: str, owner: str,
                            lease_expires: float) -> int | None: ...
    def schedule_rule(self, event_id: int) -> str | None: ...


class Counters(Protocol):
    """Run counts, filtered counts and the active sets counting triggers count against."""

    def run_counts(self) -> dict[str, dict[str, int]]: ...
    def filtered_by_version(self) -> dict[tuple[str, int], int]: ...
    def filtered_counts(self) -> dict[str, int]: ...
    def unstarted_counts(self) -> dict[str, int]: ...
    def run_gauges(self, now: float) -> tuple[int, int, float | None]:
        """(runs waiting, runs due by `now` not yet resumed, the earliest due deadline)."""
    def save_active_set(self, set_id: str, members: list[tuple[str, int]]) -> None: ...
    def entry(self, rule: str, key: str) -> tuple[float, int] | None:
        """The last start (epoch, run id) of `rule` for an entry-limit key: a key lookup (SPEC 2.11)."""
    def record_entry(self, rule: str, key: str, started: float, run_id: int) -> None: ...
    def add_counts(self, column: str, counts: dict[tuple[str, int], int]) -> None:
        """Add to `limited` (2.11) or `counted` (2.10) per (rule, version)."""
    def policy_counts(self) -> dict[str, dict[str, int]]:
        """Per rule: {"limited": n, "counted": n} over its versions."""
    def count_branches(self, rule: str, version: int, taken: list[tuple[int, int, int]]) -> None:
        """One more run for each (split, branch, share) a run took (SPEC 2.13)."""
    def branch_counts(self) -> list[tuple[str, int, int, int, int, int]]:
        """(rule, version, split, branch, share, runs), ordered."""
    def split_steps(self, run_ids: list[int]) -> dict[int, list[dict[str, Any]]]:
        """Per run, its split choices ({split, case, share}) in step order."""


class Bulk(Protocol):
    """Whole tables out and in (`db copy`), in schema.TABLES' columns and order."""

    def is_empty(self) -> bool:
        """No row in any table but `meta`: a database `db copy` may write into."""

    def snapshot(self) -> AbstractContextManager[None]:
        """One consistent read of the whole database for the exports inside (writers go on)."""

    def export_rows(self, table: str) -> Iterator[tuple[Any, ...]]:
        """Every row of `table`, blobs as bytes, in schema.TABLES order."""

    def import_rows(self, table: str, rows: Iterable[tuple[Any, ...]]) -> int:
        """Insert exported rows as they are (ids included); inside a `batch`. Returns how many."""


class Store(SchemaVersions, Bulk, Transactions, RulesAndVersions, EventQueue, RunsAndSnapshots, Journal, Schedules, Counters, Protocol):
    """Everything the engine needs from a database."""

    path: str
    read_only: bool  # opened by a command that only reads: every write raises StoreError
    upgraded_from: int | None  # the schema version opening it upgraded from (0: it was created)
