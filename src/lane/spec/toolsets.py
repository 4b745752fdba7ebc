"""Loading `toolsets:` from lane.yaml: Python modules, commands, lane's file tools, HTTP endpoints, MCP servers.

Every kind but MCP becomes tools at load time. An MCP server's tools are known
only once it runs, so its toolset is kept as a config and listed when a run
needs it; agents may name its tools (`fs.read_file`, `fs.*`) before that.
"""

from __future__ import annotations

import traceback
from pathlib import Path
from typing import TYPE_CHECKING

from lane.errors import Problem
from lane.spec.files import Toolset
from lane.spec.source import Loc, Source
from lane.tools.command import CommandTool, find_executable
from lane.tools.function import load_module

if TYPE_CHECKING:
    from lane.spec.project import ProjectSpec

KINDS = ("python", "command", "builtin", "mcp", "http")
# Keys that only one kind reads: given to another kind they would silently do nothing.
ONLY = {"root": "builtin", "prefixes": "command", "extra_args": "command", "cwd": "command", "effects": "mcp"}


def load_toolsets(project: ProjectSpec) -> list[Problem]:
    problems: list[Problem] = []
    for name, ts in project.config.toolsets.items():
        problems += _load_toolset(project, name, ts)
        loaded = name in project.mcp or any(t == name or t.startswith(f"{name}.") for t in project.tools)
        if not loaded:
            project.unloaded.add(name)
    return problems


def _load_toolset(project: ProjectSpec, name: str, ts: Toolset) -> list[Problem]:
    source, loc = project.source, ("toolsets", name)
    kinds = [k for k in KINDS if getattr(ts, k) is not None]
    if len(kinds) != 1:
        return [source.at(loc, f"toolset '{name}' needs exactly one of {', '.join(KINDS)} (it has {' and '.join(kinds) or 'none'})")]
    kind = kinds[0]
    misplaced = [key for key, owner in ONLY.items() if owner != kind and key in ts.model_fields_set]
    if misplaced:
        return [source.at((*loc, misplaced[0]), f"'{misplaced[0]}' is for {ONLY[misplaced[0]]} toolsets, not {kind}", key=True)]
    if kind == "python":
        timeout = ts.timeout if "timeout" in ts.model_fields_set else None  # else each call may run as long as the budgets leave
        problems = _load_python(project, name, ts.python or "", (*loc, "python"), timeout)
        for key in ("effect", "idempotent"):
            if getattr(ts, key) is not None:
                problems.append(source.at((*loc, key), f"'{key}' of a Python tool is declared on each function: @tool({key}=...)", key=True))
        return problems
    return {"command": _load_command, "builtin": _load_files, "http": _load_http, "mcp": _load_mcp}[kind](project, name, ts, loc)


def _load_command(project: ProjectSpec, name: str, ts: Toolset, loc: Loc) -> list[Problem]:
    if ts.command is None or (not ts.command and not ts.extra_args):
        return [project.source.at((*loc, "command"), "a command tool needs an argv list such as [pytest, -q] "
                                  "(an empty one only with extra_args: true, when the agent gives the whole command)")]
    if ts.prefixes is not None and not all(ts.prefixes):
        return [project.source.at((*loc, "prefixes"), "each prefix is a non-empty argv list, such as [git, status]")]
    problems = missing_program(project.source, project.root, str(ts.command[0]), ts.cwd, (*loc, "command", 0)) if ts.command else []
    project.tools[name] = CommandTool(
        name,
        [str(a) for a in ts.command],
        effect=ts.effect or "external",
        idempotent=bool(ts.idempotent),
        cwd=project.root / (ts.cwd or "."),
        timeout=ts.timeout,
        max_output=ts.max_output,
        extra_args=ts.extra_args,
        description=ts.description,
        prefixes=[[str(w) for w in p] for p in ts.prefixes] if ts.prefixes is not None else None,
    )
    return problems


def missing_program(source: Source, root: Path, program: str, cwd: str | None, loc: Loc) -> list[Problem]:
    """A problem when `program` cannot be found where a run would look for it: found before the run, not after a person approved.

    A relative path (`.venv/bin/pytest`, `node_modules/.bin/jest`) is not checked: an earlier step may make it."""
    if not program or ("/" in program and not program.startswith("/")):
        return []
    if find_executable(program, root / (cwd or ".")) is not None:
        return []
    if "/" in program:
        return [source.at(loc, f"no executable file {program}; fix the path or make it executable")]
    return [source.at(loc, f"no program '{program}' on PATH, nor beside lane's Python; install it, or fix its name")]


