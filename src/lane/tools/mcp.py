"""MCP toolsets: the tools of a Model Context Protocol server, as lane tools.

A toolset starts its server on first use (a command over stdio, or a URL over
streamable HTTP), lists its tools once, and restarts a server that died: a call
made after the death runs on the new server; a call cut off by it is retried
only when the tool is read-only or idempotent.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jsonschema import Draft202012Validator, SchemaError
from jsonschema.protocols import Validator
from jsonschema.validators import validator_for

from lane.errors import ToolError
from lane.tools.base import EFFECTS, Effect, Lane, ToolArgsInvalid, ToolContext, string_arguments
from lane.tools.mcp_client import ConnectionLost, ServerConnection  # ImportError without the mcp extra

if TYPE_CHECKING:
    from mcp_types import CallToolResult, ContentBlock, Tool

_PATH_ARGS = ("path", "paths", "source", "destination")


@dataclass(frozen=True)
class McpServerConfig:
    """One `toolsets: NAME: {mcp: ...}` entry: a `command` to run, or a `url` to reach.

    `env:NAME` anywhere in an `env` or `headers` value is replaced by that environment
    variable when the server is started. `effects` overrides, by tool name, the effect
    read from the server's annotations. `timeout` bounds each call, `start_timeout`
    the start and handshake.
    """

    name: str
    command: str | None = None
    args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path = Path(".")
    url: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    effects: dict[str, Effect] = field(default_factory=dict)
    timeout: float = 60.0
    start_timeout: float = 30.0

    def __post_init__(self) -> None:
        if (self.command is None) == (self.url is None):
            raise ValueError(f"MCP server '{self.name}': give either a command or a url")
        for tool, effect in self.effects.items():
            if effect not in EFFECTS:
                raise ValueError(f"MCP server '{self.name}': effects.{tool} must be one of {', '.join(EFFECTS)}")


class McpToolset:
    """The tools of one MCP server. Safe to call from many tasks; `aclose()` stops the server."""

    def __init__(self, config: McpServerConfig) -> None:
        self.config = config
        self._conn: ServerConnection | None = None
        self._tools: dict[str, McpTool] = {}
        self._lock = asyncio.Lock()

    @property
    def pid(self) -> int | None:
        """The process id of a running stdio server; None before the start and for URL servers."""
        return self._conn.pid if self._conn is not None else None

    async def tools(self) -> list[McpTool]:
        """The server's tools, named `toolset.tool`; listed on the first call and after each restart."""
        if self._conn is None:
            await self._connection()
        return list(self._tools.values())

    async def call(self, tool: str, args: dict[str, Any]) -> Any:
        """Call a tool by its name on the server; returns JSON-able data, raises ToolError."""
        conn = await self._connection()
        try:
            return result_data(await conn.call_tool(tool, args))
        except ConnectionLost:
            pass
        conn = await self._connection(replacing=conn)
        known = self._tools.get(tool)
        if known is None or not known.idempotent:
            raise ToolError(
                f"the MCP server '{self.config.name}' stopped during the call; it was restarted, "
                "but this call is not retried because the tool may have taken effect"
            )
        try:
            return result_data(await conn.call_tool(tool, args))
        except ConnectionLost as exc:
            raise ToolError(f"the MCP server '{self.config.name}' stopped during the call, and again during its retry") from exc

    async def aclose(self) -> None:
        """Stop the server (its whole process group) and wait until it is gone."""
        async with self._lock:
            conn, self._conn = self._conn, None
            if conn is not None:
                await conn.aclose()

    async def _connection(self, replacing: ServerConnection | None = None) -> ServerConnection:
        """The live connection: (re)started if there is none, it died, or it is the broken one `replacing`."""
        async with self._lock:
            conn = self._conn
            if conn is not None and conn is not replacing and conn.alive():
                return conn
            self._conn = None
            if conn is not None:
                await conn.aclose()
            conn = await ServerConnection.open(self.config)
            try:
                self._tools = await self._list(conn)
            except BaseException:
                await conn.aclose()
                raise
            self._conn = conn
            return conn

    async def _list(self, conn: ServerConnection) -> dict[str, McpTool]:
        try:
            specs = await conn.list_tools()
        except Exception as exc:  # it stopped (ConnectionLost), or answered with an error
            stderr = conn.stderr()
            raise ToolError(
                f"the MCP server '{self.config.name}' started but could not list its tools: {str(exc) or 'it stopped'}"
                + (f"\nits stderr:\n{stderr}" if stderr else "")
            ) from exc
        names = {spec.name for spec in specs}
        if unknown := sorted(set(self.config.effects) - names):
            raise ToolError(
                f"effects of MCP server '{self.config.name}' name {', '.join(unknown)}, which it does not offer; "
                f"its tools are: {', '.join(sorted(names))}"
            )
        return {spec.name: McpTool(self, spec) for spec in specs}


