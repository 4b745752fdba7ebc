"""lane's own file tools (`builtin: files`): read, write, list and search inside one folder.

Every path is checked twice: by `out_of_lane` against the agent's lane, and again
in `invoke`, which then reaches the file through folder descriptors opened with
O_NOFOLLOW, so a symlink swapped in after the check is not followed either.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import errno
import fnmatch
import io
import os
import posixpath
import secrets
import stat
from pathlib import Path
from typing import Any

from lane.errors import ToolError
from lane.spec.globs import matches
from lane.spec.schema import schema_errors
from lane.tools.base import Effect, Lane, Tool, ToolArgsInvalid, ToolContext

MAX_ENTRIES = 500  # per list
MAX_MATCHES = 200  # per search
MAX_LINE = 400  # characters of a matching line shown
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW


def file_tools(toolset: str, root: Path, project_dir: Path, *, max_bytes: int = 262144) -> list[Tool]:
    """The tools `{toolset}.read`, `.write`, `.list` and `.search`, scoped to `root` (relative to the project)."""
    scope = _Scope(project_dir / root, project_dir, max_bytes)
    return [_Read(toolset, scope), _Write(toolset, scope), _List(toolset, scope), _Search(toolset, scope)]


def normalise(path: str) -> str:
    """A path relative to a toolset root, in normal posix form ("." for the root itself)."""
    return posixpath.normpath(path) if path else "."


def _real(path: Path) -> Path:
    return Path(os.path.realpath(path))


class _Scope:
    """A toolset's root folder and the checks that keep every path inside it."""

    def __init__(self, root: Path, project_dir: Path, max_bytes: int) -> None:
        self.root = _real(root)
        self.project = _real(project_dir)
        self.max_bytes = max_bytes
        label = self.root.relative_to(self.project).as_posix() if self.root.is_relative_to(self.project) else str(self.root)
        self.label = label.rstrip("/") + "/"

    def refusal(self, raw: str, lane: Lane, project_dir: Path, *, writing: bool) -> str | None:
        """Why `raw` may not be reached, or None."""
        if "\x00" in raw:
            return f"path {raw!r} contains a NUL byte; use a plain relative path"
        if posixpath.isabs(raw) or os.path.isabs(raw):
            return f"path {raw!r} is absolute; use a path relative to the toolset root {self.label}"
        rel = normalise(raw)
        if rel == ".." or rel.startswith("../"):
            return f"path {raw!r} leaves the toolset root {self.label}; use a path inside it"
        lexical = self.root / rel
        real = _real(lexical)
        if not real.is_relative_to(self.root):
            return f"path {raw!r} leads outside the toolset root {self.label} through a symlink; use a path inside it"
        for project in {self.project, _real(project_dir)}:
            for path in (lexical, real):
                if reason := _control(raw, path, project, writing):
                    return reason
        rels = _relative((lexical, real), _real(project_dir))
        return _outside_globs(raw, rels, lane) or (_outside_task(raw, rels, lane) if writing else None)

    def inside(self, raw: str, *, writing: bool = False) -> str:
        """The real path of `raw` relative to the root; PermissionError if it is not inside, or is a control file.

        Resolved again here, after the lane check: a symlink swapped in between must not lead anywhere the check refused."""
        real = _real(self.root / normalise(raw))
        if not real.is_relative_to(self.root):
            raise PermissionError(f"path {raw!r} leaves the toolset root {self.label}")
        if reason := _control(raw, real, self.project, writing):
            raise PermissionError(reason)
        return real.relative_to(self.root).as_posix()

    def open_dir(self, rel: str, *, create: bool = False) -> int:
        """A descriptor of the folder root/rel, reached without following any symlink."""
        if create:
            os.makedirs(self.root, exist_ok=True)  # the root is the person's choice; its insides are the agent's
        fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
        for part in [] if rel == "." else rel.split("/"):
            try:
                if create:
                    with contextlib.suppress(FileExistsError):
                        os.mkdir(part, dir_fd=fd)
                child = os.open(part, _DIR, dir_fd=fd)
            finally:
                os.close(fd)
            fd = child
        return fd

    def open_file(self, rel: str) -> int:
        """A descriptor of the regular file root/rel, opened for reading without following any symlink."""
        folder, name = posixpath.split(rel)
        dir_fd = self.open_dir(folder or ".")
        try:
            return _open_regular(name, dir_fd)
        finally:
            os.close(dir_fd)


