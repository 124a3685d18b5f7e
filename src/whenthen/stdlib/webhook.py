"""webhook over HTTP: a signed JSON request; the response becomes `{status, body}`, 5xx and network errors raise."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any
from urllib.parse import urlsplit

import httpx

from whenthen.stdlib.errors import PermanentActionError

MAX_RESPONSE_BYTES = 64 * 1024  # a larger response body is recorded as null
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD")
USER_AGENT = "whenthen-webhook/1"


def encode_body(body: Any) -> bytes:
    """The exact request bytes: compact JSON (what the signature covers); no body for null."""
    if body is None:
        return b""
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def signature(secret: str, content: bytes) -> str:
    """The `X-Whenthen-Signature` value: `sha256=` and the HMAC-SHA256 of the body bytes, in hex."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), content, hashlib.sha256).hexdigest()


def verify(secret: str, content: bytes, header: str | None) -> bool:
    """For receivers: whether an `X-Whenthen-Signature` header matches the raw body bytes."""
    return header is not None and hmac.compare_digest(header, signature(secret, content))


def request(url: str, body: Any, method: str, *, key: str, secret: str | None, timeout: float) -> dict[str, Any]:
    """Send one request. 2xx, 3xx (not followed) and 4xx responses are results; a 5xx, a timeout or
    a connection error raises RuntimeError (the engine retries); a bad URL or method raises
    PermanentActionError."""
    method = method.upper()
    if method not in METHODS:
        raise PermanentActionError(f"webhook method must be one of {', '.join(METHODS)}, not '{method}'")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise PermanentActionError(f"webhook url must be an http:// or https:// URL, not '{url}'")
    content = encode_body(body)
    headers = {"User-Agent": USER_AGENT, "Idempotency-Key": key}
    if content:
        headers["Content-Type"] = "application/json"
    if secret:
        headers["X-Whenthen-Signature"] = signature(secret, content)
    try:
        # One client per call: actions run rarely compared to the cost of a connection, and a
        # shared pool would outlive forked workers. Redirects are not followed: the signature and
        # the body are meant for the URL the rule names.
        with httpx.Client(timeout=timeout, follow_redirects=False) as client, \
                client.stream(method, url, content=content or None, headers=headers) as response:
            raw = _read_limited(response)
            status = response.status_code
            content_type = response.headers.get("content-type", "")
    except httpx.TimeoutException:
        raise RuntimeError(f"webhook {method} {url}: timed out after {timeout:g} s") from None
    except httpx.HTTPError as exc:
        raise RuntimeError(f"webhook {method} {url}: {type(exc).__name__}: {exc}") from None
    parsed = _parse(raw, content_type)
    if status >= 500:
        shown = raw[:200].decode("utf-8", errors="replace") if raw else ""
        raise RuntimeError(f"webhook {method} {url}: HTTP {status}" + (f": {shown}" if shown else ""))
    return {"status": status, "body": parsed}


def _read_limited(response: httpx.Response) -> bytes | None:
    """The body, or None when it is larger than MAX_RESPONSE_BYTES (not read further)."""
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > MAX_RESPONSE_BYTES:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _parse(raw: bytes | None, content_type: str) -> Any:
    """JSON when the response says it is JSON and parses; otherwise the text; null when empty or too large."""
    if not raw:
        return None
    text = raw.decode("utf-8", errors="replace")
    if "json" in content_type.lower():
        try:
            return json.loads(text)
        except (ValueError, RecursionError):
            return text
    return text
