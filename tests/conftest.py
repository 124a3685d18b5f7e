"""Shared fixtures of the test suite: the conformance cases, and databases of both backends."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from _paths import conformance_dir


# -- the shared conformance cases (tests/_paths.py finds them; missing ones fail loudly) ----------
@pytest.fixture(scope="session")
def conformance() -> Path:
    return conformance_dir()


# -- PostgreSQL: $WHENTHEN_TEST_PG (a server URL), else a throwaway cluster of our own ------------
@pytest.fixture(scope="session")
def pg_server() -> Iterator[object]:
    """Fresh PostgreSQL databases for the session (tests/_pg.py). No server: skipped with the
    reason, or a failure under WHENTHEN_REQUIRE_PG=1."""
    import _pg

    cluster = None
    url = os.environ.get("WHENTHEN_TEST_PG")
    try:
        if not url:
            cluster = _pg.Cluster()
            url = cluster.url
        server = _pg.Server(url, cluster)
    except Exception as exc:  # no binaries, no psycopg, a server that will not start
        if cluster is not None:
            cluster.destroy()
        _pg.unavailable(f"{type(exc).__name__}: {exc}")
    yield server
    server.close()
    if cluster is not None:
        cluster.destroy()


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    """Each test that uses it runs once per backend."""
    return request.param


@pytest.fixture
def new_db(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Callable[[str], str]]:
    """`new_db(name)`: a --db value for a new, empty database of this test's backend (a SQLite
    file in tmp_path, or a fresh PostgreSQL database's URL)."""
    made: list[str] = []
    server = request.getfixturevalue("pg_server") if backend == "postgres" else None

    def make(name: str = "wt") -> str:
        if server is None:
            return str(tmp_path / f"{name}.db")
        url = server.fresh()
        made.append(url)
        return url

    yield make
    for url in made:
        server.drop(url)


@pytest.fixture
def db(new_db: Callable[[str], str]) -> str:
    """The --db of a new, empty database of each backend (see `new_db`)."""
    return new_db("wt")
