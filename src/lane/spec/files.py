"""The shapes of lane's project files, as pydantic models.

Every key is documented in docs/files.md. Unknown keys are errors (with a
did-you-mean); keys that later versions of lane will read are named as such.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from datetime import date
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Discriminator, Field, Tag, ValidationError

from lane.errors import Problem
from lane.spec.source import Loc, Source

Effect = Literal["read", "write", "external"]
Autonomy = Literal["observe", "ask", "guarded", "auto"]
AUTONOMY_LEVELS = ("observe", "ask", "guarded", "auto")
STEP_ID = r"^[A-Za-z_][A-Za-z0-9_]*$"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, defer_build=True)  # built on first use


class Budget(Strict):
    """Limits; a run or agent step that reaches one stops with the reason."""

    tool_calls: int | None = Field(default=None, ge=0)
    steps: int | None = Field(default=None, ge=1)
    tokens: int | None = Field(default=None, ge=1)
    wall_seconds: float | None = Field(default=None, gt=0)
    repeats: int | None = Field(default=None, ge=2)
    cost_usd: float | None = Field(default=None, ge=0)
    approvals: int | None = Field(default=None, ge=0)  # calls that may wait for a person's approval


class RetryPolicy(Strict):
    """How a failed model call is retried: `attempts` in all, waiting `delay` seconds, doubling up to `max_delay`."""

    attempts: int = Field(default=4, ge=1)
    delay: float = Field(default=1.0, ge=0)
    max_delay: float = Field(default=30.0, ge=0)
    max_retry_after: float = Field(default=120.0, ge=0)  # a longer Retry-After pauses the run instead of waiting

    def wait(self, attempt: int, retry_after: float | None) -> float | None:
        """Seconds to wait before the next attempt after `attempt` failed, or None when no attempt is left."""
        if attempt >= self.attempts:
            return None
        if retry_after is not None:
            return retry_after if retry_after <= self.max_retry_after else None
        return min(self.max_delay, self.delay * 2.0 ** min(attempt - 1, 30))


class ModelSpec(Strict):
    provider: str
    model: str | None = None
    base_url: str | None = None
    api_key: str | None = None
    retry: RetryPolicy | None = None
    stream: bool | None = None  # stream replies to the progress display; default: yes, except by base_url


class ModelSettings(Strict):
    temperature: float | None = Field(default=None, ge=0, le=2)
    max_tokens: int | None = Field(default=None, ge=1)
    timeout: float | None = Field(default=None, gt=0)


def _model_entry_kind(value: Any) -> str:
    return "ModelSpec" if isinstance(value, (dict, ModelSpec)) else "str"


# A model is an id string or a mapping: validated as the one its shape says, so
# a mistake in a mapping is not also reported as "must be a string".
ModelEntry = Annotated[
    Annotated[str, Tag("str")] | Annotated[ModelSpec, Tag("ModelSpec")],
    Discriminator(_model_entry_kind),
]
UNION_TAGS = ("str", "ModelSpec")  # what pydantic puts in the error locations of a ModelEntry


class Role(Strict):
    kind: Literal["human", "agent"]
    description: str = ""


class McpSpec(Strict):
    """An MCP server: a command lane starts (stdio), or a URL (streamable HTTP)."""

    command: str | None = None
    args: list[str] = []
    env: dict[str, str] = {}
    cwd: str | None = None
    url: str | None = None
    headers: dict[str, str] = {}


class HttpSpec(Strict):
    """One HTTP endpoint as a tool: `{name}` in the URL and `env:NAME` in headers are filled at call time."""

    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "GET"
    url: str
    headers: dict[str, str] = {}
    query: list[str] = []
    body: Literal["json", "none"] | None = None
    parameters: dict[str, Any] | None = None


class Toolset(Strict):
    python: str | None = None
    command: list[str] | None = None
    builtin: Literal["files"] | None = None
    mcp: McpSpec | None = None
    http: HttpSpec | None = None
    description: str | None = None
    effect: Effect | None = None
    effects: dict[str, Effect] = {}  # MCP: a tool's effect by name, over what the server's annotations say
    idempotent: bool | None = None
    cwd: str | None = None
    root: str | None = None  # builtin files: the folder the tools may reach
    prefixes: list[list[str]] | None = None  # command tools: the argv prefixes the whole command must start with
    timeout: float = Field(default=60.0, gt=0)
    max_output: int = Field(default=65536, ge=1)
    extra_args: bool = False


class Rules(Strict):
    """deny -> ask -> allow: `TOOL` or `TOOL(PATTERN)`, as in "files.write(.env)" or "outbox.send(to=*@x.example)"."""

    deny: list[str] = []
    ask: list[str] = []
    allow: list[str] = []


class Person(Strict):
    """Someone who decides through `lane serve`: the human roles they act as."""

    roles: list[str] = Field(min_length=1)
    description: str = ""


class LockConfig(Strict):
    """`locks:` in lane.yaml: who may sign a lock, as git's allowed_signers file (coding/signing.py)."""

    allowed_signers: str | None = None


