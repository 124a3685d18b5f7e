"""Tokens and scopes (every endpoint × scope: 401/403), HMAC signatures, loopback-only without tokens, tokens never logged."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from starlette.requests import Request

from _serve import cli_env, publish, start_server
from whenthen.service import auth
from whenthen.service.config import ServeConfig, Token

TOKENS = {"ingest": "ingest-tok-1a2b3c", "read": "read-tok-4d5e6f", "admin": "admin-tok-7a8b9c"}
SECRET = "hook-secret-0x42"

ENDPOINTS = [  # (method, path, body, the least scope that may call it)
    ("POST", "/v1/events/guest.added", {"id": "a", "email": "a@b.c", "first_name": "A", "category": "VIP"}, "ingest"),
    ("POST", "/v1/events", [{"trigger": "guest.added", "data": {}}], "ingest"),
    ("GET", "/openapi.json", None, "ingest"),
    ("GET", "/v1/rules", None, "read"),
    ("GET", "/v1/rules/VIP welcome", None, "read"),
    ("GET", "/v1/runs", None, "read"),
    ("GET", "/v1/runs/1", None, "read"),
    ("GET", "/v1/events", None, "read"),
    ("GET", "/v1/events/1", None, "read"),
    ("GET", "/metrics", None, "read"),
    ("POST", "/v1/rules/VIP welcome/pause", None, "admin"),
    ("POST", "/v1/rules/VIP welcome/enable", None, "admin"),
    ("POST", "/v1/rules/VIP welcome/revert/1", None, "admin"),
    ("GET", "/v1/explain/VIP welcome/1", None, "read"),
    ("POST", "/v1/rules/VIP welcome/archive", None, "admin"),
]
ORDER = ("ingest", "read", "admin")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    db = tmp_path_factory.mktemp("auth") / "app.db"
    publish(db)
    (db.parent / "whenthen.toml").write_text(f'[serve.signatures]\n"form.submitted" = "{SECRET}"\n')
    tokens = ",".join(f"{scope}:{token}" for scope, token in TOKENS.items())
    srv = start_server(db, env={"WHENTHEN_TOKENS": tokens}, log_level="debug")
    with srv.client(TOKENS["ingest"]) as http:  # something for the run and event reads to find
        http.post("/v1/events/guest.added", json=ENDPOINTS[0][2])
    yield srv
    assert srv.stop() == 0, srv.output()


def call(http, method, path, body):
    return http.request(method, path, json=body) if body is not None else http.request(method, path)


@pytest.mark.parametrize(("method", "path", "body", "need"), ENDPOINTS, ids=[f"{m} {p}" for m, p, _, _ in ENDPOINTS])
def test_every_endpoint_by_scope(server, method, path, body, need):
    with server.client() as anonymous:
        assert call(anonymous, method, path, body).status_code == 401
    with server.client("not-a-token") as stranger:
        answer = call(stranger, method, path, body)
        assert answer.status_code == 401 and answer.headers["www-authenticate"] == "Bearer"
    for scope, token in TOKENS.items():
        with server.client(token) as http:
            status = call(http, method, path, body).status_code
        if ORDER.index(scope) >= ORDER.index(need):
            assert status not in (401, 403), (scope, status)
        else:
            assert status == 403, (scope, status)


def test_health_needs_no_token(server):
    with server.client() as http:
        assert http.get("/healthz").status_code == 200
        assert http.get("/readyz").status_code == 200


def test_a_signed_trigger_takes_an_hmac_of_the_body_instead_of_a_token(server):
    body = b'{"name": "Ada"}'
    good = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    headers = {"Content-Type": "application/json"}
    with server.client() as http:
        assert http.post("/v1/events/form.submitted", content=body, headers={**headers, "X-Whenthen-Signature": good}
                         ).status_code == 202
        assert http.post("/v1/events/form.submitted", content=body,
                         headers={**headers, "X-Whenthen-Signature": "sha256=" + "0" * 64}).status_code == 401
        assert http.post("/v1/events/form.submitted", content=body + b" ",
                         headers={**headers, "X-Whenthen-Signature": good}).status_code == 401
        assert http.post("/v1/events/form.submitted", content=body, headers=headers).status_code == 401
    with server.client(TOKENS["admin"]) as http:  # a token is no substitute for the trigger's signature
        assert http.post("/v1/events/form.submitted", content=body, headers=headers).status_code == 401


def test_tokens_never_appear_in_the_log(server):
    with server.client(TOKENS["admin"]) as http:
        http.get("/v1/rules")
        http.post("/v1/events/guest.added", json={"bad": 1})
    with server.client(TOKENS["read"] + "x") as http:
        http.get("/v1/rules")
    log = server.output()
    assert "GET /v1/rules" in log  # the access log is on, at debug level
    for token in TOKENS.values():
        assert token not in log
    assert SECRET not in log


def test_tokens_are_compared_in_constant_time_against_every_one(monkeypatch):
    config = ServeConfig(tokens=tuple(Token(s, t) for s, t in TOKENS.items()))
    calls = []
    real = hmac.compare_digest

    def counting(a, b):
        calls.append(len(a))
        return real(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", counting)
    for presented in (TOKENS["ingest"], TOKENS["admin"], "nothing-like-it"):
        calls.clear()
        found = auth.find_token(config, presented)
        assert len(calls) == len(TOKENS)  # no early exit on the first match
        assert (found.scope if found else None) == {TOKENS["ingest"]: "ingest", TOKENS["admin"]: "admin"}.get(presented)
    assert "secret" not in repr(config.tokens[0]) and TOKENS["ingest"] not in repr(config)


def _request(client_host: str) -> Request:
    return Request({"type": "http", "method": "GET", "path": "/", "headers": [], "client": (client_host, 5000)})


def test_without_tokens_only_loopback_is_answered():
    config = ServeConfig()
    assert auth.caller_scope(_request("127.0.0.1"), config) == "admin"
    assert auth.caller_scope(_request("::1"), config) == "admin"
    with pytest.raises(auth.HTTPException) as refused:
        auth.caller_scope(_request("192.0.2.7"), config)
    assert refused.value.status_code == 403


def test_serve_refuses_a_public_address_without_tokens(tmp_path):
    import subprocess
    import sys

    db = tmp_path / "open.db"
    publish(db)
    done = subprocess.run([sys.executable, "-m", "whenthen", "--db", str(db), "serve", "--host", "0.0.0.0"],
                          capture_output=True, text=True, env=cli_env(), timeout=60)
    assert done.returncode == 2
    assert "loopback only" in done.stderr and "Traceback" not in done.stderr


def test_token_settings_from_whenthen_toml(tmp_path):
    (tmp_path / "whenthen.toml").write_text('[serve]\ntokens = [{ scope = "read", token = "from-file-123" }]\n')
    config = ServeConfig.load(db=tmp_path / "x.db", env={})
    assert [(t.scope, t.secret) for t in config.tokens] == [("read", "from-file-123")]
    env_wins = ServeConfig.load(db=tmp_path / "x.db", env={"WHENTHEN_TOKENS": "admin:abc"})
    assert [(t.scope, t.secret) for t in env_wins.tokens] == [("admin", "abc")]
    from whenthen.stdlib.config import ConfigError

    with pytest.raises(ConfigError, match="unknown scope 'root'"):
        ServeConfig.load(env={"WHENTHEN_TOKENS": "root:abc"})


CONSOLE_PAGES = ["/", "/rules/VIP welcome", "/rules/VIP welcome/diff?a=1&b=1", "/runs", "/runs/1", "/events",
                 "/events/1"]
CONSOLE_FORMS = ["/rules/VIP welcome/pause", "/rules/VIP welcome/enable", "/rules/VIP welcome/revert/1",
                 "/rules/VIP welcome/archive"]


def test_every_console_page_and_form_by_scope(server):
    """The console: no credentials sends a browser to /login; an unknown token is 401; ingest may not
    view (403); read may view but not change (403); admin changes, and only with the form's CSRF token."""
    for path in CONSOLE_PAGES:
        with server.client() as anonymous:
            answer = anonymous.get(path, follow_redirects=False)
            assert answer.status_code == 303 and answer.headers["location"].startswith("/login?next="), path
        with server.client("not-a-token") as stranger:
            assert stranger.get(path).status_code == 401, path
        with server.client(TOKENS["ingest"]) as http:
            assert http.get(path).status_code == 403, path
        for scope in ("read", "admin"):
            with server.client(TOKENS[scope]) as http:
                assert http.get(path).status_code == 200, (path, scope)
    for path in CONSOLE_FORMS:
        with server.client() as anonymous:
            assert anonymous.post(path, follow_redirects=False).status_code == 303, path
        with server.client("not-a-token") as stranger:
            assert stranger.post(path).status_code == 401, path
        for scope in ("ingest", "read"):
            with server.client(TOKENS[scope]) as http:
                http.get("/healthz")
                assert http.post(path, data={"csrf": "x"}).status_code == 403, (path, scope)
        with server.client(TOKENS["admin"]) as http:
            assert http.post(path, data={"csrf": "x"}).status_code == 403, path  # no CSRF cookie: refused
            http.get("/")  # the page sets the CSRF cookie its forms repeat
            csrf = http.cookies["whenthen_csrf"]
            assert http.post(path, data={"csrf": csrf + "x"}).status_code == 403, path
            done = http.post(path, data={"csrf": csrf}, follow_redirects=False)
            assert done.status_code == 303 and done.headers["location"] == "/rules/VIP%20welcome", path
    with server.client(TOKENS["admin"]) as http:
        http.get("/")
        http.post("/rules/VIP welcome/enable", data={"csrf": http.cookies["whenthen_csrf"]})
        assert http.get("/v1/rules/VIP welcome").json()["state"] == "active"
