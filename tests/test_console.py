"""The web console in a real browser (Playwright driving the system's Chromium) against a real `lane serve`.

Screenshots of each page are kept under the test's tmp folder."""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect
from test_serve_api import FILES, Client, post_hook, sign, start_server, stop_server

from conftest import lane, write_project

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = pytest.mark.slow


def chromium() -> Iterator[Any]:
    """The system's Chromium under Playwright (its own download cannot be used here); CI fails without it."""
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("CI needs Chromium: .ci/run installs it (apt-get install -y chromium)")
        pytest.skip("no chromium on this machine (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def browser() -> Iterator[Any]:
    yield from chromium()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Client, Path, str, dict[str, str]]]:
    root = write_project(tmp_path / "desk", FILES)
    tokens = {p: lane("token", "create", p, cwd=root).stdout.strip() for p in ("alice", "bob")}
    proc, client, printed = start_server(root, "--as", "alice")
    link = printed[-1].split("once: ")[-1].strip()
    assert link.startswith(f"{client.base}/login/once?code="), printed
    try:
        yield client, root, link, tokens
    finally:
        stop_server(proc)


def test_a_person_signs_in_with_the_link_and_decides_in_the_inbox(browser: Any, served: tuple[Client, Path, str, dict[str, str]],
                                                                  tmp_path: Path) -> None:
    client, root, link, tokens = served
    first = client.call("POST", "/api/runs", tokens["alice"], {"runbook": "reply", "inputs": {"to": "ann@example.com"}})[1]["run_id"]
    second = client.call("POST", "/api/runs", tokens["alice"], {"runbook": "reply", "inputs": {"to": "bo@example.com"}})[1]["run_id"]
    client.until(first, tokens["alice"], "paused")
    client.until(second, tokens["alice"], "paused")

    page = browser.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.goto(link)
    assert page.url.endswith("/inbox") and "alice (lead)" in page.inner_text("header")
    assert page.locator("section.item").count() == 2
    page.screenshot(path=str(tmp_path / "inbox.png"), full_page=True)
    assert page.locator("section.item").first.locator("[name='field.body']").input_value() == "Hello <script>alert(1)</script>"
    assert "<script>alert(1)</script>" in page.locator("section.item pre.value").first.text_content(), "tool output is shown as text"
    assert dialogs == [], "nothing in the data ran as script"

    item = page.locator("section.item", has_text=first)
    item.locator("[name='field.body']").fill("Hello Ann, your refund is on its way.")
    item.locator("button[value=approve]").click()
    assert f"approved send:1 in run {first}" in page.inner_text("#message")
    done = client.until(first, tokens["alice"], "completed")  # the decision resumed it, with no separate resume
    call = next(s for s in done["steps"] if s["id"] == "send")["tool_calls"][0]
    assert call["decision"]["edited_args"]["body"] == "Hello Ann, your refund is on its way."
    assert call["decision"]["user"] == "alice"

    item = page.locator("section.item", has_text=second)
    item.locator("input[name=reason]").fill("wrong customer")
    item.locator("button[value=reject]").click()
    assert client.until(second, tokens["alice"], "rejected")["reason"].endswith("wrong customer")
    assert page.locator("#empty").is_visible()
    page.screenshot(path=str(tmp_path / "inbox-empty.png"), full_page=True)

    page.goto(link)  # a sign-in link works once
    assert page.url.endswith("/login/once?code=" + link.split("code=")[1]) and "used already" in page.inner_text("#message")