class TemporalConfig(Strict):
    """`temporal:` in lane.yaml: the Temporal service that runs this project's runs when `engine: temporal`."""

    address: str = "localhost:7233"
    namespace: str = "default"
    task_queue: str | None = None  # default: lane-PROJECT, so that two projects on one Temporal never share workers
    heartbeat_seconds: float = Field(default=10, ge=1, le=3600)  # a worker silent this long is taken for dead: another takes its runs up


class TelemetryConfig(Strict):
    """`telemetry:` in lane.yaml: where each run's OpenTelemetry trace goes (OTLP over HTTP), and whether it holds content."""

    endpoint: str | None = None  # http://HOST:4318 (the /v1/traces path is added); else OTEL_EXPORTER_OTLP_ENDPOINT
    headers: dict[str, str] = {}  # sent with each export, e.g. {Authorization: env:OTLP_TOKEN}
    content: bool = False  # prompts, outputs and tool arguments in the spans (redacted); off: none of them
    service_name: str | None = None  # the resource's service.name; default "lane"


class LaneFile(Strict):
    project: str
    description: str = ""
    models: dict[str, ModelEntry] = {}
    roles: dict[str, Role]
    toolsets: dict[str, Toolset] = {}
    rules: Rules = Field(default_factory=Rules)
    budgets: Budget = Field(default_factory=Budget)
    secrets: list[str] = []  # env:NAME; every env: reference in the project counts too
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    store: str = "sqlite:///.lane/lane.db"
    people: dict[str, Person] = {}  # who signs in to `lane serve` (tokens: `lane token create NAME`), and their roles
    locks: LockConfig | None = None  # the coding track's lock sign-offs (coding/signing.py)
    engine: Literal["local", "temporal"] = "local"  # what executes runs: this process, or Temporal workers (`lane worker`)
    temporal: TemporalConfig | None = None  # with engine: temporal (defaults: localhost:7233, namespace default, task queue lane)
    telemetry: TelemetryConfig | None = None  # OpenTelemetry traces of every run (lane[otel])


class ContextTrigger(Strict):
    when: str
    read: str


class ContextPlan(Strict):
    always: list[str] = []
    on: list[ContextTrigger] = []
    max_tokens: int | None = Field(default=None, ge=1)


class AgentFile(Strict):
    name: str
    description: str = ""
    model: str | None = None
    settings: ModelSettings = Field(default_factory=ModelSettings)
    autonomy: Autonomy = "ask"
    tools: list[str] = []
    skills: list[str] = []  # names or globs of skills/NAME (spec/skills.py): the catalog in its context, skills.load/read
    rules: Rules = Field(default_factory=Rules)
    paths: list[str] = []  # the files its file tools may reach: globs relative to the project root
    context: ContextPlan = Field(default_factory=ContextPlan)
    budget: Budget = Field(default_factory=Budget)
    repairs: int = Field(default=2, ge=0)


class Example(Strict):
    with_: dict[str, Any] = Field(default={}, alias="with")
    output: Any = None


class OnFail(Strict):
    """A feedback loop: a failed check or a rejected human step goes back to an earlier agent step."""

    back_to: str = Field(pattern=STEP_ID)
    attempts: int = Field(default=3, ge=1, le=100, strict=True)  # tries in all, the first included, before a person is asked


