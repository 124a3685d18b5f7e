"""Checksums of stored blobs (bytecode, run snapshots, journaled results), bound to their owner.

Each sum covers the blob and the identity of the row it belongs to (a version's rule and number,
a run's id, a journal row's idempotency key), so a damaged blob, and an intact blob copied into
another row, both fail verification. SHA-256, truncated to 128 bits: this guards against
damage and misplaced rows, not against someone who can write the database (they could
recompute any sum); SHA-256 is in every hashlib and PostgreSQL (`sha256()`), and faster than
BLAKE2b on this hardware (SHA extensions; docs/engine.md "Checksums").
"""

from __future__ import annotations

import hashlib


def _sum(kind: bytes, owner: str, blob: bytes) -> str:
    owner_bytes = owner.encode("utf-8", "surrogatepass")
    # length-prefixed, so no (owner, blob) pair can be read as another
    return hashlib.sha256(b"whenthen:%s:%d:%s" % (kind, len(owner_bytes), owner_bytes) + bytes(blob)).hexdigest()[:32]


def version_sum(rule: str, version: int, bytecode: bytes) -> str:
    """The sum stored with version `version` of `rule`."""
    return _sum(b"version", f"{version}:{rule}", bytecode)


def frame_sum(run_id: int, frame: bytes) -> str:
    """The sum stored with run `run_id`'s snapshot."""
    return _sum(b"frame", str(run_id), frame)


def result_sum(idem_key: str, result: bytes) -> str:
    """The sum stored with the journaled result of the attempt keyed `idem_key`."""
    return _sum(b"result", idem_key, result)


def frame_damage(run_id: int, frame: bytes | None, stored: str | None) -> str | None:
    """Why run `run_id`'s snapshot must not be used, or None when it matches its sum."""
    if frame is None or (stored is not None and frame_sum(run_id, frame) == stored):
        return None
    return (f"the snapshot of run {run_id} does not match its checksum (damaged, or copied from another run); "
            "the run cannot continue")


def version_damage(rule: str, version: int, bytecode: bytes, stored: str | None) -> str | None:
    """Why a version's bytecode must not be loaded, or None when it matches its sum."""
    if stored is not None and version_sum(rule, version, bytecode) == stored:
        return None
    return f"version {version} of rule '{rule}' is unloadable: its stored bytecode does not match its checksum"


def result_damage(idem_key: str, result: bytes | None, stored: str | None) -> str | None:
    """Why a journaled result must not be replayed, or None when it matches its sum."""
    if result is None or (stored is not None and result_sum(idem_key, result) == stored):
        return None
    return f"the journaled result of action attempt {idem_key} does not match its checksum (damaged)"