def _open_regular(name: str, dir_fd: int) -> int:
    fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dir_fd)  # NONBLOCK: a FIFO must not hang
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise IsADirectoryError(errno.EISDIR, "not a file (list shows a folder)")
    return fd


def _control(raw: str, path: Path, project: Path, writing: bool) -> str | None:
    """Why `path` is one of the project's own files that file tools must not touch, or None."""
    if not path.is_relative_to(project):
        return None
    parts = [p.casefold() for p in path.relative_to(project).parts]  # casefold: .LANE is .lane on macOS
    if parts[:1] == [".lane"]:
        return f"path {raw!r} is in the project's .lane/ folder (the run store), which file tools never touch; use another path"
    # Writing these would widen a lane on the next load: rules, agents, runbooks, tools and git hooks run as code.
    if writing and parts and (parts[0] in ("agents", "runbooks", "tools") or parts == ["lane.yaml"]):
        return f"path {raw!r} is part of the project's own definition ({parts[0]}); file tools never write it, a person edits it"
    # Any repository's .git, at any depth (vendor/x/.git/hooks runs as code when git works there).
    if writing and ".git" in parts:
        return f"path {raw!r} is inside a .git folder (git's own files and hooks); file tools never write there"
    return None


def _relative(paths: tuple[Path, ...], project: Path) -> list[str] | None:
    """The paths (as written and as resolved) relative to the project, or None when one leads outside it."""
    rels = [path.relative_to(project).as_posix() for path in paths if path.is_relative_to(project)]
    return rels if len(rels) == len(paths) else None


def _outside_globs(raw: str, rels: list[str] | None, lane: Lane) -> str | None:
    """Why a path matches none of the lane's globs, or None."""
    if lane.paths and (rels is None or not all(any(matches(g, r) for g in lane.paths) for r in rels)):
        return f"path {raw!r} is outside this agent's lane ({', '.join(lane.paths)}); use a path matching one of them"
    return None


def _outside_task(raw: str, rels: list[str] | None, lane: Lane) -> str | None:
    """Why a write lands outside the FILES of the agent's coding task, or None."""
    if lane.task is None:
        return None
    from lane.coding.tasks import records_work

    if "\\" in raw:  # git and FILES read a backslash as a folder separator; a file tool would not
        return f"path {raw!r} holds a backslash; write folders with / and name files without \\"
    if rels is not None and any(records_work(r) for r in rels):
        return f"path {raw!r} is a lock, task or evidence file: it defines or records the work, so a person changes it, not the agent"
    if rels is None or not all(any(matches(g, r) for g in lane.writes) for r in rels):
        files = ", ".join(lane.writes) or "none"
        return f"path {raw!r} is not in the FILES of task {lane.task} ({files}); write only those, or ask the person to widen the task"
    return None


