"""Trigger declarations in rules text shared by tests and benchmarks (bench/ puts tests/ on its
path): no imports, so a benchmark needs nothing more than whenthen."""

# The guest.added trigger most checker and console tests, and bench/check.py, filters.py and
# lsp.py, are written against.
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
