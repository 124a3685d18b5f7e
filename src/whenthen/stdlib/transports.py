"""The stdlib actions' bindings: which transport each call takes (SMTP, HTTP, the outbox, logging).

The engine calls `Transports.call` inside its journal: it has already recorded the intent and
records the result (and the outbox row returned here, in the same transaction) afterwards, and
retries with its own backoff when a call raises anything but PermanentActionError.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from whenthen.stdlib import mail, webhook
from whenthen.stdlib.config import StdlibConfig
from whenthen.stdlib.errors import PermanentActionError
from whenthen.stdlib.templates import TemplateError, load_template, render_email

rule_log = logging.getLogger("whenthen.rules")

# (action, args as JSON text, created_at): a row for the outbox table
OutboxRow = tuple[str, str, str]


@dataclass(frozen=True)
class ActionCall:
    """Which call this is: `key` names one attempt (the journal row), `call_key` the call across
    all its attempts and replays (`run:step`), for receivers that deduplicate."""

    rule: str
    run_id: int
    key: str
    call_key: str
    at: str


class Transports:
    """Runs stdlib actions with the configured transports."""

    def __init__(self, config: StdlibConfig):
        self.config = config

    def call(self, name: str, args: dict[str, Any], call: ActionCall) -> tuple[Any, OutboxRow | None]:
        """The action's result and, when it went to the outbox, the outbox row to write."""
        if name == "send_email":
            return self.send_email(args, call)
        if name == "webhook":
            from whenthen import values

            # event fields may hold datetimes and durations: sent as ISO text and seconds
            body = values.to_json(args.get("body"))
            result = webhook.request(args["url"], body, args.get("method") or "POST",
                                     key=call.call_key, secret=self.config.webhook_secret,
                                     timeout=self.config.webhook_timeout)
            return result, None
        if name == "log":
            rule_log.info("%s (run %s): %s", call.rule, call.run_id, args.get("message"))
            return None, None
        if name == "send_message":
            _one_message_recipient(args.get("to"))
        # send_message and anything else stdlib without a transport: recorded for someone to send
        return {"message_id": f"outbox:{call.key}"}, _outbox_row(name, args, call)

    def send_email(self, args: dict[str, Any], call: ActionCall) -> tuple[Any, OutboxRow | None]:
        to, subject, body = args["to"], args["subject"], args.get("body") or ""
        template = args.get("template")
        if template:
            try:
                text = load_template(self.config.templates, template)
                subject, body = render_email(text, to, subject, body, name=template)
            except TemplateError as exc:
                raise PermanentActionError(str(exc)) from None
        mail.recipient(to)  # the same refusal whether the mail is sent or goes to the outbox
        smtp = self.config.smtp
        if smtp is None:
            rendered = {"to": to, "subject": subject, "body": body, "template": template}
            return {"message_id": f"outbox:{call.key}"}, _outbox_row("send_email", rendered, call)
        msg_id = mail.message_id(call.call_key, smtp.sender, to, subject, body)
        mail.send(smtp, mail.build_message(smtp, to, subject, body, msg_id))
        return {"message_id": msg_id}, None


def _one_message_recipient(to: Any) -> None:
    """send_message's `to` names one recipient of the channel: no list, no line break."""
    if not isinstance(to, str) or not to.strip():
        raise PermanentActionError(f"send_message: `to` is empty: {to!r}")
    if any(ord(c) < 32 or ord(c) == 127 for c in to) or any(sep in to for sep in ",;"):
        raise PermanentActionError(f"send_message: `to` must be one recipient: {to!r}")


def _outbox_row(name: str, args: dict[str, Any], call: ActionCall) -> OutboxRow:
    from whenthen import values

    return name, json.dumps(values.to_json(args), ensure_ascii=False, separators=(",", ":")), call.at
