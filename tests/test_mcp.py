"""MCP toolsets against real servers: the filesystem and everything servers from npm,
the time server from PyPI, and a small Python server with a slow tool that promises nothing.

The npm servers are pinned in tests/mcp_servers/package.json and installed from its lock
on first use; they run with `node`, so no network is needed at test time. Covered: tool
names and effects from annotations, results as data, tool errors, `effects:` overrides,
`env:NAME` in env and headers, streamable HTTP, a server killed between calls and during
one, servers that cannot start, and no process or task left behind by `aclose()`.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Awaitable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from conftest import TIME_SERVER, NodeServers
from lane.errors import ToolError
from lane.tools.base import ToolArgsInvalid, ToolContext
from lane.tools.mcp import McpServerConfig, McpToolset

T = TypeVar("T")

# A server whose one tool has no annotations (so: external, not idempotent) and can be made slow.
# It logs each call's start and end, so a test can see whether a call ran twice.
SLOW_SERVER = """
    import sys, time
    from mcp.server.mcpserver import MCPServer

    server = MCPServer("slow")

    @server.tool()
    def append(text: str, seconds: float = 0) -> str:
        \"\"\"Append a line to the log, after a pause.\"\"\"
        with open(sys.argv[1], "a") as log:
            log.write(f"start {text}\\n")
        time.sleep(seconds)
        with open(sys.argv[1], "a") as log:
            log.write(f"done {text}\\n")
        return f"appended {text}"

    server.run("stdio")
"""


def run(work: Awaitable[T]) -> T:
    """Run `work` in a fresh event loop; fail if it leaves a task running or the loop reports an error."""
    problems: list[dict[str, Any]] = []

    async def main() -> T:
        asyncio.get_running_loop().set_exception_handler(lambda loop, context: problems.append(context))
        result = await work
        assert asyncio.all_tasks() == {asyncio.current_task()}, "a task outlived the toolset"
        return result

    result = asyncio.run(main())
    assert not problems, problems
    return result


async def closing(toolset: McpToolset, work: Awaitable[T]) -> T:
    try:
        return await work
    finally:
        await toolset.aclose()


def gone(pgid: int) -> bool:
    """Whether nothing is left running in the process group a server led (a zombie counts as gone)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, _ppid, group = stat.read_text().rsplit(")", 1)[1].split()[:3]
        except (OSError, ValueError):
            continue  # it ended while we looked
        if int(group) == pgid and state not in ("Z", "X"):
            return False
    return True


