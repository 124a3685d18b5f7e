"""Benchmark: the language server as an editor drives it, over stdio, on a generated 5,000-rule workspace.

Run: python bench/lsp.py [--files 50] [--rules-per-file 100] [--edits 20] [--bursts 5]

A real LSP client (JSON-RPC with Content-Length framing) spawns `python -m whenthen lsp` in a
generated folder (schema.rules with the triggers and actions, then FILES files of RULES rules),
opens the schema and the first rules file, and measures, wall clock from the client's side:
- the initial diagnostics of the opened file (the whole workspace is loaded and checked),
- one-character edits inside a rule: time from `didChange` to the `publishDiagnostics` of that
  version (target: p95 <= 300 ms); every other edit introduces an error so the result changes,
- 10-key bursts 50 ms apart: time from the last key to the diagnostics of the last version
  (target <= 500 ms),
- completion and hover sent right after a `didChange`, while its check is pending (<= 50 ms),
- a change to a trigger declaration in schema.rules: time until the rules file that uses the
  trigger is re-diagnosed with the new error (and again after the change is undone).
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

SCHEMA = """\
trigger guest.added {
  id: str
  first_name: str
  email: str
  category: 'VIP' | 'Visitor' | 'Press'
  company: str?
  age: int?
  tags: list[str]
}
trigger email.opened { guest_id: str, campaign: str }
trigger order.placed { customer_id: str, total: float, items: list[str] }
trigger loyalty.nurture { source: str, guest_id: str }
action set_status(guest_id: str, status: str)
action create_form(template: str) -> { id: str, url: str }
"""

RULES = (
    """\
rule "Welcome {n}"
when guest.added
where category = 'VIP' and first_name = 'Name{n}'
then
  send_email(to: email, subject: "Welcome {{first_name}} #{n}!")
  wait {hours}h
  set_status(guest_id: id, status: 'welcomed')
end
""",
    """\
rule "Opened {n}"
when email.opened where campaign = 'c{n}'
then
  emit loyalty.nurture(source: campaign, guest_id: guest_id)
end
""",
    """\
rule "Order {n}"
when order.placed where total > {n} and items contains 'sku{n}'
then
  let form = create_form(template: 'order')
  send_message(to: customer_id, text: "Thanks: {{form.url}}")
end
""",
    """\
rule "Nurture {n}"
when loyalty.nurture
then
  let opened = wait for email.opened where guest_id = loyalty.guest_id within 2d
  if opened is null then
    set_status(guest_id: guest_id, status: 'cold')
  end