def _object(required: list[str], **props: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": props, "required": required, "additionalProperties": False}


_FILE = {"type": "string", "minLength": 1, "description": "file path relative to the toolset root"}
_FOLDER = {"type": "string", "description": "folder relative to the toolset root; default the root"}


class _FileTool:
    verb: str
    about: str
    parameters: dict[str, Any]
    effect: Effect = "read"
    idempotent = True
    writes = False

    def __init__(self, toolset: str, scope: _Scope) -> None:
        self.name = f"{toolset}.{self.verb}"
        self.scope = scope
        self.description = self.about.format(root=scope.label)

    def check_args(self, args: dict[str, Any]) -> dict[str, Any]:
        args = {key: value for key, value in args.items() if value is not None}  # a model's null for an optional argument
        if errors := schema_errors(self.parameters, args, root="arguments"):
            raise ToolArgsInvalid("; ".join(errors))
        return args

    def subjects(self, args: dict[str, Any]) -> list[str]:
        path = args.get("path")
        return [normalise(path if isinstance(path, str) else ".")]

    def out_of_lane(self, args: dict[str, Any], lane: Lane, project_dir: Path) -> str | None:
        path = args.get("path")
        if path is not None and not isinstance(path, str):
            return "path must be a string"
        return self.scope.refusal(path or ".", lane, project_dir, writing=self.writes)

    async def invoke(self, args: dict[str, Any], ctx: ToolContext) -> Any:
        args = self.check_args(args)
        lane = ctx.lane  # checked by the engine before the call; again here, so no path can slip past
        if reason := self.out_of_lane(args, lane, ctx.project_dir):
            raise PermissionError(reason)
        path = normalise(args.get("path", "."))
        try:
            return await asyncio.to_thread(self.run, args, path, lane, ctx.project_dir)
        except PermissionError:
            raise
        except FileNotFoundError as exc:
            raise ToolError(f"'{path}' does not exist in {self.scope.label}; list a folder to see what is there") from exc
        except (OSError, UnicodeError) as exc:
            raise ToolError(f"'{path}': {getattr(exc, 'strerror', None) or exc}") from exc

    def run(self, args: dict[str, Any], path: str, lane: Lane, project_dir: Path) -> dict[str, Any]:
        raise NotImplementedError

    def refused(self, rel: str, lane: Lane, project_dir: Path) -> bool:
        """Whether a walk must pass `rel` by."""
        return self.scope.refusal(rel, lane, project_dir, writing=False) is not None


class _Read(_FileTool):
    verb = "read"
    about = "Read a UTF-8 text file under {root}, whole or `limit` lines after skipping `offset` lines."
    parameters = _object(
        ["path"],
        path=_FILE,
        offset={"type": "integer", "minimum": 0, "description": "lines to skip first; search's line N is offset N-1"},
        limit={"type": "integer", "minimum": 1, "description": "most lines to return"},
    )

    def run(self, args: dict[str, Any], path: str, lane: Lane, project_dir: Path) -> dict[str, Any]:
        with open(self.scope.open_file(self.scope.inside(path)), encoding="utf-8", newline="") as f:
            try:
                text, truncated = _read_lines(f, args.get("offset", 0), args.get("limit"), self.scope.max_bytes)
            except ValueError:  # undecodable, or a NUL byte
                raise ToolError(f"'{path}' is not UTF-8 text (a binary file?); {self.name} reads text files only") from None
        return {"path": path, "text": text, "truncated": truncated}


def _read_lines(f: Any, offset: int, limit: int | None, budget: int) -> tuple[str, bool]:
    """Lines from `offset` on, at most `limit` of them and `budget` bytes; and whether more remain."""
    out: list[str] = []
    line = size = 0
    for piece in iter(lambda: f.readline(budget + 1), ""):  # a bounded read: a file need not have newlines
        if "\x00" in piece:
            raise ValueError("a NUL byte")
        if line >= offset:
            size += len(piece.encode())
            if size > budget or (limit is not None and line >= offset + limit):
                return "".join(out), True
            out.append(piece)
        line += piece.endswith(("\n", "\r"))
    return "".join(out), False


class _Write(_FileTool):
    verb = "write"
    about = "Write a UTF-8 text file under {root}, replacing it whole; missing folders are created."
    parameters = _object(["path", "content"], path=_FILE, content={"type": "string", "description": "the file's whole new text"})
    effect: Effect = "write"
    writes = True

    def run(self, args: dict[str, Any], path: str, lane: Lane, project_dir: Path) -> dict[str, Any]:
        folder, name = posixpath.split(self.scope.inside(path, writing=True))
        if name in ("", ".", ".."):
            raise ToolError(f"'{path}' is a folder; give a file path")
        data = args["content"].encode()
        dir_fd = self.scope.open_dir(folder or ".", create=True)
        try:
            _replace(dir_fd, name, data)
        finally:
            os.close(dir_fd)
        return {"path": path, "bytes": len(data)}


def _replace(dir_fd: int, name: str, data: bytes) -> None:
    """Write `name` in the folder whole or not at all: a temporary file, then a rename over it."""
    temp = f".{name}.{secrets.token_hex(4)}.tmp"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o666, dir_fd=dir_fd)
    try:
        with open(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)  # a symlink at `name` is replaced, not followed
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp, dir_fd=dir_fd)
        raise


