"""Host actions for the example rules: a tiny CRM kept in the same SQLite database as the engine.

`whenthen demo` loads this file (any command that runs rules takes it with `--actions`). Each
action is a typed Python function; whenthen reads the annotations, so the rules that declare
these actions are checked against the same types.
"""

from __future__ import annotations

import os
import sqlite3
from typing import TypedDict


def _crm() -> sqlite3.Connection:
    # The demo's CRM lives beside the engine's tables in $WHENTHEN_DB (default whenthen.db).
    db = sqlite3.connect(os.environ.get("WHENTHEN_DB", "whenthen.db"))
    db.execute("CREATE TABLE IF NOT EXISTS crm_log (action TEXT, subject TEXT, detail TEXT)")
    return db


def _record(action: str, subject: str, detail: str) -> None:
    with _crm() as db:
        db.execute("INSERT INTO crm_log VALUES (?, ?, ?)", (action, subject, detail))


def set_status(guest_id: str, status: str) -> None:
    """Set a guest's registration status in the CRM."""
    _record("set_status", guest_id, status)


def assign_tags(track_id: str, tags: list[str]) -> None:
    """Tag a lead."""
    _record("assign_tags", track_id, ", ".join(tags))


def create_call(customer_id: str, phone: str, reason: str, priority: int = 3) -> None:
    """Put a callback in the sales team's queue."""
    _record("create_call", customer_id, f"{phone} p{priority}: {reason}")


class Form(TypedDict):
    id: str
    url: str


def create_form(template: str) -> Form:
    """Create a form from a template; returns its id and public URL."""
    form_id = f"{template}-{os.urandom(3).hex()}"
    _record("create_form", form_id, template)
    return {"id": form_id, "url": f"https://forms.example/{form_id}"}


def notify_manager(client_id: str, note: str) -> None:
    """Alert the account manager."""
    _record("notify_manager", client_id, note)


ACTIONS = [set_status, assign_tags, create_call, create_form, notify_manager]
