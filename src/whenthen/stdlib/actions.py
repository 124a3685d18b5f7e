"""Declarations of the stdlib actions (SPEC 2.4): send_email, send_message, webhook, log.

Only their signatures live here (origin 'stdlib', `impl=None`); the engine binds the real
implementations (SMTP or the outbox, HTTP, the run log).
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
            doc="send an email (SMTP when configured, else the engine's outbox)",
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
            doc="send a text message on a channel",
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
            doc="an HTTP request; the result holds the status and the JSON body",
        ),
        ActionSig("log", (ParamSig("message", STR),), origin="stdlib", doc="write a line to the run's log"),
    ]
}
