"""Command tools and check steps: an argv list run without a shell."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lane.errors import ToolError
from lane.tools.argv import Unanalysable, commands, has_prefix, line
from lane.tools.base import Effect, Lane, ToolArgsInvalid, ToolContext

if TYPE_CHECKING:
    import asyncio  # loaded when a command first runs, not with the project


@dataclass(frozen=True)
class CommandResult:
    exit_code: int | None
    stdout: str
    stderr: str
    seconds: float
    timed_out: bool = False
    truncated: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "exit_code": self.exit_code,
            "stdout": self.stdout,
            "stderr": self.stderr,
            "seconds": round(self.seconds, 3),
            "timed_out": self.timed_out,
            "truncated": self.truncated,
        }


ESCAPED_GRACE = 1.0  # seconds to finish reading output once the command's group is gone


def find_executable(name: str, cwd: Path, path: str | None = None) -> str | None:
    """The program `name` runs: a path (relative to `cwd`), else found on PATH, else beside lane's own
    interpreter, where `pip install` put the project's tools (a venv used without activating it)."""
    if "/" in name:
        candidate = cwd / name
        return str(candidate) if candidate.is_file() and os.access(candidate, os.X_OK) else None
    found = shutil.which(name, path=path)
    if found is not None:
        return found
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.is_file() and os.access(beside, os.X_OK) else None


async def run_command(
    argv: list[str], *, cwd: Path, timeout: float, max_output: int, env: dict[str, str] | None = None,
    hidden: frozenset[str] = frozenset(),
) -> CommandResult:
    """Run argv (no shell) in cwd, without the variables `hidden`; output beyond max_output bytes per stream is dropped."""
    import asyncio  # loaded when a command first runs, not with the project

    start = time.monotonic()
    program = find_executable(argv[0], cwd) if argv and "/" not in argv[0] else None
    starting = asyncio.ensure_future(asyncio.create_subprocess_exec(
        program or argv[0], *argv[1:],
        cwd=cwd,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={k: v for k, v in {**os.environ, **(env or {})}.items() if k not in hidden},
        start_new_session=True,
    ))
    try:
        # Shielded: cancelled while its pipes connect, asyncio kills only the leader and then waits
        # forever for pipes it never connected (CPython 3.11). The process runs by then, so let it
        # finish starting, and stop its whole group below.
        proc = await asyncio.shield(starting)
    except OSError as exc:
        where = f" in {cwd}" if str(exc.filename) == str(cwd) else ""  # the working directory, not the program, is missing
        return CommandResult(None, "", f"cannot start {argv[0]!r}{where}: {exc.strerror or exc}", time.monotonic() - start)
    except asyncio.CancelledError:
        with contextlib.suppress(OSError):
            started = await starting
            _kill_group(started.pid)
            await started.communicate()  # read to the end: a full pipe would never report its close
        raise
    assert proc.stdout is not None and proc.stderr is not None
    out, err = _Capped(max_output), _Capped(max_output)
    readers = asyncio.gather(out.drain(proc.stdout), err.drain(proc.stderr))
    timed_out = False
    try:
        await asyncio.wait_for(_exit(proc), timeout)
    except TimeoutError:
        timed_out = True
    except BaseException:  # cancelled (Ctrl-C): the command and its children must not outlive lane
        _kill_group(proc.pid)
        readers.cancel()
        await proc.wait()
        await asyncio.gather(readers, return_exceptions=True)  # retrieved, so nothing is logged as lost
        raise
    # Done or timed out: whatever the command left running in its group stops with it, so a
    # background child holding the output open cannot keep the step waiting.
    _kill_group(proc.pid)
    await _exit(proc)
    try:  # a child that left the group (setsid, a daemon) may hold the output open for ever: read what came, then stop
        await asyncio.wait_for(asyncio.shield(readers), ESCAPED_GRACE)
    except TimeoutError:
        readers.cancel()
        await asyncio.gather(readers, return_exceptions=True)
        transport = getattr(proc, "_transport", None)  # asyncio closes it only once the pipes close: close it here
        if transport is not None:
            transport.close()
    return CommandResult(
        proc.returncode,
        out.text(),
        err.text() + (f"\n[lane: timed out after {timeout:g} s and was killed]" if timed_out else ""),
        time.monotonic() - start,
        timed_out,
        out.dropped or err.dropped,
    )


