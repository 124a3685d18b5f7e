"""Declarations of the stdlib actions (SPEC 2.4): send_email, send_message, webhook, log.

Only their signatures and docs live here (origin 'stdlib', `impl=None`); the engine binds them to
transports (stdlib/transports.py). The docs are the editor's hover text and docs/stdlib.md.
"""

from __future__ import annotations

from whenthen.compiler.decls import ActionSig, ParamSig
from whenthen.compiler.types import INT, JSON, STR, object_of

ACTIONS: dict[str, ActionSig] = {
    sig.name: sig
    for sig in [
        ActionSig(
            "send_email",
            (
                ParamSig("to", STR),
                ParamSig("subject", STR),
                ParamSig("body", STR, has_default=True, default=""),
                ParamSig("template", STR.as_optional(), has_default=True, default=None),
            ),
            result=object_of({"message_id": STR}),
            origin="stdlib",
            doc="Send an email: over SMTP when configured, else recorded in the engine's outbox. "
                "With `template`, the named file of the template folder gives the body (and, on a first "
                "line `Subject: …`, the subject); its `{to}`, `{subject}` and `{body}` are filled with "
                "the arguments. `message_id` is the Message-ID sent (the same for every retry of "
                "the call), or `outbox:KEY`. A 4xx SMTP reply or a network error is retried; a "
                "5xx reply or a bad template fails the action at once.",
        ),
        ActionSig(
            "send_message",
            (
                ParamSig("to", STR),
                ParamSig("text", STR),
                ParamSig("channel", STR, has_default=True, default="default"),
            ),
            result=object_of({"message_id": STR}),
            origin="stdlib",
            doc="Send a text message on a channel. Recorded in the engine's outbox (`message_id` is "
                "`outbox:KEY`) unless the host registers its own `send_message` action with this "
                "signature, which then delivers it.",
        ),
        ActionSig(
            "webhook",
            (
                ParamSig("url", STR),
                ParamSig("body", JSON.as_optional(), has_default=True, default=None),
                ParamSig("method", STR, has_default=True, default="POST"),
            ),
            result=object_of({"status": INT, "body": JSON.as_optional()}),
            origin="stdlib",
            doc="An HTTP request with `body` as JSON, signed with `X-Whenthen-Signature: sha256=HEX` "
                "(HMAC-SHA256 of the body bytes) when a secret is configured, and an `Idempotency-Key` "
                "that is the same for every retry of the call. The result is the status and the "
                "response body (JSON when it is JSON, else text; null when empty or over 64 KB). "
                "2xx, 3xx and 4xx are results; a 5xx, a timeout or a connection error is retried "
                "and, when the retries are used up, fails the action.",
        ),
        ActionSig("log", (ParamSig("message", STR),), origin="stdlib",
                  doc="Record a line in the run's history, and log it at INFO on the Python logger `whenthen.rules`."),
    ]
}
