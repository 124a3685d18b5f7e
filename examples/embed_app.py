"""An application embedding whenthen: host triggers and actions in Python, rules from strings, a fixed clock."""

from __future__ import annotations

import datetime as dt
import sys

from pydantic import BaseModel

import whenthen


class Guest(BaseModel):
    """The payload of `guest.added`, as the application already models it."""

    id: str
    email: str
    first_name: str
    category: str
    company: str | None = None


class Badge(BaseModel):
    badge_id: str
    printed: bool


RULES = """
rule "VIP welcome"
when guest.added where category = 'VIP'
then
  let badge = print_badge(guest_id: id, name: first_name)
  send_email(to: email, subject: "Welcome {first_name}!", body: "Your badge: {badge.badge_id}")
  wait 24h
  if company is null then
    send_message(to: email, text: "Tell us where you work, {first_name}?")
  end
end
"""


def main(db: str = ":memory:") -> list[dict]:
    clock = whenthen.SimulatedClock(dt.datetime(2026, 11, 22, 10, 0, tzinfo=dt.UTC))  # a fixed, steppable clock
    # StdlibConfig(): no SMTP here, so email goes to the engine's outbox (see docs/actions.md)
    engine = whenthen.Engine(db, clock, config=whenthen.StdlibConfig())
    engine.trigger("guest.added", Guest)

    @engine.action
    def print_badge(guest_id: str, name: str, idempotency_key: str = "") -> Badge:
        """Print a badge at the registration desk."""
        # A real printer queue would drop a job whose key it has seen: after a crash, the engine
        # calls the action again with the same key.
        return Badge(badge_id=f"B-{guest_id}", printed=True)

    program = whenthen.compile(RULES, schema=engine)  # checked against the host's triggers and actions
    engine.publish(program, author="embed_app", enable=True)
    engine.check_bindings()  # every action the rules call has an implementation

    engine.emit("guest.added", {"id": "g1", "email": "ada@example.com", "first_name": "Ada", "category": "VIP"})
    engine.emit("guest.added", {"id": "g2", "email": "bob@example.com", "first_name": "Bob", "category": "Press"})
    try:
        engine.emit("guest.added", {"id": "g3", "email": "x@example.com"})
    except whenthen.EventError as exc:
        print(f"rejected: {exc}")

    clock.advance(dt.timedelta(hours=24))
    print(f"resumed {engine.run_due()} run(s) after 24h")

    history = []
    for run in engine.runs():
        detail = engine.run(run["id"])
        print(f"run {run['id']} {run['rule']} v{run['version']}: {run['status']}")
        for step in detail["steps"]:
            if step["kind"] == "action":
                print(f"  {step['at']} {step['action']} -> {step['result']}")
            else:
                print(f"  {step['at']} {step['kind']}")
        history.append(detail)
    for message in engine.outbox():
        print(f"outbox: {message['action']} to {message['args']['to']}")
    engine.close()
    return history


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else ":memory:")
