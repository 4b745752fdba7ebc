"""One live connection to an MCP server, held by a task of its own.

The SDK is built on anyio: a client's context must be entered and left in the same
task. A toolset is called from many tasks, so each connection gets an owner task
that enters `mcp.Client`, serves requests from a queue, and leaves it when closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shlex
import signal
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any, TextIO, cast

import anyio
import httpx2
import mcp
from mcp.client.stdio import StdioServerParameters, get_default_environment, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp_types import CONNECTION_CLOSED, REQUEST_TIMEOUT, CallToolResult, Tool

from lane.errors import ToolError
from lane.tools.command import find_executable

if TYPE_CHECKING:
    from lane.tools.mcp import McpServerConfig

_ENV_REF = re.compile(r"env:([A-Za-z_][A-Za-z0-9_]*)")
_PID_LINE = "lane-mcp-pid "
# `exec` keeps the pid, so the line the shell writes first names the server itself: the SDK does not expose it.
_REPORT_PID = f'echo "{_PID_LINE}$$" >&2; exec "$@"'
_STDERR_TAIL = 2000
_CLOSE_WAIT = 10.0  # the SDK's own shutdown is bounded (stdin closed, then SIGTERM, then SIGKILL) well within this
_LOST = (anyio.ClosedResourceError, anyio.BrokenResourceError, anyio.EndOfStream, httpx2.TransportError, OSError)


class ConnectionLost(Exception):
    """The server went away, or the connection to it broke."""


def expand_env(value: str, where: str) -> str:
    """`value` with every `env:NAME` replaced by that environment variable."""

    def lookup(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in os.environ:
            raise ToolError(f"{where} refers to the environment variable {name}, which is not set; set it and run again")
        return os.environ[name]

    return _ENV_REF.sub(lookup, value)


@dataclass
class _Request:
    work: Callable[[mcp.Client], Awaitable[Any]]
    future: asyncio.Future[Any] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class ServerConnection:
    """A started server (or an HTTP session) and the task that owns its client."""

    def __init__(self, config: McpServerConfig) -> None:
        self.config = config
        self.pid: int | None = None
        self._queue: asyncio.Queue[_Request | None] = asyncio.Queue()
        self._ready = asyncio.get_running_loop().create_future()
        self._error: BaseException | None = None
        self._task: asyncio.Task[None] | None = None
        self._errlog: IO[str] | None = None
        self._stdio: StdioServerParameters | None = None
        self._headers: dict[str, str] = {}
        if config.url is not None:
            self._headers = {k: expand_env(v, f"a header of MCP server '{config.name}'") for k, v in config.headers.items()}
        else:
            self._stdio = self._stdio_params()
            self._errlog = tempfile.TemporaryFile("w+", encoding="utf-8")

    @classmethod
    async def open(cls, config: McpServerConfig) -> ServerConnection:
        """Start the server and finish the handshake; ToolError (with its stderr) if it cannot."""
        conn = cls(config)
        conn._task = task = asyncio.create_task(conn._own(), name=f"lane mcp server {config.name}")
        try:
            await asyncio.wait({conn._ready, task}, timeout=config.start_timeout, return_when=asyncio.FIRST_COMPLETED)
        except BaseException:
            await conn.aclose()
            raise
        conn.pid = conn._read_pid()
        if conn._ready.done():
            return conn
        timed_out = not task.done()
        await conn._stop(now=timed_out)
        error = conn._cannot_start(f"no handshake within {config.start_timeout:g} s" if timed_out else _describe(conn._error))
        await conn.aclose()
        raise error from conn._error

    def alive(self) -> bool:
        if self._task is None or self._task.done():
            return False
        if self.pid is None:
            return True
        try:
            os.kill(self.pid, 0)
        except (ProcessLookupError, PermissionError):  # gone (PermissionError: its pid is another user's now)
            return False
        return not _zombie(self.pid)

    async def list_tools(self) -> list[Tool]:
        async def work(client: mcp.Client) -> list[Tool]:
            tools: list[Tool] = []
            cursor: str | None = None
            while True:
                page = await client.list_tools(cursor=cursor)
                tools += page.tools
                if not (cursor := page.next_cursor):
                    return tools

        return cast(list[Tool], await self._request(work))

    async def call_tool(self, name: str, args: dict[str, Any]) -> CallToolResult:
        timeout = self.config.timeout

        async def work(client: mcp.Client) -> CallToolResult:
            return await client.call_tool(name, args, read_timeout_seconds=timeout)

        try:
            return cast(CallToolResult, await self._request(work))
        except MCPError as exc:
            if exc.code == REQUEST_TIMEOUT:
                raise ToolError(f"the MCP tool '{self.config.name}.{name}' did not answer within {timeout:g} s") from exc
            raise ToolError(f"the MCP server '{self.config.name}' refused the call to {name}: {exc.message}") from exc

    async def aclose(self) -> None:
        """Leave the client (the SDK stops the server process) and wait for the owner task."""
        await self._stop()
        if self.pid is not None:  # the server has exited; whatever it started in its process group goes too
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, signal.SIGKILL)
        if self._errlog is not None:
            self._errlog.close()

    async def _stop(self, *, now: bool = False) -> None:
        """End the owner task: by its queue, or by cancelling it (`now`, or when that does not end it)."""
        if self._task is not None and not self._task.done():
            self._queue.put_nowait(None)
            await asyncio.wait({self._task}, timeout=0 if now else _CLOSE_WAIT)
            if not self._task.done():  # in the handshake, it reads no queue; the SDK still stops the process
                self._task.cancel()
                await asyncio.wait({self._task})

    def stderr(self) -> str:
        """The last ~2000 characters the server wrote to stderr."""
        if self._errlog is None or self._errlog.closed:
            return ""
        fd = self._errlog.fileno()
        size = os.fstat(fd).st_size
        start = max(0, size - _STDERR_TAIL - 200)
        text = os.pread(fd, size - start, start).decode("utf-8", errors="replace")
        if start == 0 and text.startswith(_PID_LINE):
            text = text.partition("\n")[2]
        return text[-_STDERR_TAIL:].strip()

    async def _request(self, work: Callable[[mcp.Client], Awaitable[Any]]) -> Any:
        task = self._task
        if task is None or task.done():
            raise ConnectionLost
        request = _Request(work)
        future = request.future
        self._queue.put_nowait(request)
        try:
            await asyncio.wait({future, task}, return_when=asyncio.FIRST_COMPLETED)
        except BaseException:  # our caller was cancelled: so is the call
            if future.done() and not future.cancelled():
                future.exception()  # retrieved, so nothing is logged as lost
            future.cancel()
            raise
        if not future.done():  # the owner task ended first
            future.cancel()
        if future.cancelled():
            raise ConnectionLost
        try:
            return future.result()
        except MCPError as exc:
            if exc.code == CONNECTION_CLOSED:
                raise ConnectionLost from exc
            raise
        except _LOST as exc:
            raise ConnectionLost from exc

    async def _own(self) -> None:
        try:
            async with self._client() as client, anyio.create_task_group() as group:
                self._ready.set_result(None)
                while (request := await self._queue.get()) is not None:
                    group.start_soon(_serve, client, request)
                group.cancel_scope.cancel()
        except Exception as exc:  # a broken transport ends here; callers see the task done and restart
            self._error = exc

    @contextlib.asynccontextmanager
    async def _client(self) -> AsyncIterator[mcp.Client]:
        config = self.config
        async with contextlib.AsyncExitStack() as stack:
            if self._stdio is not None and self._errlog is not None:
                client = mcp.Client(stdio_client(self._stdio, errlog=cast(TextIO, self._errlog)), cache=None)
            else:
                assert config.url is not None
                http = httpx2.AsyncClient(headers=self._headers, timeout=httpx2.Timeout(30, read=300))
                await stack.enter_async_context(http)
                client = mcp.Client(streamable_http_client(config.url, http_client=http), cache=None)
            yield await stack.enter_async_context(client)

    def _stdio_params(self) -> StdioServerParameters:
        config = self.config
        assert config.command is not None
        env = {k: expand_env(v, f"the env of MCP server '{config.name}'") for k, v in config.env.items()}
        found = find_executable(config.command, config.cwd, (get_default_environment() | env).get("PATH"))
        if found is None:
            raise self._cannot_start(f"the command {config.command!r} is not found" + ("" if "/" in config.command else " on PATH"))
        args = ["-c", _REPORT_PID, "lane-mcp", config.command if "/" in config.command else found, *config.args]
        return StdioServerParameters(command="/bin/sh", args=args, env=env, cwd=config.cwd)

    def _read_pid(self) -> int | None:
        if self._errlog is None:
            return None
        first = os.pread(self._errlog.fileno(), 64, 0).decode("ascii", errors="replace").partition("\n")[0]
        return int(first[len(_PID_LINE) :]) if first.startswith(_PID_LINE) else None

    def _cannot_start(self, why: str) -> ToolError:
        config = self.config
        what = shlex.join([config.command, *config.args]) if config.command else config.url
        stderr = self.stderr()
        tail = f"\nits stderr:\n{stderr}" if stderr else ("\nit wrote nothing to stderr" if self._errlog else "")
        failed = "could not start" if config.command else "could not be reached"
        return ToolError(f"the MCP server '{config.name}' {failed} ({what}): {why}{tail}")


async def _serve(client: mcp.Client, request: _Request) -> None:
    future = request.future
    with anyio.CancelScope() as scope:
        future.add_done_callback(lambda f: scope.cancel() if f.cancelled() else None)  # the caller gave up
        try:
            result = await request.work(client)
        except Exception as exc:
            if not future.done():
                future.set_exception(exc)
        else:
            if not future.done():
                future.set_result(result)
        finally:
            if not future.done():  # the connection is being torn down under this call
                future.cancel()


def _describe(exc: BaseException | None) -> str:
    if isinstance(exc, ToolError):
        return str(exc)
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(_describe(e) for e in exc.exceptions)
    if isinstance(exc, MCPError) and exc.code == CONNECTION_CLOSED:
        return "it exited, or closed its output, during the handshake"
    return f"{type(exc).__name__}: {exc}" if exc is not None else "it stopped"



def _zombie(pid: int) -> bool:
    """Whether the process has exited but is not yet reaped (it still answers signal 0)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] == b"Z"
    except (OSError, IndexError):
        return False  # no /proc (not Linux): signal 0 is all there is
