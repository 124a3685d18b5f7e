"""Pydantic models shared by the tests of host triggers and `schema=` arguments."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel


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
