"""`lane mcp` as a real subprocess, driven by real MCP clients: the official Python client over stdio and over
streamable HTTP, and the MCP Inspector's CLI (from npm, pinned in tests/node/package.json, installed on first use).

The project is `lane init`'s support-triage example on its rehearsal script, so no model is needed; lena is its
support lead, sam approves refunds only.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import anyio
import httpx2
import mcp
import pytest
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp_types import CallToolResult

from conftest import lane
from lane.mcp.desk import tool_names
from pg import Cluster

T = TypeVar("T")
NODE = Path(__file__).parent / "node"  # the MCP Inspector, pinned in its package.json
SECRET = "acme-live-key-7f3a9c2e41"
PEOPLE = """
people:
  lena: {roles: [support-lead]}
  sam: {roles: [finance]}
secrets: [env:ACME_KEY]
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "desk"
    assert lane("init", str(root), cwd=tmp_path).returncode == 0
    config = (root / "lane.yaml").read_text().replace("  default: local\n", "  default: rehearsal\n")
    config = config.replace("roles:                                  # the work chart: who does what\n",
                            "roles:\n  finance: {kind: human, description: Approves refunds.}\n")
    (root / "lane.yaml").write_text(config + PEOPLE)
    email = (root / "inbox/01-double-charge.eml").read_text()
    (root / "inbox/99-key.eml").write_text(email.rstrip("\n") + f"\n\nMy key is {SECRET}, in case you need it.\n")
    assert lane("validate", cwd=root).returncode == 0
    return root


def server_env(**extra: str) -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if k != "LANE_TOKEN"}, "ACME_KEY": SECRET, **extra}


def run(work: Callable[[], Awaitable[T]]) -> T:
    return anyio.run(work)


@contextlib.asynccontextmanager
async def stdio(project: Path, *args: str, env: dict[str, str] | None = None) -> AsyncIterator[mcp.Client]:
    """`lane mcp` over stdio; `--as NAME` gets NAME's sign-in token in LANE_TOKEN unless `env` says otherwise."""
    if env is None:
        env = {"LANE_TOKEN": token(project, args[args.index("--as") + 1])} if "--as" in args else {}
    params = StdioServerParameters(command=sys.executable, args=["-m", "lane", "mcp", "--project", str(project), *args],
                                   env=server_env(**env), cwd=str(project))
    with open(os.devnull, "w") as errlog:
        async with mcp.Client(stdio_client(params, errlog=errlog), cache=None) as client:
            yield client


def answer(result: CallToolResult) -> Any:
    assert not result.is_error, result.content
    return json.loads(result.content[0].text)  # type: ignore[union-attr]


def refusal(result: CallToolResult) -> str:
    assert result.is_error
    message: str = result.content[0].text  # type: ignore[union-attr]
    assert "\n" not in message and "Traceback" not in message
    return message


