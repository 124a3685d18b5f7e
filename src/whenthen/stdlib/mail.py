"""send_email over SMTP: build the message, connect with STARTTLS, implicit TLS or plain, send."""

from __future__ import annotations

import hashlib
import smtplib
import ssl
from email import policy
from email.message import EmailMessage
from email.utils import formatdate

from whenthen.stdlib.config import SmtpConfig
from whenthen.stdlib.errors import PermanentActionError


def message_id(call_key: str, sender: str, to: str, subject: str, body: str) -> str:
    """A Message-ID that is the same for every attempt of one action call, so a receiver can
    drop the duplicate of a retried send (`run:step` alone would repeat across databases)."""
    digest = hashlib.sha256("\0".join((call_key, sender, to, subject, body)).encode()).hexdigest()[:32]
    domain = sender.rpartition("@")[2] or "localhost"
    return f"<{call_key.replace(':', '.')}.{digest}@{domain}>"


def recipient(to: str) -> str:
    """The one address in `to` (`a@x.io` or `Name <a@x.io>`), as its addr-spec. Anything else
    (a list, a group, a line break, no domain) is refused without retry: an event field that
    holds `bob@x, evil@y` must not send to both."""
    if any(ord(c) < 32 or ord(c) == 127 for c in to):
        raise PermanentActionError(f"send_email: not an email address (a control character): {to!r}")
    try:
        header = policy.default.header_factory("To", to)
        groups, defects = header.groups, header.defects
    except Exception:  # the parser gives up on some broken forms (`bob@`) with an IndexError
        raise PermanentActionError(f"send_email: not an email address: {to!r}") from None
    addresses = [a for g in groups for a in g.addresses]
    if len(addresses) > 1 or any(g.display_name is not None for g in groups):
        what = "a group" if any(g.display_name is not None for g in groups) else f"{len(addresses)} addresses"
        raise PermanentActionError(f"send_email: `to` must be one address, got {what}: {to!r}")
    if defects or not addresses or not addresses[0].username or not addresses[0].domain:
        raise PermanentActionError(f"send_email: not an email address: {to!r}")
    return addresses[0].addr_spec


def build_message(config: SmtpConfig, to: str, subject: str, body: str, msg_id: str) -> EmailMessage:
    """The message; event data cannot add headers or recipients: line breaks in the subject become
    spaces, and a `to` that is not exactly one address is refused without retry."""
    recipient(to)
    subject = " ".join(subject.splitlines())
    message = EmailMessage()
    message["From"] = config.sender
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = formatdate(localtime=False, usegmt=True)
    message["Message-ID"] = msg_id
    message.set_content(body)
    return message


def send(config: SmtpConfig, message: EmailMessage) -> None:
    """Deliver one message. A 5xx reply (refused sender or recipient, rejected data) is permanent;
    4xx replies, refused connections and timeouts raise plainly, so the engine retries them."""
    try:
        context = ssl.create_default_context(cafile=config.cafile)
        if config.tls == "ssl":
            client: smtplib.SMTP = smtplib.SMTP_SSL(config.host, config.port, timeout=config.timeout,
                                                    context=context)
        else:
            client = smtplib.SMTP(config.host, config.port, timeout=config.timeout)
        with client:
            if config.tls == "starttls":
                client.starttls(context=context)
            if config.user:
                client.login(config.user, config.password or "")
            # the envelope names the one checked recipient, never what a header parser finds
            client.send_message(message, to_addrs=[recipient(str(message["To"]))])
    except smtplib.SMTPRecipientsRefused as exc:
        codes = [code for code, _ in exc.recipients.values()]
        text = "; ".join(f"{rcpt}: {code} {reply.decode(errors='replace')}"
                         for rcpt, (code, reply) in exc.recipients.items())
        if all(code >= 500 for code in codes):
            raise PermanentActionError(f"SMTP refused the recipient: {text}") from None
        raise RuntimeError(f"SMTP refused the recipient for now: {text}") from None
    except smtplib.SMTPResponseException as exc:
        reply = exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) else str(exc.smtp_error)
        what = f"SMTP {exc.smtp_code} {reply}"
        if isinstance(exc, smtplib.SMTPAuthenticationError):
            raise PermanentActionError(f"SMTP login failed: {what}") from None
        if exc.smtp_code >= 500:
            raise PermanentActionError(what) from None
        raise RuntimeError(what) from None
    except (smtplib.SMTPException, OSError) as exc:
        raise RuntimeError(f"SMTP {config.host}:{config.port}: {exc or type(exc).__name__}") from None