end
""",
)


def generate(folder: Path, files: int, per_file: int) -> list[Path]:
    (folder / "schema.rules").write_text(SCHEMA, encoding="utf-8")
    paths = []
    n = 0
    for f in range(files):
        chunks = []
        for _ in range(per_file):
            chunks.append(RULES[n % len(RULES)].format(n=n, hours=n % 24 + 1))
            n += 1
        path = folder / f"rules_{f:03d}.rules"
        path.write_text("\n".join(chunks), encoding="utf-8")
        paths.append(path)
    return paths


class Client:
    """A minimal LSP client over the server's stdin/stdout: requests by id, notifications queued."""

    def __init__(self, cwd: Path, command: list[str]):
        self.proc = subprocess.Popen(command, cwd=cwd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL)
        self.messages: queue.Queue[dict[str, Any]] = queue.Queue()
        self.next_id = 0
        self.lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        stream = self.proc.stdout
        assert stream is not None
        while True:
            length = None
            while True:
                header = stream.readline()
                if not header:
                    return
                if header in (b"\r\n", b"\n"):
                    break
                name, _, value = header.decode().partition(":")
                if name.lower() == "content-length":
                    length = int(value)
            assert length is not None
            message = json.loads(stream.read(length))
            message["_received"] = time.perf_counter()
            self.messages.put(message)

    def send(self, message: dict[str, Any]) -> float:
        body = json.dumps({"jsonrpc": "2.0", **message}).encode()
        assert self.proc.stdin is not None
        with self.lock:
            self.proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
            self.proc.stdin.flush()
        return time.perf_counter()

    def notify(self, method: str, params: dict[str, Any]) -> float:
        return self.send({"method": method, "params": params})

    def request_async(self, method: str, params: dict[str, Any]) -> int:
        self.next_id += 1
        self.send({"id": self.next_id, "method": method, "params": params})
        return self.next_id

    def request(self, method: str, params: dict[str, Any], timeout: float = 600) -> Any:
        ident = self.request_async(method, params)
        return self.wait_for(lambda m: m.get("id") == ident and "method" not in m, timeout).get("result")

    def wait_for(self, match, timeout: float = 600) -> dict[str, Any]:
        skipped = []
        deadline = time.perf_counter() + timeout
        try:
            while True:
                left = deadline - time.perf_counter()
                if left <= 0:
                    raise TimeoutError("no matching message")
                try:
                    message = self.messages.get(timeout=left)
                except queue.Empty:
                    raise TimeoutError("no matching message") from None
                if match(message):
                    return message
                skipped.append(message)
        finally:
            for message in skipped:
                self.messages.put(message)

    def drain(self) -> None:
        while True:
            try:
                self.messages.get_nowait()
            except queue.Empty:
                return

    def diagnostics(self, uri: str, version: int | None = None, where=None, timeout: float = 600) -> dict[str, Any]:
        def match(m: dict[str, Any]) -> bool:
            if m.get("method") != "textDocument/publishDiagnostics" or m["params"]["uri"] != uri:
                return False
            if version is not None and m["params"].get("version") != version:
                return False
            return where is None or where(m["params"]["diagnostics"])
        return self.wait_for(match, timeout)

    def close(self) -> None:
        try:
            self.request("shutdown", {}, timeout=30)
            self.notify("exit", {})
            self.proc.wait(timeout=10)
        except Exception:
            pass
        finally:
            if self.proc.poll() is None:
                self.proc.kill()


def position(text: str, offset: int) -> dict[str, int]:
    line = text.count("\n", 0, offset)
    return {"line": line, "character": offset - (text.rfind("\n", 0, offset) + 1)}


