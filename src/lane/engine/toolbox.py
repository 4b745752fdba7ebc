"""The tools one run can reach: the project's own, and its MCP servers' tools once listed.

An MCP server starts when a step first needs one of its tools and stops when
the run's process leaves the run (completed, paused or interrupted).
"""

from __future__ import annotations

import contextlib
import fnmatch
from collections.abc import Sequence
from typing import TYPE_CHECKING

from lane.spec.project import ProjectSpec
from lane.tools.base import Tool

if TYPE_CHECKING:
    from lane.tools.mcp import McpToolset


class Toolbox:
    def __init__(self, project: ProjectSpec) -> None:
        self.project = project
        self.servers: dict[str, McpToolset] = {}
        self.listed: dict[str, Tool] = {}

    async def get(self, name: str) -> Tool | None:
        """The tool called `name`, starting its MCP server if it has one; raises ToolError if that cannot start."""
        tool = self.project.tools.get(name)
        server = name.partition(".")[0]
        if tool is None and server in self.project.mcp:
            await self._list(server)
            return self.listed.get(name)
        return tool

    async def allowed(self, allowlists: Sequence[tuple[str, list[str]]]) -> list[Tool]:
        """Every tool on all these allowlists, listing the MCP servers they can reach."""
        for server in self.project.mcp:
            if all(any(_may_match(p, server) for p in patterns) for _, patterns in allowlists):
                await self._list(server)
        tools = {**self.project.tools, **self.listed}
        return [t for name, t in tools.items() if all(self.project.allows(p, name) for _, p in allowlists)]

    async def _list(self, server: str) -> None:
        if server in self.servers:
            return
        from lane.tools.mcp import McpToolset

        toolset = self.servers[server] = McpToolset(self.project.mcp[server])
        try:
            tools = await toolset.tools()
        except BaseException:
            del self.servers[server]
            await toolset.aclose()
            raise
        self.listed.update((t.name, t) for t in tools)

    async def aclose(self) -> None:
        for toolset in self.servers.values():
            with contextlib.suppress(Exception):
                await toolset.aclose()
        self.servers.clear()
        self.listed.clear()


def _may_match(pattern: str, server: str) -> bool:
    """Whether an allowlist pattern can match some tool of this server (`fs.read_*`, `fs.*`, `*`)."""
    return fnmatch.fnmatchcase(server, pattern.partition(".")[0])