def test_stdio_lists_runbooks_as_tools_runs_one_and_decides_as_a_person_of_the_role(project: Path) -> None:
    async def work() -> None:
        async with stdio(project, "--as", "lena") as client:
            tools = {t.name: t for t in (await client.list_tools()).tools}
            assert {"run_support-triage", "run_inbox", "run_status", "pending", "show_run", "decide", "task_verify",
                    "context_check", "lock_check", "session_start", "killdates_check"} <= set(tools)
            triage = tools["run_support-triage"]
            assert triage.input_schema["required"] == ["email"] and set(triage.input_schema["properties"]) == {"email", "_wait"}
            assert triage.annotations is not None and triage.annotations.read_only_hint is False
            assert triage.annotations.destructive_hint is True and triage.annotations.open_world_hint is True  # outbox.send: external
            shown = tools["show_run"].annotations
            assert shown is not None and (shown.read_only_hint, shown.destructive_hint) == (True, False)

            started = answer(await client.call_tool("run_support-triage", {"email": "inbox/01-double-charge.eml", "_wait": 60}))
            assert started["status"] == "paused" and started["waiting_for"] == ["support-lead"]
            run_id = started["run_id"]
            [item] = answer(await client.call_tool("pending", {"run_id": run_id}))["pending"]
            assert (item["tool"], item["roles"], item["you_may_decide"]) == ("outbox.send", ["support-lead"], True)
            timeline = answer(await client.call_tool("show_run", {"run_id": run_id}))
            assert [s["id"] for s in timeline["steps"]][:2] == ["read", "classify"] and timeline["status"] == "paused"

            decided = answer(await client.call_tool("decide", {"run_id": run_id, "approve": True, "wait": 60}))
            assert decided["decision"]["decision"] == "approved" and decided["status"] == "completed"
            assert (project / "outbox").is_dir()
            status = answer(await client.call_tool("run_status", {"run_id": run_id[:6]}))
            assert status["status"] == "completed" and status["run_id"] == run_id

            resources = {r.uri for r in (await client.list_resources()).resources}
            assert {"lane://runbooks/support-triage/chart", f"lane://runs/{run_id}"} <= resources
            chart = json.loads((await client.read_resource("lane://runbooks/support-triage/chart")).contents[0].text)  # type: ignore[union-attr]
            assert chart["roles"]["support-lead"]["kind"] == "human"
            assert next(s for s in chart["steps"] if s["id"] == "send")["person_signs_off"] is True
            read = json.loads((await client.read_resource(f"lane://runs/{run_id}")).contents[0].text)  # type: ignore[union-attr]
            assert read["status"] == "completed"
            with pytest.raises(mcp.MCPError, match="no runbook 'nope'"):
                await client.read_resource("lane://runbooks/nope/chart")

    run(work)


def test_a_person_without_the_role_cannot_decide_and_without_as_there_is_no_decide(project: Path) -> None:
    async def work() -> None:
        async with stdio(project, "--as", "sam") as client:
            run_id = answer(await client.call_tool("run_support-triage", {"email": "inbox/01-double-charge.eml", "_wait": 60}))["run_id"]
            message = refusal(await client.call_tool("decide", {"run_id": run_id, "approve": True}))
            assert message == "sam has no role that may decide this (their roles: finance)"
            assert answer(await client.call_tool("run_status", {"run_id": run_id}))["status"] == "paused"  # nothing recorded
        async with stdio(project) as client:
            assert "decide" not in {t.name for t in (await client.list_tools()).tools}
            assert refusal(await client.call_tool("decide", {"run_id": run_id, "approve": True})).startswith("no tool 'decide'")

    run(work)


def test_bad_calls_are_one_line_tool_errors_and_secrets_never_reach_an_answer(project: Path) -> None:
    async def work() -> None:
        async with stdio(project, "--as", "lena") as client:
            assert "'email' is a required property" in refusal(await client.call_tool("run_support-triage", {}))
            assert "_wait must be a number" in refusal(await client.call_tool("run_support-triage", {"email": "x", "_wait": "soon"}))
            assert refusal(await client.call_tool("run_status", {})).startswith("give run_id as text")
            assert "no run 'nope'" in refusal(await client.call_tool("show_run", {"run_id": "nope"}))
            assert refusal(await client.call_tool("run_nothing", {})).startswith("no tool 'run_nothing'")
            assert "approve: true or false" in refusal(await client.call_tool("decide", {"run_id": "x", "approve": "yes"}))

            started = answer(await client.call_tool("run_support-triage", {"email": "inbox/99-key.eml", "_wait": 60}))
            assert started["status"] == "paused"
            for result in [await client.call_tool("show_run", {"run_id": started["run_id"]}),
                           await client.call_tool("pending", {})]:
                shown = result.content[0].text  # type: ignore[union-attr]
                assert SECRET not in shown and SECRET not in json.dumps(result.structured_content)
            assert "[secret:ACME_KEY]" in json.dumps(answer(await client.call_tool("show_run", {"run_id": started["run_id"]})))
            timeline = (await client.read_resource(f"lane://runs/{started['run_id']}")).contents[0].text  # type: ignore[union-attr]
            assert SECRET not in timeline

    run(work)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def http_server(project: Path, *args: str, env: dict[str, str] | None = None, log: Path | None = None) -> Any:
    """`lane mcp --http` in a subprocess, its URL once it listens; its stderr goes to `log` when given."""
    port = free_port()
    errors = open(log, "w") if log else subprocess.PIPE  # noqa: SIM115 - closed below, with the server
    proc = subprocess.Popen([sys.executable, "-m", "lane", "mcp", "--project", str(project), "--http", "--port", str(port), *args],
                            env=server_env(**(env or {})), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=errors)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else log.read_text() if log else ""
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        if proc.stderr:
            proc.stderr.close()
        if log:
            errors.close()  # type: ignore[union-attr]


