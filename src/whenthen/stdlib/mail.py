"""send_email over SMTP: build the message, connect with STARTTLS, implicit TLS or plain, send."""

from __future__ import annotations

import hashlib
import smtplib
import ssl
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


def build_message(config: SmtpConfig, to: str, subject: str, body: str, msg_id: str) -> EmailMessage:
    """The message; event data cannot add headers: line breaks in the subject become spaces, and
    a recipient with a line break (or with none of `@`) is refused without retry."""
    if "\r" in to or "\n" in to or "@" not in to:
        raise PermanentActionError(f"send_email: not an email address: {to!r}")
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
            client.send_message(message)
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
