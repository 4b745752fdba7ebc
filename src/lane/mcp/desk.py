"""What `lane mcp` offers over a `Project`, with no MCP SDK in sight: the tools, their calls, the resources.

`lane.mcp.server` turns these into the MCP protocol. A runbook's tool is `run_` and the runbook's name with
every character outside letters, digits, `_` and `-` made `_`, cut to 64 characters (what Claude, OpenAI and
Cursor accept); a name that two runbooks would share, or that a fixed tool has (`run_status`), gets `_2`, `_3`...
Runs started here are executed by this process, as `lane serve` executes them; a decision resumes its run here too.
"""

from __future__ import annotations

import asyncio
import copy
import json
import re
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lane.errors import LaneError
from lane.mcp import coding
from lane.mcp.tooling import MAX_WAIT, READ, Refused, ToolDef, number, optional_text, text

if TYPE_CHECKING:
    from lane.project import Project
    from lane.spec.runbook import RunbookSpec, StepSpec

WAIT = 30.0  # seconds a call waits for its run to finish or pause, unless it says (at most MAX_WAIT)
WAIT_KEY = "_wait"  # the property a runbook's tool adds to its inputs: not an input, how long to wait
RUNS_LISTED = 50  # runs listed as resources, newest first; any other is read by its URI


@dataclass(frozen=True)
class Resource:
    uri: str
    name: str
    title: str
    description: str
    mime_type: str = "application/json"


def tool_names(runbooks: list[str]) -> dict[str, str]:
    """Each runbook's tool name -> the runbook (see the module's docstring). The fixed tools' names are taken first,
    whether or not this server offers them: a runbook named `status` is `run_status_2`, never `run_status`."""
    fixed = {tool.name for tool in [*RUN_TOOLS, DECIDE, *coding.TOOLS]}
    names: dict[str, str] = {}
    for runbook in sorted(runbooks):
        base = ("run_" + re.sub(r"[^A-Za-z0-9_-]", "_", runbook))[:64]
        name, n = base, 2
        while name in names or name in fixed:
            name, n = f"{base[: 64 - len(str(n)) - 1]}_{n}", n + 1
        names[name] = runbook
    return names


