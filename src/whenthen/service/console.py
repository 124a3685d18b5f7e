"""The web console at `/`: server-rendered pages of rules, versions, runs and rejected events, and the forms that change rules."""

from __future__ import annotations

import difflib
import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from jinja2 import Environment, FileSystemLoader, pass_context
from markupsafe import Markup
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from whenthen.diagnostics import WhenthenError
from whenthen.service import auth
from whenthen.service.api import EVENT_STATUSES, RUN_STATUSES
from whenthen.service.flow import flow
from whenthen.service.http import service_of
from whenthen.views import describe_step

HERE = Path(__file__).parent
PAGE = 50
# autoescape everywhere: every value from events, rules and runs is text, never markup
templates = Jinja2Templates(env=Environment(loader=FileSystemLoader(str(HERE / "templates")), autoescape=True))


def path_to(request: Request, route: str, /, **params: Any) -> str:
    """The path of a route, its text parameters percent-encoded (rule names hold spaces, `/`, `#`…);
    a path, not a URL, so that pages work behind a proxy that changes the scheme or host."""
    quoted = {k: quote(v, safe="") if isinstance(v, str) and k != "path" else v for k, v in params.items()}
    return request.scope.get("root_path", "") + request.app.url_path_for(route, **quoted)


@pass_context
def link(context: Any, route: str, /, **params: Any) -> str:
    return path_to(context["request"], route, **params)


def _pretty(value: Any) -> str:
    """JSON for people; a plain str, so autoescaping still applies to it."""
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def _when(text: str | None) -> Markup | str:
    """An ISO time, shorter for people (to the second, UTC); the full value in the tooltip."""
    if not text:
        return ""
    short = str(text).replace("T", " ")[:19]
    return Markup('<time datetime="{0}" title="{0}">{1}</time>').format(text, short)  # format() escapes


_ISO = re.compile(r"(\d{4}-\d\d-\d\d)T(\d\d:\d\d:\d\d)(?:\.\d+)?(?:Z|\+00:00)")


def _short_times(text: str) -> str:
    """UTC times in a step's summary to the second, as the rest of the page shows them."""
    return _ISO.sub(r"\1 \2 UTC", text)


def _splits(splits: Any) -> str:
    """A rule's split branches as the `rules` listing says them: `split 1: case 1 (50%) 12 runs, …`."""
    from whenthen.runtime.policies import describe_splits

    return describe_splits(splits) if splits else ""


templates.env.globals["link"] = link
templates.env.filters["splits"] = _splits
templates.env.filters["when"] = _when
templates.env.filters["tojson_pretty"] = _pretty


def _scope(request: Request, need: str) -> str | None:
    """The viewer's scope, or None when they must log in first; 403 outside the scope."""
    svc = service_of(request)
    have = auth.caller_scope(request, svc.config)
    if have is None:
        return None
    if not auth.scope_allows(have, need):
        raise HTTPException(403, f"a {have} token may not do this (needs {need})")
    return have


def _login_redirect(request: Request) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(path_to(request, "console_login") + "?" + urlencode({"next": target}), 303)