def token(project: Path, person: str) -> str:
    made = lane("token", "create", person, "--project", str(project), cwd=project)
    assert made.returncode == 0, made.stderr
    return made.stdout.strip()


def test_streamable_http_on_loopback_with_the_persons_token(project: Path) -> None:
    lena = token(project, "lena")
    with http_server(project, "--as", "lena") as url:
        assert httpx2.post(url, json={}).status_code == 401  # no token
        assert httpx2.post(url, json={}, headers={"Authorization": f"Bearer {token(project, 'sam')}"}).status_code == 401

        async def work() -> None:
            async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {lena}"}, timeout=httpx2.Timeout(30, read=120)) as http, \
                    mcp.Client(streamable_http_client(url, http_client=http), cache=None) as client:
                assert "run_support-triage" in {t.name for t in (await client.list_tools()).tools}
                started = answer(await client.call_tool("run_support-triage", {"email": "inbox/01-double-charge.eml", "_wait": 60}))
                assert started["status"] == "paused" and started["waiting_for"] == ["support-lead"]
                decided = answer(await client.call_tool("decide", {"run_id": started["run_id"], "approve": False, "reason": "Not now."}))
                assert decided["status"] == "rejected" and decided["decision"]["decision"] == "rejected"
                assert f"lane://runs/{started['run_id']}" in {r.uri for r in (await client.list_resources()).resources}

        run(work)
        port = int(url.split(":")[2].split("/")[0])
        bound = {line.split()[1] for line in Path("/proc/net/tcp").read_text().splitlines()[1:]
                 if line.split()[3] == "0A" and line.split()[1].endswith(f":{port:04X}")}
        assert bound == {f"0100007F:{port:04X}"}  # listening on 127.0.0.1 alone


@pytest.fixture(scope="session")
def inspector() -> list[str]:
    """The MCP Inspector's CLI, installed from tests/node/package.json's lock on first use (npm must reach the registry)."""
    npm, node = shutil.which("npm"), shutil.which("node")
    assert npm and node, "the Inspector test needs node and npm on PATH"
    installed = NODE / "node_modules" / ".package-lock.json"
    if not installed.exists() or installed.stat().st_mtime < (NODE / "package-lock.json").stat().st_mtime:
        done = subprocess.run([npm, "ci", "--prefix", str(NODE), "--no-audit", "--no-fund"], capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            if os.environ.get("CI"):
                pytest.fail(f"npm could not install the MCP Inspector: {done.stderr[-2000:]}")
            pytest.skip(f"npm could not install the MCP Inspector (no registry?): {done.stderr.strip().splitlines()[-1:]}")
    return [node, str(NODE / "node_modules/@modelcontextprotocol/inspector/clients/launcher/build/index.js"), "--cli"]


def test_the_mcp_inspector_cli_lists_and_calls_the_tools(project: Path, inspector: list[str], tmp_path: Path) -> None:
    server = ["-e", f"LANE_TOKEN={token(project, 'lena')}", sys.executable, "-m", "lane", "mcp", "--project", str(project), "--as", "lena"]
    env = {**server_env(), "HOME": str(tmp_path)}  # the Inspector's catalog file goes there

    def inspect(*args: str) -> Any:
        done = subprocess.run([*inspector, *server, *args], capture_output=True, text=True, timeout=120, env=env, cwd=project)
        assert done.returncode == 0, done.stdout + done.stderr
        return json.loads(done.stdout)

    listed = inspect("--method", "tools/list")
    tools = {t["name"]: t for t in listed["tools"]}
    assert tools["run_support-triage"]["inputSchema"]["required"] == ["email"]
    assert tools["show_run"]["annotations"]["readOnlyHint"] is True
    called = inspect("--method", "tools/call", "--tool-name", "run_support-triage", "--tool-arg", "email=inbox/01-double-charge.eml")
    assert called["structuredContent"]["status"] == "paused"
    assert called["structuredContent"]["waiting_for"] == ["support-lead"]


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)