class Desk:
    """The tools and resources of one `lane mcp` process: a project's runbooks (when `project` is given), the
    runs, decisions as `person` (when given), and the coding track's reports over the folder `root`."""

    def __init__(self, root: Path, project: Project | None, person: str | None) -> None:
        from lane.secrets import Redactor

        self.root, self.project, self.person = root, project, person
        self.redact = Redactor(project.spec.secrets if project else ())
        self.runbooks = tool_names(list(project.spec.runbooks)) if project else {}
        self.executing: dict[str, asyncio.Task[Any]] = {}  # run id -> the task executing it in this process, until it ends
        self._worker: Any = None
        self._calls: dict[str, Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]] = {
            "run_status": self.run_status, "pending": self.pending, "show_run": self.show_run, "decide": self.decide}

    @property
    def worker(self) -> Any:
        from lane.serve.worker import Worker

        if self._worker is None:
            self._worker = Worker(self._project)
        return self._worker

    @property
    def _project(self) -> Project:
        if self.project is None:
            raise Refused(f"no lane.yaml in {self.root}: only the coding track's tools are served here")
        return self.project

    async def close(self) -> None:
        """Stop executing: a run still running stays resumable (`lane resume`); close the store."""
        if self._worker is not None:
            await self._worker.stop()
        if self.project is not None:
            self.project.close()

    # -- the tools --------------------------------------------------------------

    def tools(self) -> list[ToolDef]:
        found = [self._run_tool(name, book) for name, book in self.runbooks.items()] if self.project else []
        if self.project is not None:
            found += RUN_TOOLS + ([DECIDE] if self.person else [])
        return found + coding.TOOLS

    def _run_tool(self, name: str, runbook: str) -> ToolDef:
        book = self._project.spec.runbooks[runbook]
        schema = copy.deepcopy(book.file.inputs) if isinstance(book.file.inputs, dict) else {}
        schema["type"] = "object"
        properties = schema.setdefault("properties", {})
        if isinstance(properties, dict) and WAIT_KEY not in properties:
            properties[WAIT_KEY] = {"type": "number", "minimum": 0, "maximum": MAX_WAIT, "default": WAIT,
                                    "description": "Not an input: how many seconds to wait for the run to finish or wait for a "
                                                   "person before answering with its status (run_status asks again later)."}
        effects = _effects(self._project, book, set())
        signs = sorted({str(s.step.human) for _, s, _ in _rows(book) if s.kind == "human"})
        who = f" It waits for a person ({', '.join(signs)}) where the runbook says so." if signs else ""
        about = book.file.description.strip() or f"Runbook {runbook}."
        return ToolDef(
            name, f"Run {runbook}", f"{about} Starts a run of runbook {runbook} (v{book.file.version}) with these inputs; lane "
            f"executes it until it completes, fails or waits for a person, and answers with its run_id, status and, once "
            f"completed, its output.{who}", schema,
            read_only=False, destructive=bool(effects & {"write", "external"}), idempotent=False, open_world="external" in effects)

    async def call(self, name: str, args: dict[str, Any]) -> dict[str, Any]:
        """The tool's answer, redacted; Refused (a one-line message) for anything the caller got wrong."""
        if not isinstance(args, dict):
            raise Refused("the arguments must be a JSON object")
        try:
            if name in self.runbooks and self.project is not None:
                found = await self.start(self.runbooks[name], args)
            elif name in self._calls and self.project is not None and (name != "decide" or self.person):
                found = await self._calls[name](args)
            elif name in coding.CALLS:
                found = await coding.call(self.root, name, args)
            else:
                raise Refused(f"no tool {name!r} here; tools/list names them")
        except LaneError as exc:
            raise Refused(str(exc)) from None
        return self.redact(found)  # type: ignore[no-any-return]

    async def start(self, runbook: str, args: dict[str, Any]) -> dict[str, Any]:
        inputs, wait = dict(args), WAIT
        if WAIT_KEY not in (self._project.spec.runbooks[runbook].file.inputs.get("properties") or {}):  # else it is an input
            wait = number(inputs, WAIT_KEY, WAIT)
            inputs.pop(WAIT_KEY, None)
        run_id, work = self._project.start(runbook, inputs)
        self._executing(run_id, self.worker.execute(run_id, work))
        return await self._settled(run_id, wait)

    def _executing(self, run_id: str, task: asyncio.Task[Any]) -> None:
        """Keep `task` as the one executing `run_id` until it ends: a server that runs for weeks keeps no finished task."""
        self.executing[run_id] = task

        def ended(done: asyncio.Task[Any]) -> None:
            if self.executing.get(run_id) is done:  # not a later task of the same run (resumed after a decision)
                del self.executing[run_id]

        task.add_done_callback(ended)

    async def run_status(self, args: dict[str, Any]) -> dict[str, Any]:
        return await self._settled(text(args, "run_id"), number(args, "wait", 0))

    async def pending(self, args: dict[str, Any]) -> dict[str, Any]:
        from lane.serve.people import roles_of

        project = self._project
        run_id = optional_text(args, "run_id")
        records = [project.store.run(run_id)] if run_id else [r for r in project.runs() if r.status == "paused" and r.parent_id is None]
        mine = set(roles_of(project, self.person)) if self.person else set()
        found = []
        for record in records:
            for item in project.pending(record.run_id):
                entry = {"run_id": record.run_id, "runbook": record.runbook, **item.to_json()}
                if self.person:
                    entry["you_may_decide"] = bool(mine & set(item.roles))
                found.append(entry)
        return {"pending": sorted(found, key=lambda p: str(p["requested_at"]))}

    async def show_run(self, args: dict[str, Any]) -> dict[str, Any]:
        return self._project.show(text(args, "run_id"))

    async def decide(self, args: dict[str, Any]) -> dict[str, Any]:
        from lane.serve.people import Forbidden, decide_as

        assert self.person is not None
        run_id, approve = text(args, "run_id"), args.get("approve")
        if not isinstance(approve, bool):
            raise Refused("decide needs approve: true or false")
        data = {k: args[k] for k in ("edit", "patch", "result", "reason") if args.get(k) is not None}
        try:
            decision = decide_as(self._project, self.person, run_id, optional_text(args, "call"), approve, data)
        except Forbidden as exc:
            raise Refused(str(exc)) from None
        task = self.worker.resume_if_decided(decision.run_id)
        root = self._project._root(self._project.store.run(decision.run_id)).run_id  # a child's decision goes on in its parent
        if task is not None:
            self._executing(root, task)
        shown = {"decision": {"run_id": decision.run_id, "call_id": decision.call_id, "kind": decision.kind,
                              "decision": decision.decision, "by": decision.by}}
        return shown | await self._settled(root, number(args, "wait", WAIT))

    async def _settled(self, run_id: str, wait: float) -> dict[str, Any]:
        """The run's status once it finished or waits for a person, or once `wait` seconds passed."""
        project = self._project
        record = project.store.run(run_id)
        task = self.executing.get(record.run_id)
        if task is not None and not task.done() and wait > 0:
            await asyncio.wait({task}, timeout=wait)  # the run goes on past the wait: only the answer comes earlier
        record = project.store.run(record.run_id)
        found: dict[str, Any] = {"run_id": record.run_id, "runbook": record.runbook, "version": record.version,
                                 "status": record.status, "reason": record.reason}
        if record.status == "running" and task is not None and not task.done():
            found["note"] = "still running in this server; ask run_status again (its wait argument waits for it)"
        if record.status == "completed":
            found["output"] = project.output(record.run_id)
        if record.status == "paused":
            found["pending"] = [p.to_json() for p in project.pending(record.run_id)]
            found["waiting_for"] = sorted({r for p in found["pending"] for r in p.get("roles", ())})
        return found

    # -- the resources ----------------------------------------------------------

    def resources(self) -> list[Resource]:
        if self.project is None:
            return []
        found = [Resource(f"lane://runbooks/{_quote(name)}/chart", f"chart:{name}", f"Work chart of {name}",
                          f"Who does what in runbook {name}: each step, its owner, autonomy and tools, and where a person signs off.")
                 for name in sorted(self.project.spec.runbooks)]
        for record in self.project.runs()[:RUNS_LISTED]:
            found.append(Resource(f"lane://runs/{record.run_id}", f"run:{record.run_id}", f"Run {record.run_id} of {record.runbook}",
                                  f"The timeline of run {record.run_id} ({record.runbook} v{record.version}, {record.status})."))
        return found

    def read(self, uri: str) -> dict[str, Any]:
        """The resource's content (JSON data, redacted); Refused for a URI that names nothing here."""
        project = self._project
        match = re.fullmatch(r"lane://(runbooks/(?P<book>[^/]+)/chart|runs/(?P<run>[^/]+))", uri)
        if match is None:
            raise Refused(f"no resource {uri!r}: lane://runbooks/NAME/chart and lane://runs/RUN_ID are served")
        try:
            if match["run"] is not None:
                return self.redact(project.show(urllib.parse.unquote(match["run"])))  # type: ignore[no-any-return]
            name = urllib.parse.unquote(match["book"])
            if name not in project.spec.runbooks:
                raise Refused(f"no runbook {name!r} (runbooks: {', '.join(sorted(project.spec.runbooks)) or 'none'})")
            return self.redact(work_chart(project, project.spec.runbooks[name]))  # type: ignore[no-any-return]
        except LaneError as exc:
            raise Refused(str(exc)) from None


