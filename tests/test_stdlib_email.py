"""send_email against a real SMTP server on loopback: delivery, templates, retries, failures, configuration."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from _servers import self_signed_cert, smtp_server
from whenthen.api import compile as compile_rules
from whenthen.runtime.clock import SimulatedClock
from whenthen.runtime.engine import Engine, RetryPolicy
from whenthen.stdlib.config import ConfigError, SmtpConfig, StdlibConfig

T0 = dt.datetime(2026, 11, 22, 10, 0, tzinfo=dt.UTC)
SCHEMA = "trigger guest.added { id: str, email: str, first_name: str, note: str? }\n"


def make(tmp_path: Path, rules: str, config: StdlibConfig, attempts: int = 3) -> tuple[Engine, SimulatedClock]:
    clock = SimulatedClock(T0)
    engine = Engine(tmp_path / "wt.db", clock, config=config,
                    retry=RetryPolicy(attempts=attempts, base_delay=60, factor=2))
    engine.publish(compile_rules(SCHEMA + rules, engine.schema), enable=True)
    return engine, clock


def smtp_config(port: int, tls: str = "none", **kw) -> SmtpConfig:
    return SmtpConfig(host="127.0.0.1", port=port, tls=tls, sender="rules@eventmaker.test", timeout=5, **kw)


GUEST = {"id": "g1", "email": "john@example.com", "first_name": "John"}


def test_mail_arrives_with_rendered_subject_and_template_body(tmp_path):
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "welcome.txt").write_text("Subject: [Eventmaker] {subject}\n\nDear guest,\n\n{body}\n\n"
                                           "Sent to {to}. Literal {{braces}}.\n")
    with smtp_server() as mail:
        engine, _ = make(tmp_path, """
rule "Welcome" when guest.added then
  let sent = send_email(to: email, subject: "Welcome {first_name}!", body: "See you soon, {first_name}.",
                        template: 'welcome.txt')
  log(message: sent.message_id)
end
""", StdlibConfig(smtp=smtp_config(mail.port), templates=templates))
        engine.emit("guest.added", GUEST)
    assert len(mail.messages) == 1
    msg = mail.messages[0]
    assert msg["Subject"] == "[Eventmaker] Welcome John!"
    assert msg["To"] == "john@example.com" and msg["From"] == "rules@eventmaker.test"
    assert msg.get_payload().replace("\r\n", "\n").strip() == ("Dear guest,\n\nSee you soon, John.\n\n"
                                         "Sent to john@example.com. Literal {braces}.")
    run = engine.runs()[0]
    assert run["status"] == "completed"
    steps = [s for s in engine.run(run["id"])["steps"] if s["kind"] == "action"]
    # the result is journaled and the rule saw it: the Message-ID the server received
    assert steps[0]["result"] == {"message_id": msg["Message-ID"]}
    assert steps[1]["args"] == {"message": msg["Message-ID"]}
    assert engine.outbox() == []


def test_login_with_credentials(tmp_path):
    with smtp_server(user="robot", password="s3cret") as mail:
        engine, _ = make(tmp_path, 'rule "W" when guest.added then send_email(to: email, subject: "hi")\n',
                         StdlibConfig(smtp=smtp_config(mail.port, user="robot", password="s3cret")))
        engine.emit("guest.added", GUEST)
    assert mail.logins and mail.logins[0][0] == "robot"
    assert [m["Subject"] for m in mail.messages] == ["hi"]


@pytest.mark.parametrize("tls", ["starttls", "ssl"])
def test_tls_with_a_trusted_certificate(tmp_path, tls):
    cert, key = self_signed_cert(tmp_path)
    with smtp_server(user="robot", password="pw", tls=tls, cert=(cert, key)) as mail:
        engine, _ = make(tmp_path, 'rule "W" when guest.added then send_email(to: email, subject: "secure")\n',
                         StdlibConfig(smtp=smtp_config(mail.port, tls, user="robot", password="pw", cafile=str(cert))))
        engine.emit("guest.added", GUEST)
    assert [m["Subject"] for m in mail.messages] == ["secure"] and mail.logins[0][0] == "robot"


def test_an_untrusted_certificate_is_refused(tmp_path):
    cert, key = self_signed_cert(tmp_path)
    with smtp_server(tls="starttls", cert=(cert, key)) as mail:
        engine, _ = make(tmp_path, 'rule "W" when guest.added then send_email(to: email, subject: "x")\n',
                         StdlibConfig(smtp=SmtpConfig(host="127.0.0.1", port=mail.port, tls="starttls", timeout=5)),
                         attempts=1)
        engine.emit("guest.added", GUEST)
    run = engine.runs()[0]
    assert run["status"] == "failed" and "CERTIFICATE_VERIFY_FAILED" in run["error"]
    assert mail.messages == []


def test_temporary_refusal_is_retried_with_the_same_message_id(tmp_path):
    with smtp_server() as mail:
        mail.refuse = 1
        engine, clock = make(tmp_path, 'rule "W" when guest.added then send_email(to: email, subject: "hi")\n',
                             StdlibConfig(smtp=smtp_config(mail.port)))
        engine.emit("guest.added", GUEST)
        assert mail.refused == 1 and engine.runs()[0]["status"] == "waiting"  # waiting for its retry
        clock.advance(dt.timedelta(seconds=60))
        assert engine.run_due() == 1
    assert [m["Subject"] for m in mail.messages] == ["hi"]
    steps = [s for s in engine.run(engine.runs()[0]["id"])["steps"] if s["kind"] == "action"]
    assert [(s["attempt"], s["status"]) for s in steps] == [(1, "failed"), (2, "done")]
    assert "451" in steps[0]["error"]
    assert steps[1]["result"]["message_id"] == mail.messages[0]["Message-ID"]


def test_smtp_failure_after_retries_fires_action_failed_then_run_failed(tmp_path):
    with smtp_server() as mail:
        mail.refuse = 99
        engine, clock = make(tmp_path, """
