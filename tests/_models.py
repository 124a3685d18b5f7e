"""Schemas shared by the tests: the guest.added trigger in rules text, pydantic models for host triggers."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel

# The guest.added trigger most checker and console tests are written against.
GUEST_ADDED = """\
trigger guest.added {
  id: str
  first_name: str
  email: str
  category: 'VIP' | 'Visitor' | 'Press'
  company: str?
  age: int?
  tags: list[str]
  registered_at: datetime
  address: { city: str, zip: str? }
}
"""


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
