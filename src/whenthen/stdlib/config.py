"""Transport settings for the stdlib actions, read from the environment and an optional whenthen.toml.

Sources, later ones winning field by field: the TOML file (`--config PATH`, `$WHENTHEN_CONFIG`, or
`whenthen.toml` beside the database), then the `WHENTHEN_*` environment variables. docs/actions.md
lists every setting.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from whenthen.diagnostics import WhenthenError

TLS_MODES = ("starttls", "ssl", "none")
DEFAULT_PORTS = {"starttls": 587, "ssl": 465, "none": 25}
UNBOUND_MODES = ("error", "outbox")


class ConfigError(WhenthenError):
    """A setting that cannot be used (bad TOML, unknown TLS mode, a port that is not a number)."""


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int
    tls: str = "starttls"
    user: str | None = None
    password: str | None = None
    sender: str = "whenthen@localhost"
    timeout: float = 10.0
    cafile: str | None = None  # certificates to trust besides the system's (a private CA)


@dataclass(frozen=True)
class StdlibConfig:
    """Everything the stdlib transports need. `smtp=None` sends email to the outbox table."""

    smtp: SmtpConfig | None = None
    webhook_secret: str | None = None
    webhook_timeout: float = 10.0
    templates: Path | None = None
    unbound_actions: str = "error"  # 'outbox': declared actions without a host binding are recorded
    # the fan-out budget: what one external event may cause (docs/engine.md)
    fan_out_runs: int = 1000
    fan_out_events: int = 1000

    @classmethod
    def load(cls, path: str | os.PathLike[str] | None = None, db: str | os.PathLike[str] | None = None,
             env: Mapping[str, str] | None = None) -> StdlibConfig:
        """Settings from `path` (or $WHENTHEN_CONFIG, or whenthen.toml beside `db`), then the environment."""
        env = os.environ if env is None else env
        file = _config_file(path, db, env)
        data = _read_toml(file) if file is not None else {}
        base = file.parent if file is not None else Path.cwd()
        smtp_file = _table(data, "smtp", file)
        webhook_file = _table(data, "webhook", file)
        templates_file = _table(data, "templates", file)
        actions_file = _table(data, "actions", file)
        limits_file = _table(data, "limits", file)

        def pick(var: str, table: dict[str, Any], key: str) -> Any:
            return env.get(var) if env.get(var) not in (None, "") else table.get(key)

        host = pick("WHENTHEN_SMTP_HOST", smtp_file, "host")
        smtp = None
        if host:
            tls = str(pick("WHENTHEN_SMTP_TLS", smtp_file, "tls") or "starttls").lower()
            if tls not in TLS_MODES:
                raise ConfigError(f"SMTP tls must be one of {', '.join(TLS_MODES)}, not '{tls}'")
            smtp = SmtpConfig(
                host=str(host), port=_number(pick("WHENTHEN_SMTP_PORT", smtp_file, "port") or DEFAULT_PORTS[tls],
                                             "SMTP port", int),
                tls=tls, user=pick("WHENTHEN_SMTP_USER", smtp_file, "user") or None,
                password=pick("WHENTHEN_SMTP_PASSWORD", smtp_file, "password") or None,
                sender=str(pick("WHENTHEN_SMTP_FROM", smtp_file, "from") or "whenthen@localhost"),
                timeout=_number(pick("WHENTHEN_SMTP_TIMEOUT", smtp_file, "timeout") or 10.0, "SMTP timeout", float),
                cafile=pick("WHENTHEN_SMTP_CAFILE", smtp_file, "cafile") or None)
        templates = pick("WHENTHEN_TEMPLATES", templates_file, "folder")
        unbound = str(pick("WHENTHEN_UNBOUND_ACTIONS", actions_file, "unbound") or "error").lower()
        if unbound not in UNBOUND_MODES:
            raise ConfigError(f"unbound actions must be one of {', '.join(UNBOUND_MODES)}, not '{unbound}'")
        return cls(
            smtp=smtp,
            webhook_secret=pick("WHENTHEN_WEBHOOK_SECRET", webhook_file, "secret") or None,
            webhook_timeout=_number(pick("WHENTHEN_WEBHOOK_TIMEOUT", webhook_file, "timeout") or 10.0,
                                    "webhook timeout", float),
            # a folder named in the file is relative to the file, one from the environment to the cwd
            templates=(base / str(templates)) if templates and not env.get("WHENTHEN_TEMPLATES")
            else Path(templates) if templates else None,
            unbound_actions=unbound,
            fan_out_runs=_number(pick("WHENTHEN_FAN_OUT_RUNS", limits_file, "fan_out_runs") or 1000,
                                 "[limits] fan_out_runs", int),
            fan_out_events=_number(pick("WHENTHEN_FAN_OUT_EVENTS", limits_file, "fan_out_events") or 1000,
                                   "[limits] fan_out_events", int),
        )


def _config_file(path: Any, db: Any, env: Mapping[str, str]) -> Path | None:
    explicit = path or env.get("WHENTHEN_CONFIG")
    if explicit:
        found = Path(explicit)
        if not found.is_file():
            raise ConfigError(f"config file not found: {explicit}")
        return found
    if db and str(db) != ":memory:":
        beside = Path(db).parent / "whenthen.toml"
        if beside.is_file():
            return beside
    return None


def _read_toml(file: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {file}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{file}: invalid TOML: {exc}") from None


def _table(data: dict[str, Any], name: str, file: Path | None) -> dict[str, Any]:
    table = data.get(name, {})
    if not isinstance(table, dict):
        raise ConfigError(f"{file}: [{name}] must be a table")
    return table


def _number(value: Any, what: str, kind: type) -> Any:
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{what} must be a number, not {value!r}") from None
    if number <= 0:
        raise ConfigError(f"{what} must be positive, not {value!r}")
    return number