def test_someone_of_another_role_sees_nothing_to_decide_and_forms_need_their_session(browser: Any,
                                                                                    served: tuple[Client, Path, str, dict[str, str]],
                                                                                    tmp_path: Path) -> None:
    client, root, _, tokens = served
    run_id = client.call("POST", "/api/runs", tokens["alice"], {"runbook": "reply", "inputs": {"to": "ann@example.com"}})[1]["run_id"]
    client.until(run_id, tokens["alice"], "paused")
    page = browser.new_page()
    page.goto(client.base + "/inbox")
    assert page.url.endswith("/login"), "no session: the sign-in page"
    page.fill("input[name=token]", "lane_wrong")
    page.click("button")
    assert "not valid" in page.inner_text("#message")
    page.fill("input[name=token]", tokens["bob"])
    page.click("button")
    assert page.url.endswith("/inbox") and page.locator("#empty").is_visible(), "bob's roles may decide nothing here"
    page.screenshot(path=str(tmp_path / "inbox-bob.png"), full_page=True)
    cookies = {c["name"]: c for c in page.context.cookies()}
    assert cookies["lane_session"]["httpOnly"] and cookies["lane_session"]["sameSite"] == "Strict"
    # A form posted without the session's CSRF token is refused, and decides nothing.
    answer = page.request.post(client.base + "/inbox/decide", form={"run_id": run_id, "call_id": "send:1", "action": "approve"})
    assert answer.status == 403
    time.sleep(0.3)
    assert client.call("GET", f"/api/runs/{run_id}", tokens["alice"])[1]["status"] == "paused"


def test_a_run_started_from_the_form_shows_its_timeline_and_the_edit_as_a_diff(browser: Any, served: tuple[Client, Path, str, dict[str, str]],
                                                                             tmp_path: Path) -> None:
    client, _, link, tokens = served
    page = browser.new_page()
    page.goto(link)
    page.click("text=Runs")
    form = page.locator("form.start[data-runbook=reply]")
    form.locator("input[name='input.to']").fill("cy@example.com")
    form.locator("button").click()
    assert "/runs/" in page.url
    run_id = page.url.rsplit("/", 1)[1]
    client.until(run_id, tokens["alice"], "paused")
    page.wait_for_load_state("load")  # a navigation still under way (the form's redirect) must end before the reload
    page.reload()
    assert page.inner_text("#status") == "paused" and "1 waiting for you" in page.inner_text("main")
    page.screenshot(path=str(tmp_path / "run-paused.png"), full_page=True)
    page.goto(client.base + "/inbox")
    page.locator("section.item", has_text=run_id).locator("[name='field.body']").fill("Hello Cy")
    page.locator("section.item", has_text=run_id).locator("button[value=approve]").click()
    client.until(run_id, tokens["alice"], "completed")
    page.goto(f"{client.base}/runs/{run_id}")
    assert page.inner_text("#status") == "completed"
    diff = page.inner_text("pre.diff")
    assert '+  "body": "Hello Cy"' in diff and '-  "body": "Hello <script>alert(1)</script>"' in diff
    page.screenshot(path=str(tmp_path / "run-completed.png"), full_page=True)
    page.goto(client.base + "/runs?status=completed")
    assert run_id in page.inner_text("#runs")
    page.goto(client.base + "/runs?status=failed")
    assert run_id not in page.inner_text("main")
    form = page.locator("form.start[data-runbook=reply]")
    form.locator("button").click()  # `to` is required: the browser holds the form back
    assert "/runs?" in page.url
    page.goto(client.base + "/runbooks/reply")
    boxes = page.locator("svg.workchart g.step")
    assert boxes.count() == 2 and "a person signs off" in boxes.nth(1).inner_html(), "send waits for the lead"
    assert "KPIs over 1 finished run" in page.inner_text("main") and "declares no KPIs" in page.inner_text("main")
    page.screenshot(path=str(tmp_path / "runbook.png"), full_page=True)


