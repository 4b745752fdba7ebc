"""The web console in a real browser (Playwright driving the system's Chromium) against a real `lane serve`.

Screenshots of each page are kept under the test's tmp folder."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_serve_api import FILES, Client, start_server, stop_server

from conftest import lane, write_project

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = pytest.mark.slow


@pytest.fixture
def browser() -> Iterator[Any]:
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
    assert "<script>alert(1)</script>" in page.inner_text("section.item pre.value"), "tool output is shown as text"
    assert dialogs == [], "nothing in the data ran as script"

    item = page.locator("section.item", has_text=first)
    item.locator("textarea[name='field.body']").fill("Hello Ann, your refund is on its way.")
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
    page.reload()
    assert page.inner_text("#status") == "paused" and "1 waiting for you" in page.inner_text("main")
    page.screenshot(path=str(tmp_path / "run-paused.png"), full_page=True)
    page.goto(client.base + "/inbox")
    page.locator("section.item", has_text=run_id).locator("textarea[name='field.body']").fill("Hello Cy")
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