async def _exit(proc: asyncio.subprocess.Process) -> None:
    """Until the process itself exits (`proc.wait()` also waits for its pipes, which a child may hold)."""
    import asyncio

    delay = 0.001
    while proc.returncode is None:
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.05)


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


class _Capped:
    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.data = bytearray()
        self.dropped = False

    async def drain(self, stream: asyncio.StreamReader) -> None:
        while chunk := await stream.read(65536):
            room = self.cap - len(self.data)
            if len(chunk) > room:
                self.dropped = True
            self.data += chunk[: max(room, 0)]

    def text(self) -> str:
        return self.data.decode("utf-8", errors="replace") + ("\n[lane: output truncated]" if self.dropped else "")


class CommandTool:
    """One command from `lane.yaml`; a model may append arguments if `extra_args` allows."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        *,
        effect: Effect,
        idempotent: bool,
        cwd: Path,
        timeout: float,
        max_output: int,
        extra_args: bool,
        description: str | None,
        prefixes: list[list[str]] | None = None,
    ) -> None:
        self.name = name
        self.argv = argv
        self.effect: Effect = effect
        self.idempotent = idempotent
        self.cwd = cwd
        self.timeout = timeout
        self.max_output = max_output
        self.extra_args = extra_args
        self.prefixes = prefixes
        self.hidden: frozenset[str] = frozenset()  # secrets kept out of its environment (set by the loader)
        shown = " ".join(argv) or "(the argv you give in args)"
        allowed = f" (commands starting with: {'; '.join(' '.join(p) for p in prefixes)})" if prefixes else ""
        self.description = description or f"Runs the command: {shown}{allowed}"
        props = {"args": {"type": "array", "items": {"type": "string"}, "description": "arguments appended to the command"}}
        self.parameters: dict[str, Any] = {
            "type": "object",
            "properties": props if extra_args else {},
            "additionalProperties": False,
        }

    def check_args(self, args: dict[str, Any]) -> dict[str, Any]:
        extra = set(args) - ({"args"} if self.extra_args else set())
        if extra == {"args"}:
            raise ToolArgsInvalid(f"args: {self.name} takes no extra arguments (extra_args is false in lane.yaml)")
        if extra:
            raise ToolArgsInvalid(f"unknown argument(s): {', '.join(sorted(extra))}")
        more = args.get("args", [])
        if not isinstance(more, list) or not all(isinstance(a, str) for a in more):
            raise ToolArgsInvalid("args: must be a list of strings")
        return {"args": more} if more else {}

    def subjects(self, args: dict[str, Any]) -> list[str]:
        """One line per command the argv would run, wrappers (env, nohup, sh -c...) unwrapped; raises Unanalysable."""
        return [line(c) for c in commands(self._argv(args))]

    def out_of_lane(self, args: dict[str, Any], lane: Lane, project_dir: Path) -> str | None:
        if self.prefixes is None:
            return None
        try:
            found = commands(self._argv(args), strict=True)
        except Unanalysable as exc:
            return f"the command cannot be checked against {self.name}'s prefixes: {exc}"
        for command in found or [[]]:
            if not has_prefix(command, self.prefixes):
                allowed = "; ".join(" ".join(p) for p in self.prefixes)
                return f"'{line(command)}' does not start with an allowed prefix of {self.name} ({allowed})"
        return None

    def _argv(self, args: dict[str, Any]) -> list[str]:
        more = args.get("args", [])
        return self.argv + [str(a) for a in more] if isinstance(more, list) else self.argv

    async def invoke(self, args: dict[str, Any], ctx: ToolContext) -> Any:
        argv = self.argv + self.check_args(args).get("args", [])
        if not argv:
            raise ToolError(f"{self.name}: no command given; pass it in args")
        env = {
            "LANE_RUN_ID": ctx.run_id,
            "LANE_STEP_ID": ctx.step_id,
            "LANE_CALL_ID": ctx.call_id,
            "LANE_IDEMPOTENCY_KEY": ctx.idempotency_key,
        }
        result = await run_command(argv, cwd=self.cwd, timeout=self.timeout, max_output=self.max_output, env=env, hidden=self.hidden)
        if result.exit_code is None:  # it never started: an error for the agent, a failure for a tool step
            raise ToolError(result.stderr)
        return result.to_json()