TASK = """# Task greet (feature hello)

## FILES

- hello.py

## TYPES

```python
def greet() -> str: ...
```

## SKELETON

```python
def greet(): return "hi"
```

## PROHIBITED

- forbid: breakpoint

## VALIDATE

```sh
grep -q greet hello.py
```
"""


def test_the_coding_tools_report_on_a_git_repository(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / "features/hello/tasks").mkdir(parents=True)
    git(repo, "init", "-q")
    git(repo, "config", "user.email", "dev@example.com")
    git(repo, "config", "user.name", "Dev")
    (repo / "log.md").write_text("# Log\n")
    (repo / "canon").mkdir()
    (repo / "canon/product.md").write_text("---\ntier: 1\n---\n# Hello\n\nThe app greets.\n")
    (repo / "features/hello/tasks/greet.md").write_text(TASK)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "start")
    (repo / "hello.py").write_text("def greet():\n    return 'hi'\n")
    (repo / "other.py").write_text("X = 1\n")

    async def work() -> None:
        async with stdio(repo) as client:
            tools = {t.name: t for t in (await client.list_tools()).tools}
            assert set(tools) == {"task_verify", "context_check", "lock_check", "session_start", "killdates_check"}  # no lane.yaml
            verify = tools["task_verify"].annotations
            assert verify is not None and (verify.read_only_hint, verify.destructive_hint) == (False, False)  # writes its evidence
            assert verify.open_world_hint is True  # VALIDATE runs whatever commands the task names
            verified = answer(await client.call_tool("task_verify", {"feature": "hello", "task": "greet"}))
            assert verified["passed"] is False
            files = next(c for c in verified["checks"] if c["name"] == "files")
            assert [v["path"] for v in files["violations"]] == ["other.py"]
            (repo / "other.py").unlink()
            assert answer(await client.call_tool("task_verify", {"feature": "hello", "task": "greet"}))["passed"] is True
            session = answer(await client.call_tool("session_start", {}))
            assert session["git"]["branch"] and "hello.py" in json.dumps(session["git"])
            assert answer(await client.call_tool("killdates_check", {}))["ok"] is True
            context = answer(await client.call_tool("context_check", {}))
            assert context["ok"] is False and "AGENTS.md" in {f["path"] for f in context["findings"]}  # never built
            assert "hello" in refusal(await client.call_tool("lock_check", {"feature": "hello"}))
            assert refusal(await client.call_tool("run_status", {"run_id": "x"})).startswith("no tool 'run_status'")

    run(work)


def test_without_the_extra_or_with_a_bad_person_it_says_how_to_fix_it(project: Path, tmp_path: Path) -> None:
    refused = lane("mcp", "--project", str(project), "--as", "nobody", cwd=tmp_path)
    assert refused.returncode == 2 and "--as 'nobody' is not one of the people" in refused.stderr
    hidden = tmp_path / "hide"
    hidden.mkdir()
    (hidden / "mcp.py").write_text("raise ImportError('hidden for this test')\n")
    (hidden / "sitecustomize.py").write_text(
        "import importlib.util as u\n_f = u.find_spec\nu.find_spec = lambda n, *a: None if n == 'mcp' else _f(n, *a)\n")
    missing = lane("mcp", "--project", str(project), cwd=tmp_path, env={"PYTHONPATH": str(hidden)})
    assert missing.returncode == 2 and "pip install 'lane[mcp]'" in missing.stderr and "Traceback" not in missing.stderr