class ToolRetry(Strict):
    """Retrying a tool step's transient failures: `attempts` in all, waiting `delay` seconds, times `backoff` each time."""

    attempts: int = Field(default=3, ge=1, le=100)
    delay: float = Field(default=1.0, ge=0, le=3600)
    backoff: float = Field(default=2.0, ge=1, le=10)
    on: list[Literal["timeout", "error"]] = Field(default=["timeout", "error"], min_length=1)
    unsafe: bool = False  # retry a tool that is not idempotent without asking a person


class Step(Strict):
    id: str = Field(pattern=STEP_ID)
    description: str = ""
    when: str | None = None
    owner: str | None = None
    # agent steps
    agent: str | None = None
    goal: str | None = None
    with_: dict[str, Any] | None = Field(default=None, alias="with")
    output: dict[str, Any] | None = None
    examples: list[Example] | None = None
    tools: list[str] | None = None
    tool_choice: Literal["auto", "required"] = "auto"
    repairs: int | None = Field(default=None, ge=0)
    budget: Budget | None = None
    task: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")  # FEATURE/TASK
    # tool steps
    tool: str | None = None
    args: dict[str, Any] | None = None
    autonomy: Autonomy | None = None
    approver: str | None = None
    # human steps
    human: str | None = None
    approve: Any = None
    input: dict[str, Any] | None = None
    prompt: str | None = None
    # check steps
    check: list[str] | None = None
    cwd: str | None = None
    timeout: float | None = Field(default=None, gt=0)
    on_fail: OnFail | None = None  # check, human and tool steps
    retry: ToolRetry | None = None  # tool steps
    # flow: groups of steps
    parallel: dict[str, list[Step]] | None = None
    for_each: str | None = None
    as_: str = Field(default="item", alias="as", pattern=STEP_ID)
    max_concurrency: int = Field(default=4, ge=1, le=1000, strict=True)
    steps: list[Step] | None = None
    runbook: str | None = None
    on_error: Literal["fail", "continue"] = "fail"


STEP_KINDS = ("agent", "tool", "human", "check", "parallel", "for_each", "runbook")
STEP_KEYS: dict[str, set[str]] = {
    "agent": {"goal", "with", "output", "examples", "tools", "tool_choice", "repairs", "budget", "task"},
    "tool": {"args", "autonomy", "approver", "retry", "on_fail"},
    "human": {"approve", "input", "prompt", "output", "on_fail"},
    "check": {"cwd", "timeout", "on_fail"},
    "parallel": {"on_error"},
    "for_each": {"as", "max_concurrency", "steps", "runbook", "with", "on_error"},
    "runbook": {"with"},
}
COMMON_STEP_KEYS = {"id", "description", "when", "owner", *STEP_KINDS}


class Kpi(Strict):
    """A measure recorded when a run ends: `value` is an expression; `target` such as ">= 0.8" applies across runs."""

    value: str
    target: str | None = Field(default=None, pattern=r"^\s*(>=|<=|>|<|==)\s*-?\d+(\.\d+)?\s*$")
    description: str = ""


def _share(value: Any) -> Any:
    """A share of new runs: `20%` or 0.2."""
    if isinstance(value, str) and value.strip().endswith("%"):
        try:
            value = float(value.strip()[:-1]) / 100
        except ValueError:
            return value
    if isinstance(value, int | float) and not 0 <= value <= 1:
        raise ValueError("a share is between 0% and 100% (or 0 and 1)")
    return value


Share = Annotated[float, BeforeValidator(_share)]


class Release(Strict):
    """How a version is released against the stable one (docs/lifecycle.md): the `share` of new runs it gets,
    routed by `key` (an expression over the inputs; default the run id); `rollback_when` rolls it back by itself,
    `promote_when` proposes its promotion to a person."""

    share: Share = 0.1
    key: str | None = None
    rollback_when: str | None = None
    promote_when: str | None = None