def _load_files(project: ProjectSpec, name: str, ts: Toolset, loc: Loc) -> list[Problem]:
    from lane.tools.files import file_tools

    for key in ("effect", "idempotent"):
        if getattr(ts, key) is not None:
            return [project.source.at((*loc, key), f"lane's file tools declare their own {key}: read, list and search read; write writes", key=True)]
    root = (project.root / (ts.root or ".")).resolve()
    if not root.is_dir():
        return [project.source.at((*loc, "root"), f"no folder {ts.root} in the project for the file tools' root")]
    if not root.is_relative_to(project.root):
        return [project.source.at((*loc, "root"), f"the file tools' root {ts.root} is outside the project; use a folder inside it")]
    project.tools.update((t.name, t) for t in file_tools(name, root, project.root, max_bytes=ts.max_output))
    return []


def _load_http(project: ProjectSpec, name: str, ts: Toolset, loc: Loc) -> list[Problem]:
    from lane.tools.http import HttpTool

    spec = ts.http
    assert spec is not None
    if not spec.url.startswith(("http://", "https://")):
        return [project.source.at((*loc, "http", "url"), f"url must start with http:// or https://, not {spec.url!r}")]
    problems = HttpTool.problems(spec.url, spec.parameters)
    if problems:
        return [project.source.at((*loc, "http"), p) for p in problems]
    project.tools[name] = HttpTool(
        name, method=spec.method, url=spec.url, headers=spec.headers, query=spec.query, body=spec.body,
        parameters=spec.parameters, effect=ts.effect or ("read" if spec.method == "GET" else "external"),
        idempotent=bool(ts.idempotent), timeout=ts.timeout, max_output=ts.max_output, description=ts.description,
    )
    return []


def _load_mcp(project: ProjectSpec, name: str, ts: Toolset, loc: Loc) -> list[Problem]:
    spec = ts.mcp
    assert spec is not None
    if (spec.command is None) == (spec.url is None):
        return [project.source.at((*loc, "mcp"), "an MCP server needs `command:` (lane starts it) or `url:` (it is running), not both")]
    if spec.url is not None and not spec.url.startswith(("http://", "https://")):
        return [project.source.at((*loc, "mcp", "url"), f"url must start with http:// or https://, not {spec.url!r}")]
    if ts.effect is not None or ts.idempotent is not None:
        key = "effect" if ts.effect is not None else "idempotent"
        return [project.source.at((*loc, key), "an MCP tool's effect comes from the server's annotations; "
                                  "set one tool's under `effects: {TOOL: read}`", key=True)]
    try:
        from lane.tools.mcp import McpServerConfig
    except ImportError:
        return [project.source.at((*loc, "mcp"), "MCP toolsets need the mcp extra: pip install 'lane[mcp]'", key=True)]
    if spec.command is not None and "PATH" not in spec.env:
        missing = missing_program(project.source, project.root, spec.command, spec.cwd, (*loc, "mcp", "command"))
        if missing:
            return missing
    project.mcp[name] = McpServerConfig(
        name=name, command=spec.command, args=tuple(spec.args), env=dict(spec.env), cwd=project.root / (spec.cwd or "."),
        url=spec.url, headers=dict(spec.headers), effects=dict(ts.effects), timeout=ts.timeout,
    )
    return []


def _load_python(project: ProjectSpec, name: str, file: str, loc: Loc, timeout: float | None) -> list[Problem]:
    path = project.root / file
    if not path.is_file():
        return [project.source.at(loc, f"no file {file}")]
    try:
        tools = load_module(path, name, timeout=timeout)
    except ImportError as exc:
        return [_import_problem(project, file, path, name, exc)]
    except TypeError as exc:
        return [project.source.at(loc, f"{file} cannot be loaded: {exc}")]
    if not tools:
        return [project.source.at(loc, f"{file} has no @tool functions (from lane import tool)")]
    project.tools.update((t.name, t) for t in tools)
    return []


def _import_problem(project: ProjectSpec, file: str, path: Path, toolset: str, exc: ImportError) -> Problem:
    """An error raised by importing a tools module, at the line of that module where it happened."""
    cause, line, col = exc.__cause__, 1, 1
    if isinstance(cause, SyntaxError) and cause.lineno:
        line, col = cause.lineno, cause.offset or 1
        exc = ImportError(f"SyntaxError: {cause.msg}")
    elif cause is not None:
        frames = [f for f in traceback.extract_tb(cause.__traceback__) if Path(f.filename).resolve() == path.resolve()]
        if frames:
            line, col = frames[-1].lineno or 1, (frames[-1].colno or 0) + 1
    real = path.resolve()
    shown = real.relative_to(project.root).as_posix() if real.is_relative_to(project.root) else file
    return Problem(shown, line, col, f"toolset '{toolset}' cannot be loaded: {exc}")
