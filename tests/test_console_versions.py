"""The console's Runbook page shows the release and compares the versions (issue 16, part 5, in the console):
a real server over a real store with runs on two versions."""

from __future__ import annotations

from pathlib import Path

from test_releases import FILES as SHOP
from test_serve_api import start_server, stop_server
from test_serve_attack import send

import lane as lane_api
from conftest import lane, lane_json, write_project

FILES = {**SHOP, "lane.yaml": """
    project: shop
    models: {default: scripted:model.yaml}
    roles: {lead: {kind: human}}
    people: {alice: {roles: [lead]}}
    toolsets:
      desk: {python: tools/desk.py}
"""}


def test_the_runbook_page_shows_the_release_and_each_version_against_the_one_before(tmp_path: Path) -> None:
    from test_releases import v2

    root = write_project(tmp_path / "shop", FILES)
    with lane_api.Project.load(root) as project:
        for i in range(6):
            project.run("care", {"customer": f"a{i}"})
    (root / "runbooks" / "care.yaml").write_text(v2())
    lane_json("release", "care", "2", "--share", "50%", "--key", "inputs.customer", cwd=root)
    with lane_api.Project.load(root) as project:
        for i in range(20):
            project.run("care", {"customer": f"b{i}"})
    token = lane("token", "create", "alice", cwd=root).stdout.strip()
    proc, client, _ = start_server(root)
    try:
        cookie = send(client, "POST", "/login", form={"token": token}).cookie()
        page = send(client, "GET", "/runbooks/care", cookie=cookie)
    finally:
        stop_server(proc)
    assert page.status == 200
    assert "v2 is released to 50% of new runs\nagainst v1, routed by inputs.customer." in page.text
    assert '<table id="versions">' in page.text and "<td>answered</td><td>v1</td>" in page.text
    assert "Fisher&#39;s exact p = " in page.text or "Fisher's exact p = " in page.text
    assert '<div id="versions-chart"><svg' in page.text and "<polyline" in page.text