def render(request: Request, template: str, code: int = 200, **context: Any) -> Response:
    """A page; it carries the CSRF cookie its forms repeat (SameSite=Strict, HttpOnly)."""
    svc = service_of(request)
    csrf = auth.csrf_value(request)
    scope = context.pop("scope", None)
    page = templates.TemplateResponse(request, template, {
        "csrf": csrf, "scope": scope if not svc.config.open else None, "admin": scope == "admin",
        "logged_in": not svc.config.open and auth.SESSION_COOKIE in request.cookies, "flash": None, **context},
        status_code=code)
    if request.cookies.get(auth.CSRF_COOKIE) != csrf:
        page.set_cookie(auth.CSRF_COOKIE, csrf, httponly=True, samesite="strict", path="/")
    page.headers["Content-Security-Policy"] = ("default-src 'none'; style-src 'self'; img-src 'self' data:; "
                                               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
    page.headers["X-Content-Type-Options"] = "nosniff"
    page.headers["Referrer-Policy"] = "same-origin"
    return page


def error_page(request: Request, exc: HTTPException) -> Response:
    return render(request, "error.html", exc.status_code, status=exc.status_code, message=exc.detail, nav=None)


async def _engine_call(request: Request, fn: Any) -> Any:
    svc = service_of(request)

    def work() -> Any:
        try:
            with svc.engines.lease() as engine:
                return fn(engine)
        except WhenthenError as exc:
            raise HTTPException(404, str(exc)) from None

    return await run_in_threadpool(work)


# ----------------------------------------------------------------------------- pages


async def rules_page(request: Request) -> Response:
    scope = _scope(request, "read")
    if scope is None:
        return _login_redirect(request)
    found = await _engine_call(request, lambda e: e.rules())
    show_all = request.query_params.get("all") == "1"
    shown = [r for r in found if show_all or r["state"] != "archived"]
    return render(request, "rules.html", scope=scope, nav="rules", rules=shown, show_all=show_all,
                  hidden=len(found) - len(shown))


async def rule_page(request: Request) -> Response:
    scope = _scope(request, "read")
    if scope is None:
        return _login_redirect(request)
    name = request.path_params["name"]
    wanted = request.query_params.get("version")

    def load(engine: Any) -> dict[str, Any]:
        rule = engine.rule(name)
        version = int(wanted) if wanted and wanted.isdigit() else rule["version"]
        source = engine.source(name, version)
        svg, text = flow(name, version, source)
        return {"rule": rule, "versions": rule["versions"], "source": source, "shown_version": version,
                "flow_svg": Markup(svg) if svg else None, "flow_text": text}

    context = await _engine_call(request, load)
    extra = [(k, v) for k, v in context["rule"].items() if k in ("counted", "limited")]
    return render(request, "rule.html", scope=scope, nav="rules", extra_counts=extra, **context)


async def diff_page(request: Request) -> Response:
    scope = _scope(request, "read")
    if scope is None:
        return _login_redirect(request)
    name = request.path_params["name"]
    try:
        a, b = int(request.query_params["a"]), int(request.query_params["b"])
    except (KeyError, ValueError):
        raise HTTPException(400, "pick two versions to compare (?a=1&b=2)") from None
    old, new = await _engine_call(request, lambda e: (e.source(name, a), e.source(name, b)))
    lines = []
    for line in list(difflib.unified_diff(old.splitlines(), new.splitlines(), f"v{a}", f"v{b}", lineterm=""))[2:]:
        kind = {"+": "add", "-": "del", "@": "hunk"}.get(line[:1], "same")
        lines.append((kind, line))
    return render(request, "diff.html", scope=scope, nav="rules", name=name, a=a, b=b, lines=lines)


def _page_query(**params: Any) -> str:
    return urlencode({k: v for k, v in params.items() if v})


async def runs_page(request: Request) -> Response:
    scope = _scope(request, "read")
    if scope is None:
        return _login_redirect(request)
    rule = request.query_params.get("rule") or None
    status = request.query_params.get("status") or None
    if status is not None and status not in RUN_STATUSES:
        raise HTTPException(400, f"status must be one of {', '.join(RUN_STATUSES)}")
    before_text = request.query_params.get("before")
    before = int(before_text) if before_text and before_text.isdigit() else None

    def load(engine: Any) -> tuple[list[dict[str, Any]], list[str]]:
        # the names alone for the filter: `rules()` counts every run, too slow beside a page of 50
        return engine.runs_page(rule, status, before, PAGE + 1), [r["name"] for r in engine.store.rules()]

    runs, names = await _engine_call(request, load)
    page, cursor = runs[:PAGE], (runs[PAGE - 1]["id"] if len(runs) > PAGE else None)
    return render(request, "runs.html", scope=scope, nav="runs", runs=page, rule=rule, status=status,
                  statuses=RUN_STATUSES, rule_names=names, before=before, next=cursor,
                  first_query=_page_query(rule=rule, status=status),
                  next_query=_page_query(rule=rule, status=status, before=cursor))


async def run_page(request: Request) -> Response:
    scope = _scope(request, "read")
    if scope is None:
        return _login_redirect(request)
    run_id = request.path_params["id"]
    run = await _engine_call(request, lambda e: e.run(run_id))
    for step in run["steps"]:
        if step["kind"] != "action":
            step["summary"] = _short_times(describe_step(step).removeprefix(step["kind"]).strip())
            described = step["kind"] in ("wait", "emit", "branch", "exit", "error")  # the summary says it all
            step["details"] = None if described else {k: v for k, v in step.items()
                                                      if k not in ("at", "kind", "summary")} or None
    return render(request, "run.html", scope=scope, nav="runs", run=run)


async def events_page(request: Request) -> Response:
    scope = _scope(request, "read")
    if scope is None:
        return _login_redirect(request)
    status = request.query_params.get("status") or "rejected"
    if status not in EVENT_STATUSES:
        raise HTTPException(400, f"status must be one of {', '.join(EVENT_STATUSES)}")
    before_text = request.query_params.get("before")
    before = int(before_text) if before_text and before_text.isdigit() else None
    found = await _engine_call(request, lambda e: e.events_page(status, before, PAGE + 1))
    page, cursor = found[:PAGE], (found[PAGE - 1]["id"] if len(found) > PAGE else None)
    return render(request, "events.html", scope=scope, nav="events", events=page, status=status,
                  before=before, next=cursor)


async def event_page(request: Request) -> Response:
    scope = _scope(request, "read")
    if scope is None:
        return _login_redirect(request)
    event_id = request.path_params["id"]
    event = await _engine_call(request, lambda e: e.event(event_id))
    return render(request, "event.html", scope=scope, nav="events", event=event)


# ----------------------------------------------------------------------------- forms


async def _form(request: Request) -> Any:
    form = await request.form()
    auth.check_csrf(request, form.get("csrf") if isinstance(form.get("csrf"), str) else None)
    return form


async def change_rule(request: Request) -> Response:
    if _scope(request, "admin") is None:
        return _login_redirect(request)
    await _form(request)
    name, change = request.path_params["name"], request.path_params["change"]
    if change not in ("enable", "pause", "archive"):
        raise HTTPException(404, f"no such change: {change}")
    await _engine_call(request, lambda e: getattr(e, change)(name))
    return RedirectResponse(path_to(request, "console_rule", name=name), 303)


async def revert_rule(request: Request) -> Response:
    if _scope(request, "admin") is None:
        return _login_redirect(request)
    await _form(request)
    name, number = request.path_params["name"], request.path_params["n"]
    await _engine_call(request, lambda e: e.revert(name, number, author="console"))
    return RedirectResponse(path_to(request, "console_rule", name=name), 303)


async def login_page(request: Request) -> Response:
    svc = service_of(request)
    target = request.query_params.get("next") or "/"
    if svc.config.open:
        return RedirectResponse("/", 303)
    return render(request, "login.html", nav=None, next=target if target.startswith("/") else "/", error=None)


async def login(request: Request) -> Response:
    svc = service_of(request)
    form = await _form(request)
    target = form.get("next") if isinstance(form.get("next"), str) else "/"
    if not target.startswith("/") or target.startswith("//"):  # never an open redirect
        target = "/"
    token = auth.find_token(svc.config, str(form.get("token") or ""))
    if token is None or not auth.scope_allows(token.scope, "read"):
        why = "That token is not known." if token is None else "An ingest token cannot open the console."
        return render(request, "login.html", 401, nav=None, next=target, error=why)
    answer = RedirectResponse(target, 303)
    answer.set_cookie(auth.SESSION_COOKIE, auth.make_session(token), max_age=auth.SESSION_SECONDS, httponly=True,
                      samesite="strict", secure=request.url.scheme == "https", path="/")
    return answer


async def logout(request: Request) -> Response:
    await _form(request)
    answer = RedirectResponse(path_to(request, "console_login"), 303)
    answer.delete_cookie(auth.SESSION_COOKIE, path="/")
    return answer


def routes() -> list[Route | Mount]:
    return [
        Route("/", rules_page, name="console_rules"),
        Route("/rules/{name}", rule_page, name="console_rule"),
        Route("/rules/{name}/diff", diff_page, name="console_diff"),
        Route("/rules/{name}/revert/{n:int}", revert_rule, methods=["POST"], name="console_revert"),
        Route("/rules/{name}/{change}", change_rule, methods=["POST"], name="console_change"),
        Route("/runs", runs_page, name="console_runs"),
        Route("/runs/{id:int}", run_page, name="console_run"),
        Route("/events", events_page, name="console_events"),
        Route("/events/{id:int}", event_page, name="console_event"),
        Route("/login", login_page, methods=["GET"], name="console_login"),
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"], name="console_logout"),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