class Trigger(Strict):
    """What starts a run without a person typing `lane run` (under `lane serve`): exactly one of
    `webhook` (POST /api/hooks/NAME, signed with `secret`), `schedule` (cron) or `watch` (a glob of files)."""

    webhook: str | None = Field(default=None, pattern=STEP_ID)
    secret: str | None = None  # env:NAME: the webhook's HMAC key
    schedule: str | None = None  # "0 9 * * 1-5", in UTC
    watch: str | None = None  # inbox/*.eml, relative to the project
    input: str | None = None  # watch: the input the new file's path is given as
    inputs: dict[str, Any] = {}  # schedule and watch: the run's other inputs


class RunbookFile(Strict):
    runbook: str
    version: int = Field(default=1, ge=1)
    track: Literal["workflow", "coding"] = "workflow"
    description: str = ""
    inputs: dict[str, Any] = {"type": "object"}
    steps: list[Step] = Field(min_length=1)
    autonomy: Autonomy = "guarded"
    approver: str | None = None
    budgets: Budget = Field(default_factory=Budget)
    kpis: dict[str, Kpi] = {}
    output: Any = None  # the run's output, with ${{ }} expressions; default: the output of its last step that ran
    triggers: list[Trigger] = []
    release: Release | None = None  # release this version to a share of new runs (feedback/releases.py)
    kill_date: date | None = None  # the date this version must be gone by (`lane killdates --check`)
    sunset: str | None = None  # the criterion for retiring it, in words ("gets no runs for 14 days")


# Keys that DESIGN.md names for features this version does not have yet:
# refused with a message that says so, rather than silently ignored.
LATER_KEYS: dict[type[BaseModel], dict[str, str]] = {}


def check_model(model: type[Strict], source: Source, loc: Loc = ()) -> tuple[Any, list[Problem]]:
    """Validate the node at `loc` of `source` against `model`: the object, or every problem."""
    data = source.data
    for part in loc:
        data = data[part]
    problems: list[Problem] = []
    if not isinstance(data, dict):
        what = f"'{loc[-1]}'" if loc else "the file"
        return None, [source.at(loc, f"{what} must be a mapping of keys, not {_kind(data)}")]
    later = LATER_KEYS.get(model, {})
    for key in [k for k in data if k in later]:
        problems.append(source.at((*loc, key), f"{later[key]} ('{key}') are not available in this version of lane yet; remove the key", key=True))
        data = {k: v for k, v in data.items() if k != key}
    try:
        return model.model_validate(data), problems
    except ValidationError as exc:
        errors = exc.errors()
        problems.extend(_dedupe((err["type"], _problem(model, source, loc, data, err)) for err in errors))
    # Unknown keys alone must not hide the file's other problems: without them, the rest is checked too.
    unknown = [_strip_union_tags(err["loc"], data) for err in errors if err["type"] == "extra_forbidden"]
    if unknown and len(unknown) == len(errors):
        try:
            checked = model.model_validate(_without(data, unknown))
        except ValidationError:
            return None, problems
        # What holds a misspelt key may now seem to lack it: that follow-on problem is not reported.
        source.damaged.update(source.position((*loc, *path[:-1])) for path in unknown)
        return checked, problems
    return None, problems


def _without(data: Any, paths: list[Loc]) -> Any:
    """`data` without the keys at `paths` (copied along the way; `data` is left as it is)."""
    if not paths:
        return data
    if isinstance(data, dict):
        drop = {p[0] for p in paths if len(p) == 1}
        return {k: _without(v, [p[1:] for p in paths if len(p) > 1 and p[0] == k]) for k, v in data.items() if k not in drop}
    if isinstance(data, list):
        return [_without(v, [p[1:] for p in paths if len(p) > 1 and p[0] == i]) for i, v in enumerate(data)]
    return data


def _dedupe(found: Iterable[tuple[str, Problem]]) -> list[Problem]:
    """One problem per place; but a missing key and an unknown key at one place are both kept
    (a misspelt required key: the did-you-mean says how to fix it)."""
    seen: dict[tuple[int, int, bool], Problem] = {}
    for kind, p in found:
        seen.setdefault((p.line, p.column, kind == "extra_forbidden"), p)
    return list(seen.values())


