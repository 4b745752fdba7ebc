"""`lane mcp`: an MCP server over a project, for a person's assistant or a coding agent (docs/mcp.md).

`desk` holds what is offered (tools, resources) over a `Project`; `server` speaks it as MCP with the official SDK
(`lane[mcp]`), imported only when `lane mcp` runs.
"""
