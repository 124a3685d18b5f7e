"""PostgreSQL under fire: 4 worker processes SIGKILLed hundreds of times, and the server restarted mid-load."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator

import pytest

import _pg
from _killload import Load, verify


@pytest.fixture(scope="module")
def cluster() -> Iterator[_pg.Cluster]:
    """A server of this module's own (it is stopped and restarted), committing synchronously: with
    it off, a stop may lose commits itself. No server here: skipped, or failed in CI."""
    try:
        server = _pg.Cluster("-c synchronous_commit=on")
    except Exception as exc:  # no binaries, a server that will not start
        _pg.unavailable(f"{type(exc).__name__}: {exc}")
    try:
        yield server
    finally:
        server.destroy()


def database(cluster: _pg.Cluster, name: str) -> str:
    import psycopg

    with psycopg.connect(cluster.url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return cluster.url.rsplit("/", 1)[0] + "/" + name


@pytest.mark.slow
def test_200_sigkills_of_4_workers_lose_nothing_and_repeat_effects_under_one_key(cluster, tmp_path):
    kills = 200
    load = Load(database(cluster, "kills"), tmp_path)
    load.publish()
    load.enqueue(80)
    rng = random.Random(12)
    started = time.time()
    load.start(4)
    feeder = load.engine()
    try:
        while load.kills < kills:
            # keep work in flight, so every kill lands on a worker in the middle of something
            if load.in_flight() < 60:
                load.enqueue(40, feeder)
            load.kill_one_busy(rng)
        load.wait_finished(timeout=90)
    finally:
        load.stop()
        feeder.close()
    verdict = verify(load)
    assert verdict.repeats > 0  # some kills landed between an action's effect and its journal entry
    print(f"{load.kills} SIGKILLs, {load.jobs} jobs, {verdict.runs} runs, {verdict.calls} action calls "
          f"({verdict.repeats} repeated after a kill, same key) in {time.time() - started:.0f}s")


@pytest.mark.slow
def test_a_server_restart_mid_load_loses_nothing(cluster, tmp_path):
    load = Load(database(cluster, "restart"), tmp_path)
    load.publish()
    load.enqueue(120)
    rng = random.Random(13)
    started = time.time()
    load.start(4)
    try:
        for _ in range(20):
            load.kill_one_busy(rng)
        # a crash of the server (connections cut, no checkpoint), then a clean restart, while
        # the workers hold claims and transactions
        for mode in ("immediate", "fast"):
            load.wait_all_busy()  # running workers, in the middle of their work, see the server go
            cluster.stop(mode)
            time.sleep(1.5)
            cluster.start()
            for _ in range(10):
                load.kill_one_busy(rng, timeout=60)
        load.wait_finished(timeout=90)
    finally:
        load.stop()
    verdict = verify(load)
    print(f"2 server restarts and {load.kills} SIGKILLs, {load.jobs} jobs, {verdict.runs} runs, "
          f"{verdict.calls} action calls ({verdict.repeats} repeated, same key) in {time.time() - started:.0f}s")