rule "W" when guest.added then send_email(to: email, subject: "hi")
rule "ActionAlert" when action.failed then log(message: "{action.action} failed: {action.error}")
rule "RunAlert" when run.failed then log(message: run.error)
""", StdlibConfig(smtp=smtp_config(mail.port)), attempts=2)
        engine.emit("guest.added", GUEST)
        clock.advance(dt.timedelta(seconds=60))
        engine.run_due()
    assert mail.refused == 2 and mail.messages == []
    run = engine.runs(rule="W")[0]
    assert run["status"] == "failed" and "451" in run["error"]
    alert = engine.run(engine.runs(rule="ActionAlert")[0]["id"])
    message = [s for s in alert["steps"] if s["kind"] == "action"][0]["args"]["message"]
    assert message.startswith("send_email failed: SMTP refused the recipient for now") and "451" in message
    assert engine.runs(rule="RunAlert")[0]["status"] == "completed"
    triggers = [e["trigger"] for e in engine.events()]
    assert triggers.index("action.failed") < triggers.index("run.failed")


def test_unreachable_server_is_retried_then_fails(tmp_path):
    from _servers import free_port

    engine, clock = make(tmp_path, 'rule "W" when guest.added then send_email(to: email, subject: "hi")\n',
                         StdlibConfig(smtp=smtp_config(free_port())), attempts=2)
    engine.emit("guest.added", GUEST)
    clock.advance(dt.timedelta(seconds=60))
    engine.run_due()
    run = engine.runs()[0]
    assert run["status"] == "failed" and "SMTP 127.0.0.1" in run["error"]
    assert len([s for s in engine.run(run["id"])["steps"] if s["kind"] == "action"]) == 2


@pytest.mark.parametrize("template, error", [
    ("missing.txt", "template 'missing.txt' not found"),
    ("../secret.txt", "outside the template folder"),
    ("attr.txt", "unknown placeholder '{body.__class__}'"),
    ("index.txt", "unknown placeholder '{body[0]}'"),
])
def test_bad_templates_fail_at_once_without_retry(tmp_path, template, error):
    templates = tmp_path / "templates"
    templates.mkdir()
    (tmp_path / "secret.txt").write_text("not for rules")
    (templates / "attr.txt").write_text("{body.__class__}")
    (templates / "index.txt").write_text("{body[0]}")
    with smtp_server() as mail:
        engine, _ = make(tmp_path, f"rule \"W\" when guest.added then send_email(to: email, subject: 'x', "
                                   f"template: '{template}')\n",
                         StdlibConfig(smtp=smtp_config(mail.port), templates=templates))
        engine.emit("guest.added", GUEST)
    run = engine.runs()[0]
    assert run["status"] == "failed" and error in run["error"]
    assert len([s for s in engine.run(run["id"])["steps"] if s["kind"] == "action"]) == 1
    assert mail.messages == []


def test_without_smtp_the_rendered_message_goes_to_the_outbox(tmp_path):
    templates = tmp_path / "t"
    templates.mkdir()
    (templates / "note.txt").write_text("Note: {body}")
    engine, _ = make(tmp_path, "rule \"W\" when guest.added then send_email(to: email, subject: 'Hi {first_name}', "
                               "body: 'b', template: 'note.txt')\n", StdlibConfig(templates=templates))
    engine.emit("guest.added", GUEST)
    [row] = engine.outbox()
    assert row["action"] == "send_email"
    assert row["args"] == {"to": "john@example.com", "subject": "Hi {first_name}", "body": "Note: b",
                           "template": "note.txt"}  # single quotes: a literal, not a template


def test_config_from_environment_and_toml(tmp_path):
    (tmp_path / "whenthen.toml").write_text("""