async def kill(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while not gone(pid):
        assert time.monotonic() < deadline, f"process {pid} survived SIGKILL"
        await asyncio.sleep(0.01)


def everything(node_servers: NodeServers, **config: Any) -> McpToolset:
    return McpToolset(McpServerConfig("ev", command="node", args=(str(node_servers.everything), "stdio"), **config))


def slow_server(tmp_path: Path, **config: Any) -> tuple[McpToolset, Path]:
    script, log = tmp_path / "slow_server.py", tmp_path / "calls.log"
    script.write_text(textwrap.dedent(SLOW_SERVER))
    return McpToolset(McpServerConfig("slow", command=sys.executable, args=(str(script), str(log)), **config)), log


CTX = ToolContext(run_id="r1", step_id="s1", call_id="c1", idempotency_key="k1", project_dir=Path("."))


def test_filesystem_server_reads_and_writes_files_with_effects_from_its_annotations(node_servers: NodeServers, tmp_path: Path) -> None:
    root = tmp_path / "data"
    root.mkdir()
    (root / "notes.txt").write_text("first line\n")
    fs = McpToolset(McpServerConfig("fs", command="node", args=(str(node_servers.filesystem), str(root))))

    async def work() -> None:
        tools = {t.name: t for t in await fs.tools()}
        assert {"fs.read_text_file", "fs.write_file", "fs.list_directory", "fs.create_directory"} <= set(tools)
        assert tools["fs.read_text_file"].effect == "read" and tools["fs.read_text_file"].idempotent
        assert tools["fs.write_file"].effect == "external"  # destructiveHint: it overwrites
        assert tools["fs.create_directory"].effect == "write"  # neither read-only nor destructive
        assert tools["fs.read_text_file"].parameters["required"] == ["path"]

        read, write = tools["fs.read_text_file"], tools["fs.write_file"]
        assert await read.invoke({"path": str(root / "notes.txt")}, CTX) == {"content": "first line\n"}
        await write.invoke({"path": str(root / "new.txt"), "content": "written by lane"}, CTX)
        assert (root / "new.txt").read_text() == "written by lane"
        listing = await tools["fs.list_directory"].invoke({"path": str(root)}, CTX)
        assert "[FILE] new.txt" in listing["content"]

        assert write.subjects({"path": "data/new.txt", "content": "x"}) == ["data/new.txt", "x"]  # the path first, then every other string
        assert tools["fs.read_multiple_files"].subjects({"paths": ["a", "b"]}) == ["a", "b"]
        with pytest.raises(ToolArgsInvalid, match="arguments: 'path' is a required property"):
            read.check_args({"head": 3})
        with pytest.raises(ToolError, match="outside allowed directories|Access denied"):
            await read.invoke({"path": str(tmp_path / "elsewhere.txt")}, CTX)

    run(closing(fs, work()))


def test_everything_server_over_stdio(node_servers: NodeServers, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LANE_TEST_MCP_VALUE", "from-the-environment")
    ev = everything(node_servers, effects={"get-sum": "external"}, env={"LANE_TEST_SEEN": "value env:LANE_TEST_MCP_VALUE"})

    async def work() -> None:
        tools = {t.name: t for t in await ev.tools()}
        assert tools["ev.echo"].effect == "read" and tools["ev.echo"].description == "Echoes back the input string"
        assert tools["ev.toggle-simulated-logging"].effect == "write" and not tools["ev.toggle-simulated-logging"].idempotent
        assert tools["ev.get-sum"].effect == "external"  # the override beats readOnlyHint
        assert tools["ev.get-sum"].idempotent  # idempotentHint still holds

        assert await ev.call("echo", {"message": "hi"}) == "Echo: hi"
        assert await asyncio.gather(*(ev.call("echo", {"message": m}) for m in "abc")) == ["Echo: a", "Echo: b", "Echo: c"]
        assert await ev.call("get-structured-content", {"location": "New York"}) == {
            "temperature": 33, "conditions": "Cloudy", "humidity": 82,
        }
        text, image, caption = await ev.call("get-tiny-image", {})
        assert image["type"] == "image" and image["mimeType"] == "image/png" and image["dataLength"] > 1000
        assert "data" not in image
        assert "value from-the-environment" in await ev.call("get-env", {})
        with pytest.raises(ToolError, match="Invalid arguments for tool get-sum"):
            await ev.call("get-sum", {"a": "one"})

    run(closing(ev, work()))


def test_time_server_from_pypi(tmp_path: Path) -> None:
    time_server = McpToolset(McpServerConfig("time", command=str(TIME_SERVER)))

    async def work() -> None:
        tools = {t.name: t for t in await time_server.tools()}
        assert tools["time.get_current_time"].effect == "read"
        now = await tools["time.get_current_time"].invoke({"timezone": "Europe/Paris"}, CTX)
        assert now["timezone"] == "Europe/Paris" and now["datetime"][-6:] in ("+01:00", "+02:00")

    run(closing(time_server, work()))


@pytest.fixture
def everything_over_http(node_servers: NodeServers, tmp_path: Path) -> Iterator[int]:
    """server-everything's streamable HTTP transport on a free loopback port."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with open(tmp_path / "http-server.log", "w") as log:
        proc = subprocess.Popen(
            ["node", str(node_servers.everything), "streamableHttp"], env={**os.environ, "PORT": str(port)},
            stdin=subprocess.DEVNULL, stdout=log, stderr=log,
        )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "http-server.log").read_text()
                time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


async def recording_proxy(port: int, seen: bytearray) -> asyncio.Server:
    """A loopback TCP proxy to `port` that keeps every byte the client sends."""

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, record: bool) -> None:
        try:
            while data := await reader.read(65536):
                if record:
                    seen.extend(data)
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def serve(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        server_reader, server_writer = await asyncio.open_connection("127.0.0.1", port)
        await asyncio.gather(pipe(client_reader, server_writer, True), pipe(server_reader, client_writer, False))

    return await asyncio.start_server(serve, "127.0.0.1", 0)


def test_streamable_http_with_a_header_from_the_environment(everything_over_http: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LANE_TEST_MCP_TOKEN", "s3cret-token")
    seen = bytearray()

    async def work() -> None:
        proxy = await recording_proxy(everything_over_http, seen)
        port = proxy.sockets[0].getsockname()[1]
        config = McpServerConfig("web", url=f"http://127.0.0.1:{port}/mcp", headers={"Authorization": "Bearer env:LANE_TEST_MCP_TOKEN"})
        web = McpToolset(config)
        try:
            assert "web.echo" in {t.name for t in await web.tools()}
            assert web.pid is None
            assert await web.call("echo", {"message": "over http"}) == "Echo: over http"
        finally:
            await web.aclose()
            proxy.close()
            await proxy.wait_closed()
            await asyncio.sleep(0.05)  # the proxy's pipes see the closed connections and end

    run(work())
    assert b"authorization: bearer s3cret-token" in seen.lower()

    monkeypatch.delenv("LANE_TEST_MCP_TOKEN")
    web = McpToolset(McpServerConfig("web", url=f"http://127.0.0.1:{everything_over_http}/mcp", headers={"Authorization": "Bearer env:LANE_TEST_MCP_TOKEN"}))
    with pytest.raises(ToolError, match="LANE_TEST_MCP_TOKEN, which is not set"):
        run(closing(web, web.tools()))


def test_a_server_killed_between_calls_is_restarted(tmp_path: Path) -> None:
    slow, log = slow_server(tmp_path)

    async def work() -> None:
        tools = {t.name: t for t in await slow.tools()}
        assert tools["slow.append"].effect == "external" and not tools["slow.append"].idempotent  # no annotations
        assert await slow.call("append", {"text": "one"}) == {"result": "appended one"}
        first = slow.pid
        assert first is not None
        await kill(first)
        # Not idempotent, so this passes only if the dead server was seen and replaced before the call.
        assert await slow.call("append", {"text": "two"}) == {"result": "appended two"}
        assert slow.pid not in (None, first)

    run(closing(slow, work()))
    assert log.read_text().split("\n") == ["start one", "done one", "start two", "done two", ""]


def test_a_server_killed_during_a_call_that_may_have_taken_effect_is_restarted_without_a_retry(tmp_path: Path) -> None:
    slow, log = slow_server(tmp_path)

    async def work() -> None:
        await slow.tools()
        first = slow.pid
        assert first is not None
        call = asyncio.create_task(slow.call("append", {"text": "slow", "seconds": 30}))
        while "start slow" not in (log.read_text() if log.exists() else ""):
            await asyncio.sleep(0.02)
        await kill(first)
        with pytest.raises(ToolError) as caught:
            await call
        assert str(caught.value) == (
            "the MCP server 'slow' stopped during the call; it was restarted, "
            "but this call is not retried because the tool may have taken effect"
        )
        assert slow.pid not in (None, first)
        assert await slow.call("append", {"text": "next"}) == {"result": "appended next"}

    run(closing(slow, work()))
    assert log.read_text().split("\n") == ["start slow", "start next", "done next", ""]


def test_a_read_only_call_cut_off_by_a_dying_server_is_retried(node_servers: NodeServers) -> None:
    ev = everything(node_servers)

    async def work() -> None:
        tools = {t.name: t for t in await ev.tools()}
        assert tools["ev.trigger-long-running-operation"].idempotent  # readOnlyHint and idempotentHint
        first = ev.pid
        assert first is not None
        call = asyncio.create_task(ev.call("trigger-long-running-operation", {"duration": 1.5, "steps": 1}))
        await asyncio.sleep(0.5)
        await kill(first)
        assert await call == "Long running operation completed. Duration: 1.5 seconds, Steps: 1."
        assert ev.pid not in (None, first)

    run(closing(ev, work()))


def test_a_call_past_its_timeout_fails_and_the_server_serves_the_next(tmp_path: Path) -> None:
    slow, log = slow_server(tmp_path, timeout=0.5)

    async def work() -> None:
        with pytest.raises(ToolError, match=r"the MCP tool 'slow.append' did not answer within 0.5 s"):
            await slow.call("append", {"text": "late", "seconds": 1})
        assert await slow.call("append", {"text": "next"}) == {"result": "appended next"}

    run(closing(slow, work()))


def test_a_cancelled_call_leaves_the_toolset_usable(node_servers: NodeServers) -> None:
    ev = everything(node_servers)

    async def work() -> None:
        call = asyncio.create_task(ev.call("trigger-long-running-operation", {"duration": 30, "steps": 1}))
        await asyncio.sleep(0.5)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        assert await ev.call("echo", {"message": "still here"}) == "Echo: still here"

    run(closing(ev, work()))


def test_servers_that_cannot_start_say_why(tmp_path: Path) -> None:
    script = tmp_path / "broken.js"
    script.write_text('console.error("boom: missing config"); process.exit(1);\n')
    cases = [
        (McpServerConfig("bad", command="node", args=(str(script), "--verbose")), ["boom: missing config", f"(node {script} --verbose)"]),
        (McpServerConfig("nope", command="false"), ["'nope' could not start (false)", "it wrote nothing to stderr"]),
        (McpServerConfig("missing", command="no-such-mcp-server"), ["'no-such-mcp-server' is not found on PATH"]),
    ]
    for config, expected in cases:
        toolset = McpToolset(config)
        with pytest.raises(ToolError) as caught:
            run(closing(toolset, toolset.tools()))
        for text in expected:
            assert text in str(caught.value)
        with pytest.raises(ToolError):  # a later call tries again, and fails the same way
            run(closing(toolset, toolset.call("anything", {})))


def test_a_server_that_never_answers_times_out_and_is_stopped(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    silent = McpToolset(McpServerConfig("silent", command="sh", args=("-c", f"echo $$ > {pid_file}; exec sleep 60"), start_timeout=0.5))
    with pytest.raises(ToolError, match=r"'silent' could not start .*: no handshake within 0.5 s"):
        run(closing(silent, silent.tools()))
    assert gone(int(pid_file.read_text()))


def test_a_missing_env_variable_is_named(node_servers: NodeServers) -> None:
    ev = everything(node_servers, env={"TOKEN": "env:LANE_TEST_MCP_UNSET"})
    with pytest.raises(ToolError, match="env of MCP server 'ev' refers to the environment variable LANE_TEST_MCP_UNSET"):
        run(closing(ev, ev.tools()))


def test_aclose_leaves_no_server_process(node_servers: NodeServers, tmp_path: Path) -> None:
    toolsets = [
        McpToolset(McpServerConfig("fs", command="node", args=(str(node_servers.filesystem), str(tmp_path)))),
        everything(node_servers),
        McpToolset(McpServerConfig("time", command=str(TIME_SERVER))),
        McpToolset(McpServerConfig("forks", command="sh", args=("-c", f"sleep 60 & exec node {node_servers.everything} stdio"))),
    ]

    async def work() -> list[int]:
        await asyncio.gather(*(t.tools() for t in toolsets))
        pids = [t.pid for t in toolsets]
        assert all(pid is not None and not gone(pid) for pid in pids)
        await asyncio.gather(*(t.aclose() for t in toolsets))
        assert all(t.pid is None for t in toolsets)
        return [pid for pid in pids if pid is not None]

    pids = run(work())
    assert all(gone(pid) for pid in pids)
