"""Who is calling: bearer tokens with scopes, HMAC body signatures, the console's session cookie and CSRF token."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
import time
from urllib.parse import urlsplit

from starlette.exceptions import HTTPException
from starlette.requests import Request

from whenthen.service.config import SCOPES, ServeConfig, Token

SESSION_COOKIE = "whenthen_session"
CSRF_COOKIE = "whenthen_csrf"
SESSION_SECONDS = 12 * 3600


def scope_allows(have: str, need: str) -> bool:
    """`admin` may do what `read` may, which may do what `ingest` may."""
    return SCOPES.index(have) >= SCOPES.index(need)


def find_token(config: ServeConfig, presented: str) -> Token | None:
    """The configured token equal to `presented`, compared in constant time against every one
    (no early exit: the time taken says nothing about which token, or how much of one, matched)."""
    found = None
    given = presented.encode()
    for token in config.tokens:
        if hmac.compare_digest(token.secret.encode(), given):
            found = token
    return found


def is_loopback(request: Request) -> bool:
    host = request.client.host if request.client else ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def caller_scope(request: Request, config: ServeConfig) -> str | None:
    """The scope of the request's bearer token or session cookie; `admin` when no token is
    configured (then only loopback reaches the service); None when it presents neither."""
    if config.open:
        if not is_loopback(request):  # the listener is on loopback; this guards a misconfigured proxy
            raise HTTPException(403, "this service has no tokens configured and answers loopback only")
        return "admin"
    header = request.headers.get("authorization", "")
    if header:
        kind, _, presented = header.partition(" ")
        token = find_token(config, presented.strip()) if kind.lower() == "bearer" else None
        if token is None:
            raise HTTPException(401, "unknown token", headers={"WWW-Authenticate": "Bearer"})
        return token.scope
    cookie = request.cookies.get(SESSION_COOKIE)
    return session_scope(config, cookie) if cookie else None


def require(request: Request, config: ServeConfig, need: str) -> str:
    """The caller's scope if it covers `need`; 401 without credentials, 403 outside the scope."""
    have = caller_scope(request, config)
    if have is None:
        raise HTTPException(401, "a bearer token is required", headers={"WWW-Authenticate": "Bearer"})
    if not scope_allows(have, need):
        raise HTTPException(403, f"a {have} token may not do this (needs {need})")
    return have


def signature_ok(secret: str, body: bytes, header: str | None) -> bool:
    """`X-Whenthen-Signature: sha256=HEX`, HEX the HMAC-SHA256 of the raw body, compared in constant time."""
    if not header or not header.startswith("sha256="):
        return False
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), header[len("sha256="):].strip().lower().encode())


# ----------------------------------------------------------------------------- the console's session


def make_session(token: Token, now: float | None = None) -> str:
    """`scope.expires.mac`, the MAC keyed by the token itself: no server-side state, shared by every
    `serve` process with the same tokens, and void once the token is removed."""
    expires = int((now or time.time()) + SESSION_SECONDS)
    return f"{token.scope}.{expires}.{_session_mac(token.secret, token.scope, expires)}"


def session_scope(config: ServeConfig, cookie: str) -> str | None:
    scope, _, rest = cookie.partition(".")
    expires_text, _, mac = rest.partition(".")
    if scope not in SCOPES or not expires_text.isdigit() or int(expires_text) < time.time():
        return None
    valid = False
    for token in config.tokens:
        if token.scope == scope and hmac.compare_digest(_session_mac(token.secret, scope, int(expires_text)), mac):
            valid = True
    return scope if valid else None


def _session_mac(secret: str, scope: str, expires: int) -> str:
    return hmac.new(secret.encode(), f"session:{scope}:{expires}".encode(), hashlib.sha256).hexdigest()


def csrf_value(request: Request) -> str:
    """The console's CSRF token: the value of its SameSite=Strict cookie, repeated in each form
    (a cross-site page can neither read the cookie nor send it)."""
    return request.cookies.get(CSRF_COOKIE) or request.scope.setdefault("whenthen.csrf", secrets.token_urlsafe(24))


def check_csrf(request: Request, submitted: str | None) -> None:
    """Refuse a console form post that is cross-site: a foreign Origin, or no matching token."""
    origin = request.headers.get("origin")
    # host only, not scheme: behind a TLS-terminating proxy the browser says https, we see http
    if origin is not None and urlsplit(origin).netloc != request.headers.get("host", ""):
        raise HTTPException(403, "cross-site form post refused")
    cookie = request.cookies.get(CSRF_COOKIE)
    if not cookie or not submitted or not hmac.compare_digest(cookie.encode(), submitted.encode()):
        raise HTTPException(403, "the form's CSRF token is missing or wrong; reload the page")