def test_a_newcomer_runs_the_demo_then_approves_every_reply_in_the_browser(browser: Any, tmp_path: Path) -> None:
    """The README's tour: `lane demo`, then `lane serve` on its folder, sign in with the printed link, approve every reply."""
    demo = tmp_path / "demo"
    ran = lane("demo", "--dir", str(demo), "--model", "rehearsal", "--no-ask", cwd=tmp_path, timeout=300)
    assert ran.returncode == 3 and "lane serve --project" in ran.stdout, ran.stdout + ran.stderr  # the replies wait
    proc, client, printed = start_server(demo, link=True)
    try:
        link = printed[-1].split("once: ")[-1].strip()
        assert "sign in as local" in printed[-1], printed
        page = browser.new_page()
        page.goto(link)
        assert page.url.endswith("/inbox") and "support-lead" in page.inner_text("header")
        assert page.locator("section.item").count() == 8
        assert page.locator("section.item").first.locator("[name='field.body']").input_value().startswith("Hello ")
        page.screenshot(path=str(tmp_path / "demo-inbox.png"), full_page=True)
        for left in range(8, 0, -1):
            assert page.locator("section.item").count() == left
            page.locator("section.item").first.locator("button[value=approve]").click()
            assert "approved send:1" in page.inner_text("#message")
        assert page.locator("#empty").is_visible()
        page.screenshot(path=str(tmp_path / "demo-inbox-empty.png"), full_page=True)
        for _ in range(100):
            runs = json.loads(lane("runs", "--json", cwd=demo).stdout)
            if all(r["status"] == "completed" for r in runs):
                break
            time.sleep(0.1)
        assert [r["status"] for r in runs] == ["completed"] * 8, "each decision resumed its run at once"
        assert len(list((demo / "outbox").glob("*.eml"))) == 8
    finally:
        stop_server(proc)


SUPPORT_PEOPLE = """
people:
  alice: {roles: [support-lead]}
  bob: {roles: [finance]}
"""


@pytest.fixture
def support(tmp_path: Path) -> Iterator[tuple[Client, Path, dict[str, str]]]:
    """The support-triage example on its rehearsal model, with a slow first step (to watch a run live), people, and triggers."""
    root = tmp_path / "support"
    assert lane("init", str(root), cwd=tmp_path).returncode == 0
    config = (root / "lane.yaml").read_text().replace("default: local", "default: scripted:scripts/rehearsal.yaml")
    config = config.replace("roles:                                  # the work chart: who does what",
                            "roles:\n  finance: {kind: human, description: Pays invoices.}")
    (root / "lane.yaml").write_text(config + SUPPORT_PEOPLE)
    book = root / "runbooks" / "support-triage.yaml"
    text = book.read_text().replace("steps:\n  - id: read", "steps:\n  - id: wait\n    check: [sleep, '1.5']\n\n  - id: read", 1)
    book.write_text(text + "\ntriggers:\n  - {webhook: support, secret: env:HOOK_KEY}\n  - {watch: \"inbox/new-*.eml\", input: email}\n")
    assert lane("validate", cwd=root, env={"HOOK_KEY": "k"}).returncode == 0
    tokens = {p: lane("token", "create", p, cwd=root).stdout.strip() for p in ("alice", "bob")}
    proc, client, _ = start_server(root, env={"HOOK_KEY": "the-hook-key-123"})
    try:
        yield client, root, tokens
    finally:
        stop_server(proc)


def sign_in(page: Any, client: Client, token: str) -> None:
    page.goto(client.base + "/login")
    page.fill("input[name=token]", token)
    page.click("button")
    assert page.url.endswith("/inbox")


