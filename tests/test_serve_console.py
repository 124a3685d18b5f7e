"""The web console in a real browser (Playwright driving Debian's Chromium): rules, runs, revert, pause, paging, escaping, login, CSRF."""

from __future__ import annotations

import json
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from _serve import GUEST, RULES, cli, publish, start_server, wait_for

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
XSS = '<script>window.__xss = 1</script><img src=x onerror="window.__xss = 2">'
SHOTS = Path(__file__).resolve().parent.parent / "build" / "console-screenshots"


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():  # .ci/run installs it; without it these tests fail rather than skip
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (see .ci/run)", pytrace=False)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    page = context.new_page()
    page.dialogs = []
    page.on("dialog", lambda d: (page.dialogs.append(d.message), d.dismiss()))
    yield page
    context.close()


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    db = tmp_path_factory.mktemp("console") / "app.db"
    publish(db)
    srv = start_server(db)
    with srv.client() as http:
        http.post("/v1/events/guest.added", json=dict(GUEST, first_name=XSS))
        http.post("/v1/events/guest.added", json={"id": XSS, "email": 3})  # rejected, with its reason
        answer = http.post("/v1/events", json=[{"trigger": "form.submitted", "data": {"name": f"n{i}"}}
                                               for i in range(120)])
        assert answer.status_code == 200
        wait_for(lambda: http.get("/v1/rules/Form thanks").json()["completed"] == 120, what="120 runs", timeout=60)
        wait_for(lambda: http.get("/v1/rules/VIP welcome").json()["waiting"] == 1, what="the VIP run")
    yield srv
    assert srv.stop() == 0, srv.output()


def test_the_rules_list(server, page):
    page.goto(server.url + "/")
    rows = page.locator("#rules tbody tr")
    assert rows.count() == 2
    assert rows.nth(0).locator("td").nth(0).inner_text() == "Form thanks"
    assert "active" in rows.nth(0).inner_text() and "120" in rows.nth(0).inner_text()
    shot(page, "rules")


def test_a_run_with_a_script_payload_shows_it_as_text(server, page):
    page.goto(server.url + "/runs?rule=VIP+welcome")
    page.locator("#runs tbody tr a").first.click()
    page.wait_for_selector("#steps")
    assert page.locator("h1").inner_text().startswith("Run #")
    text = page.locator("main").inner_text()
    assert json.dumps(XSS)[1:-1] in text  # the payload, as JSON text, verbatim
    assert "Welcome <script>window.__xss = 1</script>" in text  # the subject built from it
    assert "send_email" in page.locator("#steps").inner_text()
    assert "waiting" in page.locator("h1").inner_text()
    assert page.evaluate("window.__xss") is None and page.dialogs == []
    shot(page, "run")


def test_rejected_events_with_their_reasons_escaped(server, page):
    page.goto(server.url + "/events")
    text = page.locator("#events").inner_text()
    assert "expected str, got number 3" in text and "window.__xss" in text
    assert page.evaluate("window.__xss") is None
    shot(page, "rejected")


def test_paging_through_runs(server, page):
    page.goto(server.url + "/runs?rule=Form+thanks")
    seen: list[int] = []
    pages = 0
    while True:
        ids = [int(t.lstrip("#")) for t in page.locator("#runs tbody tr td:first-child").all_inner_texts()]
        seen += ids
        pages += 1
        if pages == 1:
            shot(page, "runs")
        older = page.locator("#older")
        if older.count() == 0:
            break
        older.click()
        page.wait_for_load_state()
    assert pages == 3 and len(seen) == 120 and len(set(seen)) == 120
    assert seen == sorted(seen, reverse=True)


def test_pause_then_enable_a_rule(server, page):
    page.goto(server.url + "/rules/Form%20thanks")
    page.get_by_role("button", name="Pause").click()
    page.wait_for_selector("h1 .state-paused")
    assert httpx.get(server.url + "/v1/rules/Form thanks").json()["state"] == "paused"
    shot(page, "rule-paused")
    page.get_by_role("button", name="Enable").click()
    page.wait_for_selector("h1 .state-active")
    assert httpx.get(server.url + "/v1/rules/Form thanks").json()["state"] == "active"


def test_archive_a_rule_then_bring_it_back(server, page):
    page.goto(server.url + "/rules/VIP%20welcome")
    page.get_by_role("button", name="Archive").click()
    page.wait_for_selector("h1 .state-archived")
    assert httpx.get(server.url + "/v1/rules/VIP welcome").json()["state"] == "archived"
    page.goto(server.url + "/")
    assert page.locator("#rules tbody tr").count() == 1  # hidden from the list...
    page.get_by_role("link", name="show 1 archived").click()
    assert page.locator("#rules tbody tr").count() == 2  # ...behind a link
    shot(page, "rules-archived")
    assert page.get_by_role("link", name="hide archived").count() == 1
    page.get_by_role("link", name="VIP welcome").click()
    page.get_by_role("button", name="Enable").click()
    page.wait_for_selector("h1 .state-active")
    assert httpx.get(server.url + "/v1/rules/VIP welcome").json()["state"] == "active"