def test_http_is_refused_without_people_and_never_serves_a_request_without_a_token(project: Path, tmp_path: Path) -> None:
    bare = tmp_path / "bare"
    bare.mkdir()
    refused = lane("mcp", "--project", str(bare), "--http", "--port", str(free_port()), cwd=tmp_path)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    [line] = refused.stderr.strip().splitlines()
    assert "add people: to lane.yaml in" in line and "lane token create NAME" in line
    (project / "lane.yaml").write_text((project / "lane.yaml").read_text().replace(PEOPLE, "\nsecrets: [env:ACME_KEY]\n"))
    assert lane("validate", cwd=project).returncode == 0
    refused = lane("mcp", "--project", str(project), "--http", "--port", str(free_port()), cwd=tmp_path)
    assert refused.returncode == 2
    [line] = refused.stderr.strip().splitlines()
    assert f"add people: to {project / 'lane.yaml'}" in line and "lane token create NAME" in line


def test_http_without_as_takes_a_token_of_any_person_and_nothing_else(project: Path) -> None:
    sam = token(project, "sam")
    with http_server(project) as url:
        assert httpx2.post(url, json={}).status_code == 401
        assert httpx2.post(url, json={}, headers={"Authorization": "Bearer lane_forged"}).status_code == 401

        async def work() -> None:
            async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {sam}"}, timeout=httpx2.Timeout(30, read=120)) as http, \
                    mcp.Client(streamable_http_client(url, http_client=http), cache=None) as client:
                tools = {t.name for t in (await client.list_tools()).tools}
                assert "run_support-triage" in tools and "decide" not in tools

        run(work)


def test_as_a_person_over_stdio_needs_that_persons_token_in_lane_token(project: Path, tmp_path: Path) -> None:
    for env, said in [({}, "--as lena needs lena's sign-in token"),
                      ({"LANE_TOKEN": "lane_forged"}, "LANE_TOKEN is not a sign-in token of lena"),
                      ({"LANE_TOKEN": token(project, "sam")}, "LANE_TOKEN is not a sign-in token of lena")]:
        refused = subprocess.run([sys.executable, "-m", "lane", "mcp", "--project", str(project), "--as", "lena"],
                                 env=server_env(**env), stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60, cwd=tmp_path)
        assert refused.returncode == 2, refused.stderr
        [line] = refused.stderr.strip().splitlines()
        assert said in line and "lane token create lena" in line and '"env": {"LANE_TOKEN": "${LANE_TOKEN}"}' in line
        assert "Traceback" not in refused.stderr

    async def work() -> None:
        async with stdio(project, "--as", "sam") as client:  # sam's own token: sam decides, as finance only
            assert "decide" in {t.name for t in (await client.list_tools()).tools}

    run(work)


STATUS_RUNBOOK = """runbook: status
version: 1
description: A runbook named like a fixed tool.
steps:
  - id: list
    tool: inbox.emails
"""


def test_a_runbook_named_like_a_fixed_tool_never_takes_its_name(project: Path) -> None:
    fixed = ["status", "pending", "show_run", "decide", "task_verify", "status_2"]
    assert tool_names(fixed) == {"run_status_2": "status", "run_status_2_2": "status_2", "run_pending": "pending",
                                 "run_show_run": "show_run", "run_decide": "decide", "run_task_verify": "task_verify"}
    (project / "runbooks/status.yaml").write_text(STATUS_RUNBOOK)
    assert lane("validate", cwd=project).returncode == 0

    async def work() -> None:
        async with stdio(project, "--as", "lena") as client:
            names = [t.name for t in (await client.list_tools()).tools]
            assert len(names) == len(set(names)) and {"run_status", "run_status_2"} <= set(names)
            assert all(re.fullmatch(r"[A-Za-z0-9_.-]{1,128}", name) for name in names)  # the spec's characters for a tool name
            started = answer(await client.call_tool("run_status_2", {"_wait": 60}))
            assert (started["runbook"], started["status"]) == ("status", "completed")
            status = answer(await client.call_tool("run_status", {"run_id": started["run_id"]}))  # the fixed tool still
            assert (status["run_id"], status["status"]) == (started["run_id"], "completed")
            assert "no run" in refusal(await client.call_tool("run_status", {"run_id": "nope"}))

    run(work)