def test_a_support_lead_watches_a_run_pause_live_decides_it_and_sees_the_kpis_change(browser: Any, support: tuple[Client, Path, dict[str, str]],
                                                                                       tmp_path: Path) -> None:
    client, root, tokens = support
    page = browser.new_page()
    sign_in(page, client, tokens["alice"])
    page.click("text=Runs")
    form = page.locator("form.start[data-runbook=support-triage]")
    form.locator("input[name='input.email']").fill("inbox/01-double-charge.eml")
    form.locator("button").click()
    run_id = page.url.rsplit("/", 1)[1]
    assert page.inner_text("#status") == "running"
    page.evaluate("window.stayed = true")  # gone if the page were loaded again
    expect(page.locator("#status")).to_have_text("paused", timeout=20_000)
    assert page.evaluate("window.stayed === true"), "the page changed live, without being loaded again"
    assert "1 waiting for you" in page.inner_text("main")
    page.screenshot(path=str(tmp_path / "run-paused-live.png"), full_page=True)

    page.click("text=1 waiting for you in the inbox")
    item = page.locator("section.item", has_text=run_id)
    assert item.locator("[name='field.to']").input_value() == "dana@northwind.example"
    body = item.locator("textarea[name='field.body']")
    body.fill(body.input_value().replace("Hello Dana", "Dear Dana"))
    item.locator("button[value=approve]").click()
    done = client.until(run_id, tokens["alice"], "completed")
    assert done["kpis"]["approved_without_edit"] is False and "Dear Dana" in (root / "outbox" / f"{run_id}.eml").read_text()
    page.goto(f"{client.base}/runbooks/support-triage")
    assert "approved_without_edit" in page.inner_text("#kpis") and "KPIs over 1 finished run" in page.inner_text("main")
    before = page.inner_text("#kpis")

    second = client.call("POST", "/api/runs", tokens["alice"], {"runbook": "support-triage", "inputs": {"email": "inbox/03-dark-mode.eml"}})[1]
    client.until(second["run_id"], tokens["alice"], "paused")
    assert client.call("POST", f"/api/runs/{second['run_id']}/decisions", tokens["alice"], {"approve": True})[0] == 200
    client.until(second["run_id"], tokens["alice"], "completed")
    page.wait_for_load_state("load")  # a navigation still under way (the form's redirect) must end before the reload
    page.reload()
    assert "KPIs over 2 finished runs" in page.inner_text("main") and page.inner_text("#kpis") != before, "the KPIs moved"
    page.screenshot(path=str(tmp_path / "runbook-kpis.png"), full_page=True)

    third = client.call("POST", "/api/runs", tokens["alice"], {"runbook": "support-triage", "inputs": {"email": "inbox/08-cancel.eml"}})[1]
    client.until(third["run_id"], tokens["alice"], "paused")
    page.goto(client.base + "/inbox")
    item = page.locator("section.item", has_text=third["run_id"])
    item.locator("input[name=reason]").fill("we keep the account open: call them instead")
    item.locator("button[value=reject]").click()
    assert "call them instead" in client.until(third["run_id"], tokens["alice"], "rejected")["reason"]

    fourth = client.call("POST", "/api/runs", tokens["alice"], {"runbook": "support-triage", "inputs": {"email": "inbox/04-password-reset.eml"}})[1]
    client.until(fourth["run_id"], tokens["alice"], "paused")
    other = browser.new_page()
    sign_in(other, client, tokens["bob"])
    assert other.locator("#empty").is_visible(), "finance decides nothing of support's"
    assert fourth["run_id"] not in other.inner_text("main")
    code, refused = client.call("POST", f"/api/runs/{fourth['run_id']}/decisions", tokens["bob"], {"approve": True})
    assert code == 403 and "bob has no role" in refused["error"]


def test_a_webhook_and_a_dropped_file_start_runs_the_runs_page_shows_live(browser: Any, support: tuple[Client, Path, dict[str, str]],
                                                                          tmp_path: Path) -> None:
    client, root, tokens = support
    page = browser.new_page()
    sign_in(page, client, tokens["alice"])
    page.goto(client.base + "/runs")
    page.evaluate("window.stayed = true")
    body = json.dumps({"email": "inbox/02-export-crash.eml"}).encode()
    code, started = post_hook(client, "support", body, {"X-Lane-Signature": sign("the-hook-key-123", body), "X-Lane-Delivery": "d-7"})
    assert code == 202
    expect(page.locator("#runs")).to_contain_text(started["run_id"], timeout=20_000)
    assert code == 202 and post_hook(client, "support", body, {"X-Lane-Delivery": "d-8"})[0] == 401, "unsigned: refused"

    (root / "inbox" / "new-0001.eml").write_bytes((root / "inbox" / "06-sync-stuck.eml").read_bytes())
    for _ in range(100):
        dropped = [r for r in client.call("GET", "/api/runs", tokens["alice"])[1] if r["run_id"] != started["run_id"]]
        if dropped:
            break
        time.sleep(0.1)
    [dropped_run] = dropped
    assert client.call("GET", f"/api/runs/{dropped_run['run_id']}", tokens["alice"])[1]["inputs"] == {"email": "inbox/new-0001.eml"}
    expect(page.locator("#runs")).to_contain_text(dropped_run["run_id"], timeout=20_000)
    expect(page.locator("#runs td.status", has_text="paused")).to_have_count(2, timeout=20_000)
    assert page.evaluate("window.stayed === true"), "the table changed live"
    page.screenshot(path=str(tmp_path / "runs-live.png"), full_page=True)
    assert len(client.call("GET", "/api/runs", tokens["alice"])[1]) == 2, "each delivery and each file starts one run"