def work_chart(project: Project, book: RunbookSpec) -> dict[str, Any]:
    """The work chart as data: the roles, and each step in order with its owner (the console draws the same)."""
    from lane.serve.chart import describe

    steps = []
    for depth, step, prefix in _rows(book):
        owner, detail, signs = describe(project.spec, book, step)
        steps.append({"id": prefix + step.step.id, "depth": depth, "kind": step.kind, "owner": owner, "detail": detail,
                      "person_signs_off": signs})
    roles = {name: {"kind": role.kind, "description": role.description} for name, role in project.spec.config.roles.items()}
    return {"runbook": book.name, "version": book.file.version, "description": book.file.description, "roles": roles, "steps": steps}


def _rows(book: RunbookSpec) -> list[tuple[int, StepSpec, str]]:
    from lane.serve.chart import chart_rows

    return chart_rows(book)


def _effects(project: Project, book: RunbookSpec, seen: set[str]) -> set[str]:
    """The effects of every tool a run of `book` may call (its child runbooks' too); `external` for a tool known only
    once its MCP server lists it."""
    spec, found = project.spec, set[str]()
    seen.add(book.name)
    for _, step, _ in _rows(book):
        s = step.step
        names: list[str] = []
        if step.kind == "tool" and s.tool:
            names = [s.tool]
        elif step.kind == "agent":
            agent = spec.agents.get(s.agent or "")
            allowlist = s.tools if s.tools is not None else (agent.file.tools if agent else [])
            names = [name for name in spec.tools if spec.allows(allowlist, name)]
            if any(entry.partition(".")[0] in spec.mcp for entry in allowlist):
                found.add("external")
        found |= {spec.tools[name].effect if name in spec.tools else "external" for name in names}
        if s.runbook and s.runbook in spec.runbooks and s.runbook not in seen:
            found |= _effects(project, spec.runbooks[s.runbook], seen)
    return found


