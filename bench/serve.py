"""Benchmark: `POST /v1/events/{trigger}` on a real `whenthen serve`, against `Engine.emit` in process.

Run: python bench/serve.py [--events 2000] [--clients 8] [--history-runs 1000000]

Reports, measured in one run on one machine (SQLite file, the rule sends one message to the outbox):
- the baseline: events/s through `Engine.emit` in process (validate, record, dispatch, run);
- for `serve --workers 1` and `--workers 4`: single events posted by `--clients` concurrent
  clients: events/s accepted (each `202` after its commit) and end to end (posted until every
  run completed), p50/p99 latency of the `202`; then batches of 100 (`POST /v1/events`);
  each as a ratio of the baseline;
- the console's run history page of a rule with `--history-runs` runs: the first page, and a
  page a million runs deep (keyset: `id < before`, never OFFSET), median of 20 requests.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from whenthen.runtime.engine import Engine  # noqa: E402
from whenthen.stdlib.config import StdlibConfig  # noqa: E402

RULES = """
trigger form.submitted { name: str, email: str, score: int }
rule "Thanks" when form.submitted where score > 0 then
  send_message(to: email, text: "Thanks {name}")
end
"""


def payload(n: int) -> dict:
    return {"name": f"n{n}", "email": f"u{n}@example.com", "score": 1 + n % 5}


def baseline(folder: Path, events: int) -> float:
    engine = Engine(folder / "base.db", config=StdlibConfig())
    engine.publish(RULES, enable=True)
    start = time.perf_counter()
    for n in range(events):
        engine.emit("form.submitted", payload(n))
    rate = events / (time.perf_counter() - start)
    engine.close()
    return rate


def start_serve(db: Path, workers: int, port: int) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WHENTHEN_")}
    proc = subprocess.Popen([sys.executable, "-m", "whenthen", "--db", str(db), "serve", "--port", str(port),
                             "--workers", str(workers), "--log-level", "warning"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(600):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.TransportError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("serve did not start")


def wait_processed(url: str, total: int, timeout: float = 600) -> float:
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=url) as http:
        while time.monotonic() < deadline:
            if http.get("/v1/rules/Thanks").json()["runs"] >= total:
                return time.perf_counter()
            time.sleep(0.02)
    raise SystemExit("the workers did not finish")


def post_singles(url: str, events: int, clients: int) -> tuple[float, list[float]]:
    latencies: list[float] = []

    def client(offset: int) -> list[float]:
        mine = []
        with httpx.Client(base_url=url, timeout=60) as http:
            for n in range(offset, events, clients):
                t = time.perf_counter()
                answer = http.post("/v1/events/form.submitted", json=payload(n))
                mine.append(time.perf_counter() - t)
                assert answer.status_code == 202, answer.text
        return mine

    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        for result in pool.map(client, range(clients)):
            latencies += result
    return start, latencies


def post_batches(url: str, events: int, clients: int, size: int = 100) -> tuple[float, list[float]]:
    batches = [[{"trigger": "form.submitted", "data": payload(n)} for n in range(i, min(i + size, events))]
               for i in range(0, events, size)]
    latencies: list[float] = []

    def client(offset: int) -> list[float]:
        mine = []
        with httpx.Client(base_url=url, timeout=60) as http:
            for batch in batches[offset::clients]:
                t = time.perf_counter()
                answer = http.post("/v1/events", json=batch)
                mine.append(time.perf_counter() - t)
                assert all("event" in r for r in answer.json()["results"])
        return mine

    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(min(clients, len(batches))) as pool:
        for result in pool.map(client, range(min(clients, len(batches)))):
            latencies += result
    return start, latencies


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def measure(folder: Path, workers: int, events: int, clients: int, base: float, port: int) -> list[str]:
    rows = []
    for kind in ("single", "batch of 100"):
        db = folder / f"serve-{workers}-{kind[0]}.db"
        engine = Engine(db, config=StdlibConfig())
        engine.publish(RULES, enable=True)
        engine.close()
        proc = start_serve(db, workers, port)
        url = f"http://127.0.0.1:{port}"
        try:
            start, lat = (post_singles if kind == "single" else post_batches)(url, events, clients)
            accepted = time.perf_counter()
            done = wait_processed(url, events)
        finally:
            proc.terminate()
            proc.wait(60)
        acc_rate = events / (accepted - start)
        e2e = events / (done - start)
        rows.append(f"| {workers} | {kind} | {acc_rate:,.0f} | {e2e:,.0f} | {e2e / base:.2f}x | "
                    f"{pct(lat, 0.5):.1f} | {pct(lat, 0.99):.1f} |")
        print(rows[-1], flush=True)
    return rows


def history(folder: Path, runs: int, port: int) -> list[str]:
    """A rule with `runs` runs (stored through the store protocol, in one transaction), then the page."""
    db = folder / "history.db"
    engine = Engine(db, config=StdlibConfig())
    engine.publish(RULES, enable=True)
    store = engine.store
    with store.group():
        for n in range(runs):
            store.store_new_run("Thanks", 1, None, 0, status="completed", frame=None, deadline=None,
                                wait_trigger=None, waits=[], steps=[], at="2026-11-22T10:00:00Z", emits=[])
            if n % 100_000 == 99_999:
                store.commit_now()
    engine.close()
    proc = start_serve(db, 0, port)
    rows = []
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as http:
            for label, params in (("first page", {"rule": "Thanks"}),
                                  ("a page 90% deep", {"rule": "Thanks", "before": str(runs // 10)})):
                times = []
                for _ in range(20):
                    t = time.perf_counter()
                    answer = http.get("/runs", params=params)
                    times.append(time.perf_counter() - t)
                    assert answer.status_code == 200 and answer.text.count("<tr>") >= 50
                rows.append(f"| {label} | {statistics.median(times) * 1000:.1f} |")
                print(rows[-1], flush=True)
    finally:
        proc.terminate()
        proc.wait(60)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--history-runs", type=int, default=1_000_000)
    parser.add_argument("--port", type=int, default=18765)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        base = baseline(folder, args.events)
        print(f"baseline Engine.emit: {base:,.0f} events/s\n")
        print("| workers | requests | accepted/s | end to end/s | vs emit | p50 ms | p99 ms |")
        print("|---:|---|---:|---:|---:|---:|---:|")
        for workers in (1, 4):
            measure(folder, workers, args.events, args.clients, base, args.port)
        print("\n| history page | median ms |\n|---|---:|")
        history(folder, args.history_runs, args.port)


if __name__ == "__main__":
    main()
