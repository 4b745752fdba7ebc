"""The tool seam: what every tool is, and the `@tool` decorator for Python functions."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar, overload

Effect = Literal["read", "write", "external"]
EFFECTS = ("read", "write", "external")
F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Lane:
    """Where the calling agent may reach, beyond its tool allowlist; checked before a call runs."""

    agent: str | None = None
    paths: tuple[str, ...] = ()  # globs relative to the project root; empty: wherever the tool's own root allows
    writes: tuple[str, ...] = ()  # a coding task's FILES (git-style globs): where writes may land, on top of `paths`
    task: str | None = None  # FEATURE/TASK whose FILES `writes` holds


@dataclass(frozen=True)
class ToolContext:
    """What a tool knows about the call it serves.

    `idempotency_key` is derived from run, step and call: the same on every
    retry of this call, different for every other call. A tool with an external
    effect passes it on (an `Idempotency-Key` header, a unique column) so a
    retried call takes effect once.
    """

    run_id: str
    step_id: str
    call_id: str
    idempotency_key: str
    project_dir: Path
    lane: Lane = Lane()  # the calling agent's lane, checked before the call; tools that reach files check it again


@dataclass(frozen=True)
class ToolMeta:
    effect: Effect
    idempotent: bool
    name: str | None
    timeout: float | None = None


class ToolArgsInvalid(ValueError):
    """The arguments a model or runbook gave do not fit the tool's schema."""


class Tool(Protocol):
    """Anything lane can call for an agent or a tool step."""

    name: str
    description: str
    parameters: dict[str, Any]  # JSON Schema of the arguments
    effect: Effect
    idempotent: bool

    def check_args(self, args: dict[str, Any]) -> dict[str, Any]:
        """The arguments, validated; raises ToolArgsInvalid."""
        ...

    def subjects(self, args: dict[str, Any]) -> list[str]:
        """What a rule's bare pattern (`files.write(.env)`, `shell(rm *)`) is matched against.

        A file tool gives its path, a command tool one line per command it would run
        (wrappers such as `env`, `nohup` and `sh -c` unwrapped), other tools their string arguments."""
        ...

    def out_of_lane(self, args: dict[str, Any], lane: Lane, project_dir: Path) -> str | None:
        """Why this call would leave the agent's lane (a path outside its scope, a command not allowed), or None."""
        ...

    async def invoke(self, args: dict[str, Any], ctx: ToolContext) -> Any:
        """Run the tool with checked arguments; returns JSON-able data."""
        ...


@overload
def tool(fn: F, /) -> F: ...
@overload
def tool(
    *, effect: Effect = "external", idempotent: bool = False, name: str | None = None, timeout: float | None = None
) -> Callable[[F], F]: ...


def tool(
    fn: F | None = None, /, *, effect: Effect = "external", idempotent: bool = False, name: str | None = None,
    timeout: float | None = None,
) -> F | Callable[[F], F]:
    """Mark a function in `tools/*.py` as a tool.

    `effect` says what calling it does: `read` (nothing changes), `write`
    (changes inside the agent's lane), `external` (reaches the world or cannot
    be undone: the default, and the safest). `idempotent=True` promises that a
    second call with the same `ctx.idempotency_key` has no further effect, so
    lane may retry it after a crash. `timeout` (seconds) cuts a call off as an
    error the agent sees; without one, a call may run as long as the run's
    and step's `wall_seconds` budgets leave (the toolset's `timeout:` in
    lane.yaml sets one for every function of a module). The function stays a
    plain function.
    """
    if fn is not None and not callable(fn):
        raise TypeError(f"@tool({fn!r}): pass the effect by name, as in @tool(effect='read')")
    if effect not in EFFECTS:
        raise ValueError(f"effect must be one of {', '.join(EFFECTS)}, not {effect!r}")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0):
        raise ValueError(f"timeout must be a number of seconds above 0, not {timeout!r}")

    def mark(f: F) -> F:
        f.__lane_tool__ = ToolMeta(effect, idempotent, name, float(timeout) if timeout is not None else None)  # type: ignore[attr-defined]
        return f

    return mark(fn) if fn is not None else mark


def string_arguments(args: Any) -> list[str]:
    """The subjects of a tool without a path or a command: every string in its arguments, at any depth."""
    if isinstance(args, str):
        return [args]
    values = args.values() if isinstance(args, dict) else args if isinstance(args, list) else ()
    return [s for v in values for s in string_arguments(v)]