class _List(_FileTool):
    verb = "list"
    about = f"List a folder under {{root}}: names, kinds and sizes, sorted; at most {MAX_ENTRIES} entries."
    parameters = _object([], path=_FOLDER, pattern={"type": "string", "description": "glob the entry names must match, such as *.md"})

    def run(self, args: dict[str, Any], path: str, lane: Lane, project_dir: Path) -> dict[str, Any]:
        pattern = args.get("pattern", "*")
        dir_fd = self.scope.open_dir(self.scope.inside(path))
        try:
            with os.scandir(dir_fd) as it:
                found = sorted((e for e in it if fnmatch.fnmatchcase(e.name, pattern)), key=lambda e: e.name)
            entries: list[dict[str, Any]] = []
            for entry in found:
                # Not shown: a symlink out of the root, the run store, what is outside the lane, a dangling symlink.
                if self.refused(posixpath.join(path, entry.name), lane, project_dir) or not entry.is_dir() and not entry.is_file():
                    continue
                if len(entries) == MAX_ENTRIES:
                    return {"path": path, "entries": entries, "truncated": True}
                size = None if entry.is_dir() else entry.stat().st_size
                entries.append({"name": entry.name, "kind": "file" if size is not None else "dir", "bytes": size})
        finally:
            os.close(dir_fd)
        return {"path": path, "entries": entries, "truncated": False}


class _Search(_FileTool):
    verb = "search"
    about = f"Find lines containing `query` (any case) in the text files under a folder of {{root}}; at most {MAX_MATCHES}."
    parameters = _object(
        ["query"],
        query={"type": "string", "minLength": 1, "description": "text to look for, in any case"},
        path=_FOLDER,
        glob={"type": "string", "description": "only files whose name or path matches, such as *.md"},
    )

    def run(self, args: dict[str, Any], path: str, lane: Lane, project_dir: Path) -> dict[str, Any]:
        query, glob = args["query"].casefold(), args.get("glob")
        matches: list[dict[str, Any]] = []
        top = self.scope.open_dir(self.scope.inside(path))
        try:
            for folder, dirs, files, dir_fd in os.fwalk(".", dir_fd=top):  # fwalk never follows symlinks to folders
                here = normalise(posixpath.join(path, folder))
                dirs[:] = sorted(d for d in dirs if not self.refused(posixpath.join(here, d), lane, project_dir))
                for name in sorted(files):
                    rel = posixpath.join(here, name)
                    if glob and not (fnmatch.fnmatchcase(name, glob) or fnmatch.fnmatchcase(rel, glob)):
                        continue
                    if not self.refused(rel, lane, project_dir):
                        matches += _scan(dir_fd, name, rel, query, self.scope.max_bytes)
                    if len(matches) > MAX_MATCHES:
                        return {"matches": matches[:MAX_MATCHES], "truncated": True}
        finally:
            os.close(top)
        return {"matches": matches, "truncated": False}


def _scan(dir_fd: int, name: str, rel: str, query: str, budget: int) -> list[dict[str, Any]]:
    """Matching lines in the first `budget` bytes of a text file; nothing for a binary file or a symlink."""
    try:
        fd = _open_regular(name, dir_fd)
    except OSError:
        return []
    with open(fd, "rb") as f:
        data = f.read(budget)
    try:
        text = codecs.getincrementaldecoder("utf-8")().decode(data)  # not final: a character cut at the budget is dropped
    except UnicodeDecodeError:
        return []
    if "\x00" in text:
        return []
    return [
        {"path": rel, "line": number, "text": line.rstrip("\r\n")[:MAX_LINE]}
        for number, line in enumerate(io.StringIO(text, newline=""), 1)  # lines as read counts them
        if query in line.casefold()
    ]