def _quote(name: str) -> str:
    return urllib.parse.quote(name, safe="")


def answer_text(data: Any) -> str:
    """The answer as JSON text, as `--json` prints it: no secret of a loaded project, no NaN, lone surrogates escaped."""
    from lane.secrets import scrub, scrub_data
    from lane.store.values import storable

    return scrub(json.dumps(storable(scrub_data(data)), indent=2, ensure_ascii=False, default=str, allow_nan=False))


_RUN_ID = {"type": "string", "description": "A run id, or a unique prefix of one."}
RUN_TOOLS = [
    ToolDef("run_status", "Run status", "A run's status (running, paused, completed, failed, rejected, stopped), why, its output once "
            "completed and what it waits for when paused. With wait, waits up to that many seconds for a run this server "
            "executes to finish or pause.",
            {"type": "object", "properties": {"run_id": _RUN_ID, "wait": {"type": "number", "minimum": 0, "maximum": MAX_WAIT,
                                                                           "default": 0}}, "required": ["run_id"]}, **READ),
    ToolDef("pending", "What waits for a person", "What a paused run waits for a person to decide (each item with the roles that "
            "may decide it); without run_id, everything every paused run waits for, oldest first.",
            {"type": "object", "properties": {"run_id": _RUN_ID}}, **READ),
    ToolDef("show_run", "Run timeline", "A run's timeline, as `lane show` gives it: steps, what each agent saw, outputs, tool "
            "calls, approvals, tokens and times; secrets redacted.",
            {"type": "object", "properties": {"run_id": _RUN_ID}, "required": ["run_id"]}, **READ),
]
DECIDE = ToolDef(
    "decide", "Decide for a run", "Approve or reject what a paused run waits for, as the person this server runs as, in one of "
    "their roles (refused when none may decide it). Recorded at once; the run then goes on in this server, and the answer "
    "is its status after up to wait seconds.",
    {"type": "object", "properties": {
        "run_id": _RUN_ID, "approve": {"type": "boolean", "description": "true approves, false rejects."},
        "call": {"type": "string", "description": "Which pending item (its call_id); needed when several wait."},
        "reason": {"type": "string", "description": "Why: required to reject; recorded and shown to the agent."},
        "edit": {"description": "Approve with this value instead: the call's arguments, the step's value or the agent's output, whole."},
        "patch": {"type": "object", "description": "Approve with this JSON merge patch (RFC 7396) applied to the value."},
        "result": {"description": "For a call left in doubt by a crash: it took effect, with this result."},
        "wait": {"type": "number", "minimum": 0, "maximum": MAX_WAIT, "default": WAIT},
    }, "required": ["run_id", "approve"]},
    read_only=False, destructive=True, idempotent=False, open_world=True)
