"""The service's settings: tokens with scopes and per-trigger signature secrets, from the environment and whenthen.toml."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from whenthen.stdlib.config import ConfigError, _config_file, _read_toml

SCOPES = ("ingest", "read", "admin")  # each one may do what the ones before it may


@dataclass(frozen=True)
class Token:
    scope: str
    secret: str = field(repr=False)  # never in a repr, so never in a log line or a traceback


@dataclass(frozen=True)
class ServeConfig:
    """Who may call the service. No token at all means the service listens on loopback only."""

    tokens: tuple[Token, ...] = ()
    signatures: Mapping[str, str] = field(default_factory=dict, repr=False)

    @property
    def open(self) -> bool:
        """No token configured: anyone who can reach the (loopback) port may do anything."""
        return not self.tokens

    @classmethod
    def load(cls, path: str | os.PathLike[str] | None = None, db: str | os.PathLike[str] | None = None,
             env: Mapping[str, str] | None = None) -> ServeConfig:
        """`$WHENTHEN_TOKENS` (`SCOPE:TOKEN,…`) or `[serve] tokens`, and `[serve.signatures]`."""
        env = os.environ if env is None else env
        file = _config_file(path, db, env)
        data = _read_toml(file) if file is not None else {}
        serve = data.get("serve", {})
        if not isinstance(serve, dict):
            raise ConfigError(f"{file}: [serve] must be a table")
        if env.get("WHENTHEN_TOKENS"):
            tokens = [_env_token(item) for item in env["WHENTHEN_TOKENS"].split(",") if item.strip()]
        else:
            tokens = [_file_token(item, file) for item in serve.get("tokens", [])]
        signatures = serve.get("signatures", {})
        if not isinstance(signatures, dict) or not all(isinstance(v, str) and v for v in signatures.values()):
            raise ConfigError(f"{file}: [serve.signatures] maps trigger names to secret strings")
        return cls(tokens=tuple(tokens), signatures=dict(signatures))


def _env_token(item: str) -> Token:
    scope, sep, secret = item.strip().partition(":")
    if not sep or not secret:
        raise ConfigError("WHENTHEN_TOKENS: each item is SCOPE:TOKEN (e.g. ingest:abc,admin:xyz)")
    return _token(scope, secret, "WHENTHEN_TOKENS")


def _file_token(item: Any, file: Path | None) -> Token:
    if not isinstance(item, dict) or not isinstance(item.get("token"), str) or not item.get("token"):
        raise ConfigError(f'{file}: [serve] tokens: each item is {{ scope = "ingest", token = "…" }}')
    return _token(str(item.get("scope", "")), item["token"], f"{file}: [serve] tokens")


def _token(scope: str, secret: str, where: str) -> Token:
    if scope not in SCOPES:
        raise ConfigError(f"{where}: unknown scope '{scope}' (one of {', '.join(SCOPES)})")
    return Token(scope, secret)