def test_a_store_out_of_reach_while_a_token_is_checked_is_a_503_in_one_json_line(project: Path, postgres: Cluster,
                                                                                 tmp_path: Path) -> None:
    url = postgres.new_database()
    config = (project / "lane.yaml").read_text()
    assert "\nstore: sqlite:///.lane/lane.db\n" in config
    (project / "lane.yaml").write_text(config.replace("\nstore: sqlite:///.lane/lane.db\n", f"\nstore: '{url}'\n"))
    lena, log = token(project, "lena"), tmp_path / "server.log"
    database = url.rsplit("/", 1)[1]
    with http_server(project, log=log) as served:
        headers = {"Authorization": f"Bearer {lena}"}
        assert httpx2.post(served, json={}, headers=headers, timeout=30).status_code != 401  # let in: the MCP app answers
        postgres.admin(f"ALTER DATABASE {database} ALLOW_CONNECTIONS false")
        postgres.admin(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{database}'")
        refused = httpx2.post(served, json={}, headers=headers, timeout=60)
        assert refused.status_code == 503 and refused.headers["content-type"] == "application/json"
        [line] = refused.text.strip().splitlines()
        assert "cannot be reached" in json.loads(line)["error"]
        assert httpx2.post(served, json={}, timeout=60).status_code in (401, 503)  # still nothing without a token
    said = log.read_text()
    assert "Traceback" not in said and "Exception in ASGI application" not in said


def test_a_server_keeps_no_task_of_a_run_that_ended(project: Path) -> None:
    """In the process (the task table is not visible over MCP), on the real project: each run's task is dropped once
    the run completes or waits for a person, and again once the decision's resumption ends."""
    import asyncio

    from lane.mcp.desk import Desk
    from lane.project import Project

    (project / "runbooks/status.yaml").write_text(STATUS_RUNBOOK)

    async def work() -> None:
        desk = Desk(project, Project.load(project), "lena")
        try:
            for _ in range(3):
                done = await desk.call("run_status_2", {"_wait": 60})
                assert done["status"] == "completed"
            paused = await desk.call("run_support-triage", {"email": "inbox/01-double-charge.eml", "_wait": 60})
            assert paused["status"] == "paused"
            await asyncio.sleep(0)  # the tasks' done-callbacks run
            assert desk.executing == {}
            decided = await desk.call("decide", {"run_id": paused["run_id"], "approve": True, "wait": 60})
            assert decided["status"] == "completed"
            await asyncio.sleep(0)
            assert desk.executing == {}
        finally:
            await desk.close()

    run(work)


PEEK_RUNBOOK = """runbook: peek
version: 1
description: What a command a run starts finds in its environment.
steps:
  - id: look
    tool: peek
"""


def test_the_token_in_lane_token_never_reaches_a_command_a_run_starts(project: Path) -> None:
    (project / "scripts/peek.py").write_text("import json, os\nprint(json.dumps({'token': os.environ.get('LANE_TOKEN', 'unset')}))\n")
    config = (project / "lane.yaml").read_text()
    (project / "lane.yaml").write_text(config.replace(
        "toolsets:\n", f"toolsets:\n  peek: {{command: ['{sys.executable}', scripts/peek.py], effect: read}}\n", 1))
    (project / "runbooks/peek.yaml").write_text(PEEK_RUNBOOK)
    assert lane("validate", cwd=project).returncode == 0
    lena = token(project, "lena")

    async def work() -> None:
        async with stdio(project, "--as", "lena", env={"LANE_TOKEN": lena}) as client:
            done = answer(await client.call_tool("run_peek", {"_wait": 60}))
            assert done["status"] == "completed", done
            assert lena not in json.dumps(done) and "unset" in json.dumps(done["output"])

    run(work)