REFUND = {**FILES, "runbooks/refund.yaml": """
    runbook: refund
    steps:
      - id: amount
        human: lead
        prompt: How much do we refund?
        input:
          type: object
          properties:
            amount: {type: integer, minimum: 1, maximum: 500, description: in whole units}
            currency: {enum: [EUR, USD]}
            note: {type: string, maxLength: 40}
            lines: {type: array, items: {type: integer}}
          required: [amount, currency]
"""}


def test_the_inbox_form_is_generated_from_the_schema_and_checked_before_it_is_sent(browser: Any, tmp_path: Path) -> None:
    root = write_project(tmp_path / "desk", REFUND)
    token = lane("token", "create", "alice", cwd=root).stdout.strip()
    proc, client, printed = start_server(root, "--as", "alice")
    try:
        run_id = client.call("POST", "/api/runs", token, {"runbook": "refund", "inputs": {}})[1]["run_id"]
        client.until(run_id, token, "paused")
        page = browser.new_page()
        page.goto(printed[-1].split("once: ")[-1].strip())
        item = page.locator("section.item", has_text=run_id)
        amount = item.locator("input[name='field.amount'][type=number]")
        assert amount.get_attribute("min") == "1" and amount.get_attribute("max") == "500" and amount.get_attribute("required") is not None
        assert item.locator("select[name='field.currency'] option").all_inner_texts() == ["EUR", "USD"]
        assert item.locator("input[name='field.note']").get_attribute("maxlength") == "40"
        page.screenshot(path=str(tmp_path / "inbox-schema-form.png"), full_page=True)

        amount.fill("900")
        item.locator("button[value=approve]").click()  # beyond the maximum: the browser holds the form back
        assert page.url.endswith("/inbox") and not amount.evaluate("e => e.validity.valid")
        amount.fill("120")
        item.locator("textarea[name='field.lines']").fill("[1,")
        item.locator("button[value=approve]").click()  # not JSON: console.js holds it back
        assert not item.locator("textarea[name='field.lines']").evaluate("e => e.validity.valid")
        assert client.call("GET", f"/api/runs/{run_id}", token)[1]["status"] == "paused", "nothing was sent"
        csrf = item.locator("input[name=csrf]").first.input_value()
        forged = page.request.post(client.base + "/inbox/decide", form={  # past the browser: the server checks the schema again
            "csrf": csrf, "run_id": run_id, "call_id": "amount", "action": "approve", "_fields.field.": '["amount", "currency"]',
            "_kind.field.amount": "integer", "field.amount": "900", "_kind.field.currency": "choice", "field.currency": '"EUR"'})
        assert forged.status == 400 and "does not match the step&#39;s schema" in forged.text() and "900" in forged.text(), forged.text()

        item.locator("textarea[name='field.lines']").fill("[1, 2]")
        item.locator("select[name='field.currency']").select_option("USD")
        item.locator("button[value=approve]").click()
        done = client.until(run_id, token, "completed")
        assert done["steps"][0]["output"] == {"amount": 120, "currency": "USD", "lines": [1, 2]}, "an empty optional field is left out"
    finally:
        stop_server(proc)
