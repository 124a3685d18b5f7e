"""A minimal LSP client over a server's stdin/stdout (JSON-RPC with Content-Length framing), as an
editor speaks to `whenthen lsp`: numbered requests, notifications collected on a queue, each
message stamped with when it arrived. Shared by tests/test_lsp.py and bench/lsp.py."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

SRC = Path(__file__).resolve().parent.parent / "src"


def server_command() -> list[str]:
    return [sys.executable, "-m", "whenthen", "lsp"]


def server_env() -> dict[str, str]:
    """The environment for the server: this checkout's `src` first on the path, so the server
    spoken to is the code under test (not another installed copy)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), *filter(None, [env.get("PYTHONPATH")])])
    return env


class Client:
    """Spawns the server in `cwd` and speaks to it."""

    def __init__(self, cwd: Path, command: list[str] | None = None, stderr: int | None = subprocess.DEVNULL):
        self.proc = subprocess.Popen(command or server_command(), cwd=cwd, env=server_env(), stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=stderr)
        self.messages: queue.Queue[dict[str, Any]] = queue.Queue()
        self.next_id = 0
        self.legend: dict[str, list[str]] = {}  # the semantic tokens legend, once a test reads it
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
        """Send one message; when it was sent (perf_counter)."""
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

    def request(self, method: str, params: dict[str, Any], timeout: float = 20.0) -> Any:
        ident = self.request_async(method, params)
        message = self.wait_for(lambda m: m.get("id") == ident and "method" not in m, timeout)
        if "error" in message:
            raise AssertionError(f"{method} failed: {message['error']}")
        return message.get("result")

    def wait_for(self, match: Callable[[dict[str, Any]], bool], timeout: float = 20.0) -> dict[str, Any]:
        """The first message `match` accepts; the others stay queued."""
        skipped = []
        deadline = time.perf_counter() + timeout
        try:
            while True:
                left = deadline - time.perf_counter()
                try:
                    if left <= 0:
                        raise queue.Empty
                    message = self.messages.get(timeout=left)
                except queue.Empty:
                    raise TimeoutError(f"no matching message in {timeout} s; got {skipped}") from None
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

    def publication(self, uri: str, version: int | None = None,
                    where: Callable[[list[dict[str, Any]]], bool] | None = None, timeout: float = 20.0) -> dict[str, Any]:
        """The next `publishDiagnostics` of `uri` (of that document version; that `where` accepts)."""
        def match(m: dict[str, Any]) -> bool:
            if m.get("method") != "textDocument/publishDiagnostics" or m["params"]["uri"] != uri:
                return False
            if version is not None and m["params"].get("version") != version:
                return False
            return where is None or where(m["params"]["diagnostics"])
        return self.wait_for(match, timeout)

    def diagnostics(self, uri: str, version: int | None = None,
                    where: Callable[[list[dict[str, Any]]], bool] | None = None, timeout: float = 20.0) -> list[dict[str, Any]]:
        return self.publication(uri, version, where, timeout)["params"]["diagnostics"]

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
                self.proc.wait(timeout=10)
            for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
                if stream:
                    stream.close()


def position(text: str, offset: int) -> dict[str, int]:
    """The LSP position (0-based line and character) of `offset` in `text` (ASCII text)."""
    line = text.count("\n", 0, offset)
    return {"line": line, "character": offset - (text.rfind("\n", 0, offset) + 1)}


def change(client: Client, uri: str, version: int, text: str, offset: int, removed: int, inserted: str) -> tuple[str, float]:
    """Send one incremental change; the new text and when it was sent."""
    start, end = position(text, offset), position(text, offset + removed)
    sent = client.notify("textDocument/didChange", {
        "textDocument": {"uri": uri, "version": version},
        "contentChanges": [{"range": {"start": start, "end": end}, "text": inserted}]})
    return text[:offset] + inserted + text[offset + removed:], sent