def _problem(model: type[Strict], source: Source, base: Loc, data: Any, err: Any) -> Problem:
    loc = _strip_union_tags(err["loc"], data)
    kind = err["type"]
    name = next((p for p in reversed(loc) if isinstance(p, str)), "")
    full = (*base, *loc)
    if kind == "missing":
        return source.at(full[:-1], f"missing required key '{name}'")
    if kind == "extra_forbidden":
        allowed = _allowed_keys(model, loc)
        near = difflib.get_close_matches(str(name), allowed, n=1, cutoff=0.6)
        hint = f" (did you mean '{near[0]}'?)" if near else f"; allowed keys: {', '.join(sorted(allowed))}"
        return source.at(full, f"unknown key '{name}'{hint}", key=True)
    if kind == "literal_error":
        expected = err.get("ctx", {}).get("expected", "")
        value = err.get("input")
        if name == "autonomy":
            return source.at(full, f"unknown autonomy level {value!r} (one of {', '.join(AUTONOMY_LEVELS)})")
        return source.at(full, f"'{name}' is {value!r}; expected {expected}")
    if loc and loc[-1] == "[key]":
        return source.at(full[:-1], f"key {err.get('input')!r} must be a name (a string), not {_kind(err.get('input'))}", key=True)
    if kind == "string_type" and err["loc"][-1:] == ("str",) and loc[-1:] != ("str",):  # a ModelEntry
        return source.at(full, f"'{name}' must be a model id such as openai:gpt-4.1-mini, or a mapping with provider, not {_kind(err.get('input'))}")
    if kind == "too_short":
        least = err.get("ctx", {}).get("min_length", 1)
        return source.at(full, f"'{name}' needs at least {least} item{'s' if least != 1 else ''}")
    if kind == "string_pattern_mismatch" and name == "id":
        return source.at(full, f"step id {err.get('input')!r} must be a name of letters, digits and '_' that does not start with a digit")
    if kind == "string_pattern_mismatch" and name == "target":
        return source.at(full, f"target {err.get('input')!r} must be a comparison with a number, such as \">= 0.8\" or \"< 30\"")
    bounds = {"greater_than_equal": ("at least", "ge"), "less_than_equal": ("at most", "le"),
              "greater_than": ("more than", "gt"), "less_than": ("less than", "lt")}
    if kind in bounds:
        words, key = bounds[kind]
        bound = err.get("ctx", {}).get(key)
        bound = int(bound) if isinstance(bound, float) and bound.is_integer() else bound
        return source.at(full, f"'{name}' must be {words} {bound}, not {err.get('input')!r}")
    expected = _EXPECTED.get(kind)
    if expected:
        return source.at(full, f"'{name}' must be {expected}, not {_kind(err.get('input'))}")
    return source.at(full, f"'{name}': {err['msg'][0].lower()}{err['msg'][1:]}")


_EXPECTED = {
    "string_type": "a string",
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "list_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
}


def _kind(value: Any) -> str:
    if value is None:
        return "empty"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def _strip_union_tags(loc: tuple[Any, ...], data: Any) -> Loc:
    """Drop the member names pydantic puts in a union's error locations."""
    out: list[str | int] = []
    node = data
    for part in loc:
        if (isinstance(node, dict) and part in node) or (isinstance(node, list) and isinstance(part, int) and part < len(node)):
            node = node[part]
            out.append(part)
        elif part not in UNION_TAGS:  # a missing key, or '[key]'
            out.append(part)
    return tuple(out)


def _allowed_keys(model: type[Strict], loc: Loc) -> list[str]:
    """The keys the model at `loc` accepts, by their file names (aliases)."""
    current: Any = model
    for part in loc[:-1]:
        if isinstance(part, int) or current is None:
            continue
        field = current.model_fields.get(part) or next(
            (f for f in current.model_fields.values() if f.alias == part), None
        )
        if field is not None:  # otherwise a key of a dict field: the model stays the same
            current = _inner_model(field.annotation)
    if current is None:
        return []
    return [f.alias or n for n, f in current.model_fields.items()]


def _inner_model(annotation: Any) -> type[Strict] | None:
    if isinstance(annotation, type) and issubclass(annotation, Strict):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _inner_model(arg)
        if found:
            return found
    return None