def test_revert_a_version_and_see_the_diff(server, page):
    changed = server.db.parent / "v2.rules"
    changed.write_text(RULES.replace('text: "Thanks"', 'text: "Thank you!"'), encoding="utf-8")
    assert cli(server.db, "publish", str(changed), "--author", "ana").returncode == 0
    page.goto(server.url + "/rules/Form%20thanks")
    assert page.locator("#versions tbody tr").count() == 2
    page.get_by_role("link", name="diff with v1").click()
    assert "Thank you!" in page.locator("pre.diff .add").inner_text()
    assert '"Thanks"' in page.locator("pre.diff .del").inner_text()
    shot(page, "diff")
    page.go_back()
    page.get_by_role("button", name="Revert to v1").click()
    page.wait_for_selector("#versions tbody tr >> nth=2")
    versions = httpx.get(server.url + "/v1/rules/Form thanks").json()["versions"]
    assert [(v["version"], v["current"], v["author"]) for v in versions][-1] == (3, True, "console")
    assert '"Thanks"' in page.locator("pre.source").inner_text()
    shot(page, "rule")


def test_a_cross_site_form_post_changes_nothing(server, page):
    """A page on another origin auto-submits a form to the console: refused, the rule stays active."""
    evil = f"""<form id=f method=post action="{server.url}/rules/Form%20thanks/pause">
               <input name=csrf value=guess></form><script>document.getElementById('f').submit()</script>"""

    class Evil(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's hook
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(evil.encode())

        def log_message(self, *args):
            pass

    attacker = ThreadingHTTPServer(("127.0.0.1", 0), Evil)
    threading.Thread(target=attacker.serve_forever, daemon=True).start()
    try:
        page.goto(server.url + "/")  # the victim has the console open (and its cookies)
        with page.expect_navigation():
            page.goto(f"http://localhost:{attacker.server_address[1]}/")
        page.wait_for_load_state()
        assert "refused" in page.content() or "CSRF" in page.content()
    finally:
        attacker.shutdown()
    assert httpx.get(server.url + "/v1/rules/Form thanks").json()["state"] == "active"
    with httpx.Client(base_url=server.url) as http:  # and without a browser: no token, or a wrong one
        assert http.post("/rules/Form%20thanks/pause").status_code == 403
        http.get("/")
        assert http.post("/rules/Form%20thanks/pause", data={"csrf": "wrong"}).status_code == 403
        good = http.cookies.get("whenthen_csrf")
        assert http.post("/rules/Form%20thanks/pause", data={"csrf": good},
                         headers={"Origin": "http://evil.example"}).status_code == 403
    assert httpx.get(server.url + "/v1/rules/Form thanks").json()["state"] == "active"


def test_login_with_tokens(tmp_path, page):
    db = tmp_path / "tok.db"
    publish(db)
    srv = start_server(db, workers=0, env={"WHENTHEN_TOKENS": "read:reader-token-1,admin:admin-token-2,"
                                                              "ingest:ingest-token-3"})
    try:
        page.goto(srv.url + "/rules/Form%20thanks")
        assert page.url.startswith(srv.url + "/login")
        shot(page, "login")
        page.fill("input[name=token]", "ingest-token-3")
        page.get_by_role("button", name="Log in").click()
        assert "ingest token cannot open the console" in page.locator(".errorbox").inner_text()
        page.fill("input[name=token]", "reader-token-1")
        page.get_by_role("button", name="Log in").click()
        page.wait_for_selector("h1")
        assert page.url == srv.url + "/rules/Form%20thanks"  # back where they were going
        assert page.get_by_role("button", name="Pause").count() == 0  # read scope: no change buttons
        cookie = next(c for c in page.context.cookies() if c["name"] == "whenthen_session")
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
        assert "reader-token-1" not in cookie["value"]
        page.get_by_role("button", name="Log out").click()
        page.fill("input[name=token]", "admin-token-2")
        page.get_by_role("button", name="Log in").click()
        page.goto(srv.url + "/rules/Form%20thanks")
        page.get_by_role("button", name="Pause").click()
        page.wait_for_selector("h1 .state-paused")
    finally:
        assert srv.stop() == 0
    assert "reader-token-1" not in srv.output() and "admin-token-2" not in srv.output()


def test_the_console_loads_nothing_from_elsewhere(server, page):
    requested: list[str] = []
    page.on("request", lambda r: requested.append(r.url))
    for path in ("/", "/runs", "/events", "/rules/VIP%20welcome"):
        page.goto(server.url + path)
    assert requested and all(u.startswith(server.url) for u in requested), requested
    # the flow graph is drawn on the server (Graphviz, when installed), not by a script in the page
    assert page.locator(".flow svg").count() == 1 if shutil.which("dot") else page.locator(".flow pre").count() == 1


def test_split_branches_are_counted_on_the_rules_and_rule_pages(tmp_path):
    db = tmp_path / "split.db"
    publish(db, "trigger cart.abandoned { id: str }\n"
                "rule \"Nudge\" when cart.abandoned then split case 30% then log(message: 'a'); "
                "case 70% then log(message: 'b') end\n")
    srv = start_server(db)
    try:
        with srv.client() as http:
            http.post("/v1/events", json=[{"trigger": "cart.abandoned", "data": {"id": f"c{i}"}} for i in range(10)])
            wait_for(lambda: http.get("/v1/rules/Nudge").json()["completed"] == 10, what="10 runs")
            listing, page = http.get("/").text, http.get("/rules/Nudge").text
    finally:
        assert srv.stop() == 0
    for html in (listing, page):
        assert "split 1: case 1 (30%)" in html and "case 2 (70%)" in html
    assert "[{" not in page  # shown as words, not as a Python list