[smtp]
host = "mail.example.com"
tls = "ssl"
from = "a@example.com"
[webhook]
secret = "from-file"
timeout = 2.5
[templates]
folder = "tpl"
""")
    config = StdlibConfig.load(db=tmp_path / "wt.db", env={"WHENTHEN_SMTP_USER": "u", "WHENTHEN_SMTP_PASSWORD": "p",
                                                          "WHENTHEN_WEBHOOK_SECRET": "from-env"})
    assert config.smtp == SmtpConfig(host="mail.example.com", port=465, tls="ssl", user="u", password="p",
                                     sender="a@example.com")
    assert config.webhook_secret == "from-env" and config.webhook_timeout == 2.5
    assert config.templates == tmp_path / "tpl"
    plain = StdlibConfig.load(db=":memory:", env={"WHENTHEN_SMTP_HOST": "h", "WHENTHEN_SMTP_TLS": "starttls"})
    assert plain.smtp is not None and plain.smtp.port == 587
    assert StdlibConfig.load(db=":memory:", env={}).smtp is None
    with pytest.raises(ConfigError, match="tls must be one of starttls, ssl, none"):
        StdlibConfig.load(env={"WHENTHEN_SMTP_HOST": "h", "WHENTHEN_SMTP_TLS": "tls1.3"})
    with pytest.raises(ConfigError, match="SMTP port must be a number"):
        StdlibConfig.load(env={"WHENTHEN_SMTP_HOST": "h", "WHENTHEN_SMTP_PORT": "twenty-five"})
    (tmp_path / "bad.toml").write_text("[smtp\nhost=")
    with pytest.raises(ConfigError, match="invalid TOML"):
        StdlibConfig.load(tmp_path / "bad.toml", env={})


def test_event_data_cannot_inject_headers(tmp_path):
    with smtp_server() as mail:
        engine, _ = make(tmp_path, """
rule "Subject" when guest.added then send_email(to: email, subject: "Hi {first_name}")
rule "To" when guest.added then send_email(to: "{note}", subject: "x")
""", StdlibConfig(smtp=smtp_config(mail.port)))
        engine.emit("guest.added", dict(GUEST, first_name="John\r\nBcc: victim@example.com",
                                        note="a@example.com\nBcc: victim@example.com"))
    [msg] = mail.messages
    assert msg["Subject"] == "Hi John Bcc: victim@example.com" and msg["Bcc"] is None
    refused = engine.runs(rule="To")[0]
    assert refused["status"] == "failed" and "not an email address" in refused["error"]


@pytest.mark.parametrize("to, reason", [
    ("bob@example.com, evil@attacker.test", "must be one address, got 2 addresses"),
    ("Bob <bob@example.com>, Eve <eve@attacker.test>", "must be one address, got 2 addresses"),
    ("friends: bob@example.com, eve@attacker.test;", "must be one address, got a group"),
    ("friends: eve@attacker.test;", "must be one address, got a group"),
    ("bob", "not an email address"),
    ("bob@", "not an email address"),
    ("<>", "not an email address"),
    ("", "not an email address"),
    ("bob@example.com\tx", "control character"),
])
def test_to_is_one_address_anything_else_is_refused_without_retry(tmp_path, to, reason):
    with smtp_server() as mail:
        engine, _ = make(tmp_path, 'rule "W" when guest.added then send_email(to: note, subject: "x")\n',
                         StdlibConfig(smtp=smtp_config(mail.port)))
        engine.emit("guest.added", dict(GUEST, note=to))
        engine.run_due()
    run = engine.runs()[0]
    assert run["status"] == "failed" and reason in run["error"], run["error"]
    assert len([s for s in engine.run(run["id"])["steps"] if s["kind"] == "action"]) == 1  # no retry
    assert mail.messages == [] and mail.recipients == []


@pytest.mark.parametrize("to, envelope", [
    ("john@example.com", "john@example.com"),
    ("John Smith <john@example.com>", "john@example.com"),
    ('"Smith, John" <john@example.com>', "john@example.com"),  # a comma inside quotes is a name
])
def test_one_address_in_any_single_form_is_sent_to_that_address_only(tmp_path, to, envelope):
    with smtp_server() as mail:
        engine, _ = make(tmp_path, 'rule "W" when guest.added then send_email(to: note, subject: "x")\n',
                         StdlibConfig(smtp=smtp_config(mail.port)))
        engine.emit("guest.added", dict(GUEST, note=to))
    assert engine.runs()[0]["status"] == "completed"
    assert mail.recipients == [envelope] and len(mail.messages) == 1


def test_the_outbox_refuses_the_same_recipients_and_send_message_takes_one(tmp_path):
    engine, _ = make(tmp_path, """
rule "Mail" when guest.added then send_email(to: note, subject: "x")
rule "Text" when guest.added then send_message(to: first_name, text: "hi")
""", StdlibConfig())
    engine.emit("guest.added", dict(GUEST, note="a@example.com, b@example.com", first_name="+331, +332"))
    engine.emit("guest.added", dict(GUEST, note="a@example.com", first_name="+33100"))
    mail_runs = [r["status"] for r in engine.runs(rule="Mail")]
    text_runs = [r["status"] for r in engine.runs(rule="Text")]
    assert sorted(mail_runs) == ["completed", "failed"] and sorted(text_runs) == ["completed", "failed"]
    failed = [r for r in engine.runs(rule="Text") if r["status"] == "failed"][0]
    assert "send_message: `to` must be one recipient" in failed["error"]
    assert sorted(row["action"] for row in engine.outbox()) == ["send_email", "send_message"]