def change(client: Client, uri: str, version: int, text: str, offset: int, removed: int, inserted: str) -> tuple[str, float]:
    """Send one incremental change; return the new text and when it was sent."""
    start, end = position(text, offset), position(text, offset + removed)
    sent = client.notify("textDocument/didChange", {
        "textDocument": {"uri": uri, "version": version},
        "contentChanges": [{"range": {"start": start, "end": end}, "text": inserted}]})
    return text[:offset] + inserted + text[offset + removed:], sent


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=50)
    parser.add_argument("--rules-per-file", type=int, default=100)
    parser.add_argument("--edits", type=int, default=20)
    parser.add_argument("--bursts", type=int, default=5)
    parser.add_argument("--pending", type=int, default=10, help="completion/hover requests while a check is pending")
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="whenthen-lsp-bench-"))
    try:
        paths = generate(folder, args.files, args.rules_per_file)
        total = args.files * args.rules_per_file
        load = os.getloadavg()[0]
        print(f"workspace: {total} rules in {args.files} files + schema.rules; load average {load:.2f} "
              f"on {os.cpu_count()} cores")
        client = Client(folder, [sys.executable, "-m", "whenthen", "lsp"])
        try:
            run(client, folder, paths[0], args)
        finally:
            client.close()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def run(client: Client, folder: Path, target: Path, args: argparse.Namespace) -> None:
    timeout = args.timeout
    client.request("initialize", {"processId": os.getpid(), "rootUri": folder.as_uri(), "capabilities": {}})
    client.notify("initialized", {})
    schema_path = folder / "schema.rules"
    schema_uri, uri = schema_path.as_uri(), target.as_uri()
    schema_text, text = schema_path.read_text(encoding="utf-8"), target.read_text(encoding="utf-8")
    started = client.notify("textDocument/didOpen", {"textDocument": {
        "uri": uri, "languageId": "whenthen", "version": 1, "text": text}})
    first = client.diagnostics(uri, 1, timeout=timeout)
    print(f"initial diagnostics of the opened file: {ms(first['_received'] - started)}"
          f" ({len(first['params']['diagnostics'])} diagnostics)")
    client.notify("textDocument/didOpen", {"textDocument": {
        "uri": schema_uri, "languageId": "whenthen", "version": 1, "text": schema_text}})
    client.diagnostics(schema_uri, 1, timeout=timeout)
    time.sleep(0.5)
    client.drain()
    version = 1

    # one-character edits in the literal of rule 7's `where` (Name7 -> Name7x and back)
    needle = "first_name = 'Name"
    at = text.index(needle, len(text) // 2) + len(needle)
    latencies = []
    for i in range(args.edits):
        version += 1
        if i % 2 == 0:
            text, sent = change(client, uri, version, text, at, 0, "x")
        else:
            text, sent = change(client, uri, version, text, at, 1, "")
        got = client.diagnostics(uri, version, timeout=timeout)
        latencies.append(got["_received"] - sent)
        time.sleep(0.15)
    if latencies:
        print(f"one-character edit -> diagnostics: p50 {ms(pct(latencies, 50))}, p95 {ms(pct(latencies, 95))}, "
              f"max {ms(max(latencies))} ({len(latencies)} edits; target p95 <= 300 ms)")

    # bursts: 10 keys 50 ms apart typed into the subject template of a rule near the end
    burst = []
    typed_at = text.index('subject: "Welcome', len(text) * 3 // 4) + len('subject: "Welcome')
    for _ in range(args.bursts):
        for key in "abcdefghij":
            version += 1
            text, sent = change(client, uri, version, text, typed_at, 0, key)
            typed_at += 1
            time.sleep(0.05)
        got = client.diagnostics(uri, version, timeout=timeout)
        burst.append(got["_received"] - sent)
        time.sleep(0.3)
        client.drain()
    if burst:
        print(f"10-key burst (50 ms apart) -> diagnostics after the last key: p50 {ms(pct(burst, 50))}, "
              f"max {ms(max(burst))} ({len(burst)} bursts; target <= 500 ms)")

    # completion and hover right after an edit, while its check is pending
    answers = []
    hover_at = position(text, text.index("category = 'VIP'") + 2)
    member = text.index("{first_name}") + 1
    for i in range(args.pending):
        version += 1
        text, _ = change(client, uri, version, text, at, 0 if i % 2 == 0 else 1, "x" if i % 2 == 0 else "")
        t0 = time.perf_counter()
        client.request("textDocument/completion", {"textDocument": {"uri": uri}, "position": position(text, member)},
                       timeout=timeout)
        t1 = time.perf_counter()
        client.request("textDocument/hover", {"textDocument": {"uri": uri}, "position": hover_at}, timeout=timeout)
        t2 = time.perf_counter()
        answers += [t1 - t0, t2 - t1]
        client.diagnostics(uri, version, timeout=timeout)
        time.sleep(0.15)
    if answers:
        print(f"completion/hover while a check is pending: p50 {ms(pct(answers, 50))}, max {ms(max(answers))} "
              f"({len(answers)} requests; target <= 50 ms)")

    # a trigger declaration change re-diagnoses the rules that use the trigger
    field = "  first_name: str\n"
    offset = schema_text.index(field) + len("  first_name: ")
    client.drain()
    schema_version = 2
    schema_text, sent = change(client, schema_uri, schema_version, schema_text, offset, 3, "int")
    got = client.diagnostics(uri, where=lambda ds: any(d["code"] == "E103" for d in ds), timeout=timeout)
    broken = got["_received"] - sent
    count = sum(1 for d in got["params"]["diagnostics"] if d["code"] == "E103")
    schema_version += 1
    schema_text, sent = change(client, schema_uri, schema_version, schema_text, offset, 3, "str")
    got = client.diagnostics(uri, where=lambda ds: not any(d["code"] == "E103" for d in ds), timeout=timeout)
    fixed = got["_received"] - sent
    print(f"trigger declaration change -> its users re-diagnosed: {ms(broken)} ({count} E103 in the open file); "
          f"undone: {ms(fixed)}")


if __name__ == "__main__":
    main()
