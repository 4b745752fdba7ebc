"""`lane mcp`: the desk's tools and resources spoken as MCP (the official SDK's low-level server), over stdio or
streamable HTTP on loopback.

Every answer is JSON text (and the same data as structured content), redacted as `lane show --json` is. A call the
caller got wrong is a tool error with a one-line message; a defect of lane's own is one too, never a traceback.
Over HTTP every request carries `Authorization: Bearer TOKEN` (`lane token create NAME`) of the person the server runs
as (`--as`), or of any of lane.yaml's `people:` when it runs as nobody; `lane mcp` refuses `--http` without people.
"""

from __future__ import annotations

import json
from typing import Any

import mcp_types as types
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server
from mcp.shared.exceptions import MCPError

from lane.errors import LaneError
from lane.mcp.desk import Desk, answer_text
from lane.mcp.tooling import Refused, ToolDef

RESOURCE_NOT_FOUND = -32002  # the MCP specification's code for a resource that does not exist
INSTRUCTIONS = (
    "lane runs a project's runbooks: each run_RUNBOOK tool starts a run and answers with its status; a run that waits "
    "for a person says so (status paused, waiting_for). run_status, pending and show_run read runs; decide, when "
    "offered, approves or rejects as the person this server runs as. The coding tools report on the repository."
)


def build(desk: Desk) -> Server[Any]:
    """The MCP server over `desk`."""
    from lane import __version__

    async def list_tools(ctx: Any, params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
        return types.ListToolsResult(tools=[_tool(tool) for tool in desk.tools()])

    async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        try:
            data = await desk.call(params.name, params.arguments or {})
        except Refused as exc:
            return _error(str(exc))
        except Exception as exc:  # a defect of lane's own: one line, as the CLI says it  # noqa: BLE001
            return _error(f"internal error: {type(exc).__name__}: {exc} (a defect of lane's, please report it)")
        shown = answer_text(data)
        return types.CallToolResult(content=[types.TextContent(text=shown)], structured_content=json.loads(shown))

    async def list_resources(ctx: Any, params: types.PaginatedRequestParams | None) -> types.ListResourcesResult:
        return types.ListResourcesResult(resources=[
            types.Resource(uri=r.uri, name=r.name, title=r.title, description=r.description, mime_type=r.mime_type)
            for r in desk.resources()])

    async def list_templates(ctx: Any, params: types.PaginatedRequestParams | None) -> types.ListResourceTemplatesResult:
        runs = [types.ResourceTemplate(uri_template="lane://runs/{run_id}", name="run", title="A run's timeline",
                                       description="The timeline of any run, by its id or a unique prefix of one.",
                                       mime_type="application/json")]
        return types.ListResourceTemplatesResult(resource_templates=runs if desk.project is not None else [])

    async def read_resource(ctx: Any, params: types.ReadResourceRequestParams) -> types.ReadResourceResult:
        try:
            data = desk.read(str(params.uri))
        except Refused as exc:
            raise MCPError(RESOURCE_NOT_FOUND, _one_line(str(exc))) from None
        return types.ReadResourceResult(contents=[
            types.TextResourceContents(uri=str(params.uri), mime_type="application/json", text=answer_text(data))])

    return Server("lane", version=__version__, title="lane", instructions=INSTRUCTIONS,
                  on_list_tools=list_tools, on_call_tool=call_tool, on_list_resources=list_resources,
                  on_list_resource_templates=list_templates, on_read_resource=read_resource)


def _tool(tool: ToolDef) -> types.Tool:
    return types.Tool(name=tool.name, title=tool.title, description=tool.description, input_schema=tool.schema,
                      annotations=types.ToolAnnotations(title=tool.title, read_only_hint=tool.read_only,
                                                        destructive_hint=tool.destructive, idempotent_hint=tool.idempotent,
                                                        open_world_hint=tool.open_world))


def _one_line(message: str) -> str:
    from lane.secrets import scrub

    return scrub(" ".join(message.split()))


def _error(message: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(text=_one_line(message))], is_error=True)


async def serve_stdio(desk: Desk) -> None:
    """Serve one client over stdin and stdout until it closes them; runs still executing stay resumable."""
    server = build(desk)
    try:
        async with stdio_server() as (read, write):
            await server.run(read, write, server.create_initialization_options())
    finally:
        await desk.close()


async def serve_http(desk: Desk, port: int) -> None:
    """Serve streamable HTTP at http://127.0.0.1:PORT/mcp until interrupted (loopback only)."""
    import uvicorn

    app = build(desk).streamable_http_app(host="127.0.0.1")
    config = uvicorn.Config(_Tokens(app, desk), host="127.0.0.1", port=port, log_level="warning", timeout_graceful_shutdown=2,
                            proxy_headers=False, lifespan="on")
    server = uvicorn.Server(config)
    try:
        await server.serve()
    finally:
        await desk.close()


class _Tokens:
    """Lets through only requests with a sign-in token of the person the server runs as (any of `people:` without one);
    nothing without a token, whatever lane.yaml says."""

    def __init__(self, app: Any, desk: Desk) -> None:
        self.app, self.desk = app, desk

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "websocket":  # not a transport of MCP's: refused before it is accepted
            await send({"type": "websocket.close", "code": 1008})
            return
        if scope["type"] == "http":
            headers = dict(scope.get("headers") or ())
            scheme, _, token = headers.get(b"authorization", b"").decode("latin-1").partition(" ")
            project = self.desk.project
            try:
                person = project.person_of(token.strip()) if project is not None and scheme.lower() == "bearer" else None
            except LaneError as exc:  # the store cannot be reached (or the like): said in one line, as the CLI says it
                await _reply(send, 503, str(exc))
                return
            except Exception as exc:  # a defect of lane's own: one line too, never a traceback  # noqa: BLE001
                await _reply(send, 500, f"internal error: {type(exc).__name__}: {exc} (a defect of lane's, please report it)")
                return
            if person is None or (self.desk.person is not None and person != self.desk.person):
                who = self.desk.person or "one of the people in lane.yaml"
                await _reply(send, 401, f"send Authorization: Bearer TOKEN of {who} (lane token create NAME)",
                             [(b"www-authenticate", b"Bearer")])
                return
        await self.app(scope, receive, send)


async def _reply(send: Any, status: int, message: str, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    """Answer `{"error": message}` (one line, secrets scrubbed) with `status`."""
    body = json.dumps({"error": _one_line(message)}, ensure_ascii=False).encode() + b"\n"
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), *(headers or [])]})
    await send({"type": "http.response.body", "body": body})
