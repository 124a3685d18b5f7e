"""Real servers on loopback for the transport tests: an SMTP server (aiosmtpd) and an HTTP server (http.server)."""

from __future__ import annotations

import json
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class MailServer:
    """What the SMTP server received; `refuse` recipients get a temporary 451 while it is > 0."""

    port: int
    messages: list[Message] = field(default_factory=list)
    refuse: int = 0
    refused: int = 0
    logins: list[tuple[str, str]] = field(default_factory=list)
    recipients: list[str] = field(default_factory=list)  # every RCPT TO accepted

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802 - aiosmtpd hook
        if self.refuse > 0:
            self.refuse -= 1
            self.refused += 1
            return "451 4.3.0 mailbox busy, try again later"
        envelope.rcpt_tos.append(address)
        self.recipients.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd hook
        self.messages.append(message_from_bytes(envelope.original_content or envelope.content))
        return "250 Message accepted"


def self_signed_cert(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, made with the openssl command."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is not installed")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    return cert, key


@contextmanager
def smtp_server(user: str | None = None, password: str | None = None, tls: str = "none",
                cert: tuple[Path, Path] | None = None) -> Iterator[MailServer]:
    """A real SMTP server on 127.0.0.1: plain, STARTTLS (required) or implicit TLS with `cert`;
    AUTH allowed without TLS when a user is given."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult

    mail = MailServer(free_port())
    kwargs: dict[str, Any] = {}
    if tls != "none":
        assert cert is not None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(cert[0]), str(cert[1]))
        kwargs = {"tls_context": context, "require_starttls": True} if tls == "starttls" else {"ssl_context": context}
    if user is not None:
        def authenticate(server, session, envelope, mechanism, auth_data):
            ok = auth_data.login.decode() == user and auth_data.password.decode() == password
            if ok:
                mail.logins.append((auth_data.login.decode(), mechanism))
            return AuthResult(success=ok)

        kwargs.update(authenticator=authenticate, auth_require_tls=False)
    controller = Controller(mail, hostname="127.0.0.1", port=mail.port, **kwargs)
    controller.start()
    try:
        yield mail
    finally:
        controller.stop()


@dataclass
class HttpServer:
    """What the HTTP server received. `script` maps a path to responses consumed in order (the
    last one repeats): (status, json body) or ("sleep", seconds)."""

    port: int
    requests: list[dict[str, Any]] = field(default_factory=list)
    script: dict[str, list[Any]] = field(default_factory=dict)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@contextmanager
def http_server() -> Iterator[HttpServer]:
    """A real HTTP server on 127.0.0.1 in a thread."""
    state = HttpServer(0)

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            state.requests.append({"method": self.command, "path": self.path, "headers": dict(self.headers),
                                   "body": body})
            steps = state.script.get(self.path, [(200, {"ok": True})])
            step = steps.pop(0) if len(steps) > 1 else steps[0]
            if step[0] == "sleep":
                time.sleep(step[1])
                step = (200, {"late": True})
            status, payload = step
            data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json" if not isinstance(payload, bytes) else "text/plain")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            try:
                self.wfile.write(data)
            except OSError:  # the client gave up (a timeout test)
                pass

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _serve  # noqa: N815 - http.server hooks

        def log_message(self, *args: Any) -> None:  # keep test output quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
