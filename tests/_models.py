"""Schemas shared by the tests: the guest.added trigger in rules text (tests/_schemas.py), pydantic
models for host triggers."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel

from _schemas import GUEST_ADDED  # noqa: F401  (re-exported: tests import it from here)


class Address(BaseModel):
    city: str
    zip: str | None = None


class Order(BaseModel):
    id: str
    total: float
    status: str
    tags: list[str]
    ship_to: Address
    placed_at: dt.datetime