class McpTool:
    """One tool of an MCP server; its effect comes from the server's annotations unless lane.yaml overrides it."""

    def __init__(self, toolset: McpToolset, spec: Tool) -> None:
        self.toolset = toolset
        self.short_name = spec.name
        self.name = f"{toolset.config.name}.{spec.name}"
        self.description = spec.description or spec.title or ""
        self.parameters: dict[str, Any] = spec.input_schema
        hints = spec.annotations
        self.effect: Effect = toolset.config.effects.get(spec.name) or annotated_effect(spec)
        self.idempotent = bool(hints and hints.idempotent_hint) or self.effect == "read"
        self._validator = _validator(spec.input_schema)

    def check_args(self, args: dict[str, Any]) -> dict[str, Any]:
        if self._validator is None:
            return args
        errors = sorted(self._validator.iter_errors(args), key=lambda e: [str(p) for p in e.absolute_path])
        if errors:
            raise ToolArgsInvalid("; ".join(f"{e.json_path[2:] or 'arguments'}: {e.message}" for e in errors))  # $.a.b
        return args

    def subjects(self, args: dict[str, Any]) -> list[str]:
        found: list[str] = []
        for key in _PATH_ARGS:
            value = args.get(key)
            found += [value] if isinstance(value, str) else [v for v in value or () if isinstance(v, str)]
        return found + [s for s in string_arguments(args) if s not in found]  # paths first, then every other string

    def out_of_lane(self, args: dict[str, Any], lane: Lane, project_dir: Path) -> str | None:
        return None  # the server's own configuration (a filesystem root, say) is its reach

    async def invoke(self, args: dict[str, Any], ctx: ToolContext) -> Any:
        return await self.toolset.call(self.short_name, self.check_args(args))


def annotated_effect(spec: Tool) -> Effect:
    """What a tool's MCP annotations promise: read-only, additive only (`write`), or anything (`external`)."""
    hints = spec.annotations
    if hints is None:
        return "external"
    if hints.read_only_hint:
        return "read"
    if hints.destructive_hint is False:  # the spec's defaults: not read-only, destructive
        return "write"
    return "external"


def result_data(result: CallToolResult) -> Any:
    """A tool result as plain data: the structured content, or else the content blocks."""
    if result.is_error:
        raise ToolError("\n".join(b.text for b in result.content if b.type == "text") or "the MCP tool failed")
    if result.structured_content is not None:
        return result.structured_content
    blocks = [_block_data(block) for block in result.content]
    return blocks[0] if len(blocks) == 1 and isinstance(blocks[0], str) else blocks


def _block_data(block: ContentBlock) -> Any:
    if block.type == "text":
        return block.text
    data: dict[str, Any] = block.model_dump(mode="json", by_alias=True, exclude_none=True)
    data.pop("_meta", None)
    for where in (data, data.get("resource") or {}):
        for key in ("data", "blob"):  # base64 is no use to a model or a journal: say how much there was
            if isinstance(where.get(key), str):
                where[f"{key}Length"] = len(where.pop(key))
    return data


def _validator(schema: dict[str, Any]) -> Validator | None:
    cls = validator_for(schema, default=Draft202012Validator)
    try:
        cls.check_schema(schema)
    except SchemaError:
        return None  # a schema the server got wrong: the server validates its own arguments
    return cls(schema)

