"""An agent step: ask the model, run its tool calls, validate its handoff, repeat.

Read top to bottom: `run` is the loop; each turn is one model response, then
either tool calls or a handoff. Replay works because every stage looks in the
journal first: a recorded response or tool result is reused, never redone.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable
from typing import Any

from pydantic_core import PydanticSerializationError, to_jsonable_python

from lane.context.assemble import ContextTooLarge, assemble, nudge_message, repair_message, tool_message
from lane.engine.approvals import ask, decision_for
from lane.engine.budgets import agent_step_defaults, merge
from lane.engine.calls import CallRequest, call_tool, within
from lane.engine.state import RunState, StepFailed, StepRejected
from lane.errors import LaneError, ModelCallFailed, ModelError, PauseRun, StopRun, ToolError
from lane.models.base import ModelRequest, ModelResponse, Settings, Task, ToolCall, ToolSpec
from lane.models.registry import model_id
from lane.spec.expressions import as_text
from lane.spec.files import RetryPolicy
from lane.spec.runbook import StepSpec
from lane.spec.schema import schema_errors
from lane.store import values
from lane.tools.base import Lane
from lane.tools.skills import NAMES as SKILL_TOOLS


class AgentStep:
    def __init__(self, state: RunState, step: StepSpec) -> None:
        self.state = state
        self.step = step
        self.agent = state.project.agents[step.step.agent or ""]
        self.model_spec = state.project.model_spec(self.agent.file.model)
        self.model_id = model_id(self.model_spec)
        self.retry = retry_policy(state.project.config.retry, self.model_spec.retry)
        self.settings = Settings(**self.agent.file.settings.model_dump())
        # A call must be on the agent's allowlist and, where the step narrows it, on the step's too. An agent with
        # skills may always call skills.load and skills.read (which reach only its own skills).
        own = list(SKILL_TOOLS) if self.agent.file.skills and SKILL_TOOLS[0] in state.project.tools else []
        self.allowlists: tuple[tuple[str, list[str]], ...] = (("this agent's", [*self.agent.file.tools, *own]),)
        if step.step.tools is not None:
            self.allowlists += (("this step's", [*step.step.tools, *own]),)
        self.skill_tools = own
        self.limits = merge(agent_step_defaults(), self.agent.file.budget, step.step.budget)
        self.repairs = step.step.repairs if step.step.repairs is not None else self.agent.file.repairs
        self.schema = step.step.output
        self.turn = 0
        self.calls = 0
        self.rejected = 0
        self.messages: list[dict[str, Any]] = []
        self.sent = 0  # messages already journaled as sent
        self.lane = Lane(self.agent.name, tuple(self.agent.file.paths))
        self.rulesets = (("lane.yaml", state.project.rules), (f"agents/{self.agent.name}.md", self.agent.rules))
        self.tools: tuple[ToolSpec, ...] = ()

    async def run(self) -> Any:
        try:
            tools = await self.state.toolbox.allowed(self.allowlists)
        except ToolError as exc:  # an MCP server that cannot start
            raise StepFailed(str(exc)) from exc
        if self.skill_tools and not self.offers_skills():
            self.skill_tools = []
            self.allowlists = tuple((whose, [t for t in patterns if t not in SKILL_TOOLS]) for whose, patterns in self.allowlists)
        if not self.skill_tools:  # `tools: ["*"]` matches skills.load too: an agent without skills is not offered it
            tools = [t for t in tools if t.name not in SKILL_TOOLS]
        self.tools = tuple(ToolSpec(t.name, t.description, t.parameters) for t in tools)
        self.messages = self.context()
        self.lane = self.recorded_lane()
        self.sent = len(self.messages)
        self.task = self.recorded_task()
        while True:
            response = await self.ask_model()
            self.messages.append(_assistant(response))
            self.sent = len(self.messages)
            self.turn += 1
            if response.cut_off is not None:
                self.ask_shorter(response)
                continue
            if response.tool_calls:
                await self.run_tool_calls(response.tool_calls)
                continue
            if self.step.step.tool_choice == "required" and self.calls == 0:
                self.messages.append({"role": "user", "content": "Call one of your tools before you answer."})
                continue
            done, output = self.take_handoff(response)
            if done:
                feedback = self.feedback()
                if feedback is None:
                    return output
                self.messages.append({"role": "user", "content": feedback})  # a feedback loop sent a failure back

    def offers_skills(self) -> bool:
        """Whether the agent's skills are offered to its model: as recorded, once the context was; else unless the model
        says it does not use them (`uses_skills = False`, as the built-in model: a catalog only misleads it)."""
        recorded = self.state.journal.find("context_assembled", self.step.id)
        if recorded is not None:
            return SKILL_TOOLS[0] in recorded.data.get("tools", ())
        return bool(getattr(self.model, "uses_skills", True))

    def feedback(self) -> str | None:
        """What a feedback loop sent back after this turn's answer, if the answer was sent back."""
        for event in self.state.journal.find_all("loop_back", self.step.id):
            if event.data.get("after_turn") == self.turn:
                return str(event.data["message"])
        return None

    def context(self) -> list[dict[str, Any]]:
        recorded = self.state.journal.find("context_assembled", self.step.id)
        if recorded is not None:
            return list(recorded.data["messages"])
        inputs = self.step.with_.render(self.state.scope()) if self.step.with_ else {}
        if self.step.step.task is not None:
            inputs = {**inputs, "task": self.coding_task(self.step.step.task)} if isinstance(inputs, dict) else inputs
        goal = self.step.goal.render(self.state.scope()) if self.step.goal else ""
        goal = goal if isinstance(goal, str) else as_text(goal)
        try:
            ctx = assemble(self.state.project, self.agent, self.step, inputs, goal, skills=bool(self.skill_tools))
        except (ContextTooLarge, OSError) as exc:
            raise StepFailed(str(exc)) from exc
        self.state.journal.record(
            "context_assembled", self.step.id, agent=self.agent.name, model=self.model_id, messages=ctx.messages, inputs=inputs,
            goal=goal, examples=[{"with": e.with_, "output": e.output} for e in self.step.step.examples or ()],
            sources=ctx.sources, tools=[t.name for t in self.tools], estimated_tokens=ctx.estimated_tokens,
        )
        return list(ctx.messages)

    def coding_task(self, name: str) -> dict[str, Any]:
        """The coding task this step works, read when its context is assembled: its text, and the FILES its writes are held to."""
        from lane.coding.repo import top_of_repo
        from lane.coding.tasks import load_task

        feature, _, task = name.partition("/")
        try:
            spec = load_task(top_of_repo(self.state.project.root), feature, task)
        except LaneError as exc:
            raise StepFailed(f"step {self.step.id}: {exc}") from exc
        return {"name": name, "file": spec.own_files[0], "files": spec.files, "text": spec.text}

    def recorded_lane(self) -> Lane:
        """The agent's lane; for a coding task, writes held to the FILES recorded with the context (a resume holds the same)."""
        if self.step.step.task is None:
            return self.lane
        data = self.state.journal.find("context_assembled", self.step.id).data  # type: ignore[union-attr]
        files = (data.get("inputs") or {}).get("task", {}).get("files", [])
        return Lane(self.agent.name, self.lane.paths, tuple(files), self.step.step.task)

    def recorded_task(self) -> Task:
        """The step as structure, from what was recorded when its context was assembled (a resume sees the same)."""
        data = self.state.journal.find("context_assembled", self.step.id).data  # type: ignore[union-attr]
        examples = tuple((e["with"], e["output"]) for e in data.get("examples", ()))
        return Task(data["messages"][0]["content"], data.get("goal", ""), data.get("inputs"), examples)

    async def ask_model(self) -> ModelResponse:
        journal, ref = self.state.journal, f"turn:{self.turn}"
        recorded = journal.find("model_responded", self.step.id, ref)
        if recorded is not None:
            return ModelResponse.from_json(recorded.data["response"])
        self.state.meter.check_model_call(self.step.id, self.state.run_limits, self.limits)
        # What this turn adds to the conversation (tool results, repair requests): recorded as sent.
        journal.record("model_called", self.step.id, ref, model=self.model_id, added=self.messages[self.sent :])
        await journal.commit()
        request = ModelRequest(
            messages=self.messages, tools=self.tools, output_schema=self.schema,
            step_id=self.step.id, turn=self.turn, seq=self.state.meter.model_calls.get(self.model_id, 0),
            tool_choice="required" if self.step.step.tool_choice == "required" and self.calls == 0 else "auto",
            task=self.task, settings=self.settings, on_stream=self.state.on_stream,
        )
        response = self.recordable(await self.call_model(request, ref))
        journal.record("model_responded", self.step.id, ref, model=self.model_id, response=response.to_json())
        return response

    def recordable(self, response: Any) -> ModelResponse:
        """The reply as the journal keeps it, so a replay sees what ran: JSON data (stray bytes escaped, NaN made
        null, which the output schema then judges) and usage that counts. A model object given in Python may send anything."""
        if not isinstance(response, ModelResponse):
            raise ModelError(f"model {self.model_id} answered with {type(response).__name__}, not a lane.ModelResponse", run_id=self.state.run_id)
        raw = response.to_json()
        try:
            source = raw
            try:
                data, unfit = values.checked(source)  # the common case, JSON already: checked in C, kept as it is
            except TypeError:  # a date, a set, a model object: made JSON data, or refused
                source = to_jsonable_python(raw)
                data, unfit = values.checked(source)
            if unfit is not None:
                data = values.storable(source)  # NaN, Infinity: null
        except (PydanticSerializationError, UnicodeError, ValueError, TypeError) as exc:
            raise ModelError(f"model {self.model_id} answered with a value that is not JSON data: {str(exc).splitlines()[0]}",
                             run_id=self.state.run_id) from None
        usage = data.get("usage") or {}
        tokens = [usage.get("input_tokens"), usage.get("output_tokens")]
        if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in tokens):
            raise ModelError(f"model {self.model_id} reported usage that is not a count of tokens: {tokens}", run_id=self.state.run_id)
        cost = usage.get("cost_usd")
        if cost is not None and (not isinstance(cost, (int, float)) or isinstance(cost, bool) or cost < 0):
            usage["cost_usd"] = None  # not a price: counted as unknown
        return response if data is raw and usage.get("cost_usd") == cost else ModelResponse.from_json(data)

    async def call_model(self, request: ModelRequest, ref: str) -> ModelResponse:
        """One answer, retrying a provider's failures per the retry policy; when they run out the run pauses."""
        attempt = 0
        while True:
            attempt += 1
            try:
                return await self.within_budget(self.model.request(request))
            except ModelCallFailed as exc:
                wait = self.retry.wait(attempt, exc.retry_after) if exc.retryable else None
                self.state.journal.record(
                    "model_failed", self.step.id, ref, model=self.model_id, kind=exc.kind, status=exc.status,
                    error=str(exc), attempt=attempt, retry_in=wait,
                )
                self.state.journal.flush()
                if wait is None:
                    tried = f" after {attempt} attempts" if attempt > 1 else ""
                    raise PauseRun(f"step {self.step.id}: {exc}{tried}; `lane resume` tries again") from exc
                await asyncio.sleep(wait)
                self.state.meter.check_model_call(self.step.id, self.state.run_limits, self.limits)  # the wait counts too
            except ModelError as exc:
                exc.run_id = self.state.run_id
                raise
            except (LaneError, StopRun, PauseRun):
                raise
            except Exception as exc:  # a model object's own failure (one given in Python): the step's, not lane's
                raise ModelError(f"model {self.model_id} failed: {type(exc).__name__}: {exc}", run_id=self.state.run_id) from exc

    @property
    def model(self) -> Any:
        """The step's model (looked up once per run: a scripted file's change is seen by the next run)."""
        return self.state.model(self.agent.file.model, self.model_spec)

    async def within_budget(self, reply: Awaitable[ModelResponse]) -> ModelResponse:
        """The model's reply, unless a wall_seconds budget runs out first: then the run stops (a resume asks again)."""
        budget = self.state.meter.time_left(self.step.id, self.state.run_limits, self.limits)
        if budget is None:
            return await reply
        finished, response = await within(reply, budget[0])
        if not finished or response is None:
            raise budget[1]
        return response

    async def run_tool_calls(self, calls: tuple[ToolCall, ...]) -> None:
        for call in calls:
            self.calls += 1
            request = CallRequest(
                self.step, f"{self.step.id}:{self.calls}", call.name, call.args, self.agent.file.autonomy,
                self.allowlists, self.state.approver_roles(self.step), self.limits, self.lane, self.rulesets,
            )
            outcome = await call_tool(self.state, request)
            # What the tool returned is outside data; lane's own word (refused, rejected, proposed) is not, nor a skill's
            # text, which a person of the project wrote.
            skill = call.name in SKILL_TOOLS
            self.messages.append(tool_message(request.call_id, call.name, outcome.result, untrusted=outcome.ran and not skill))
            if skill and outcome.ran and call.name == SKILL_TOOLS[0]:
                await self.narrow(str(call.args.get("name", "")))

    async def narrow(self, name: str) -> None:
        """A loaded skill's `allowed-tools` narrow the agent's tools for the turns after (never widen them): only the
        tools the agent may call that it names stay. Naming none of them, it changes nothing."""
        skill = self.state.project.skills.get(name)
        if skill is None or not skill.allowed_tools:
            return
        tools = await self.state.toolbox.allowed(self.allowlists)
        kept = [t.name for t in tools if t.name not in SKILL_TOOLS and self.state.project.allows(list(skill.allowed_tools), t.name)]
        if not kept:
            return
        self.allowlists += ((f"skill {name}'s allowed-tools", [*kept, *self.skill_tools]),)
        narrowed = await self.state.toolbox.allowed(self.allowlists)
        self.tools = tuple(ToolSpec(t.name, t.description, t.parameters) for t in narrowed)

    def ask_shorter(self, response: ModelResponse) -> None:
        """A reply cut off at the token limit is a failed attempt, like an output that does not fit the schema: the
        model is asked again, shorter, while repairs last; then the step fails, saying what to change."""
        self.rejected += 1
        error = f"the reply was cut off at {response.cut_off} tokens, before it was complete"
        self.state.journal.once("handoff_rejected", self.step.id, f"turn:{self.turn - 1}", errors=[error], output=response.text,
                                attempt=self.rejected)
        if self.rejected > self.repairs:
            raise StepFailed(f"step {self.step.id}: {error} ({self.rejected} replies in all); raise `settings: max_tokens:` in "
                             f"agents/{self.agent.name}.md, bound the output schema (maxLength, maxItems), or make the step ask for less")
        self.messages.append({"role": "user", "content": f"Your reply was cut off at {response.cut_off} tokens, before it was "
                              "complete. Reply again, shorter: a tool call with short arguments, or a short output."})

    def take_handoff(self, response: ModelResponse) -> tuple[bool, Any]:
        if self.schema is None:
            return True, response.output if response.has_output else response.text
        candidate = response.output if response.has_output else _parse_json(response.text)
        if candidate is _NOT_JSON:
            self.messages.append(nudge_message())
            return False, None
        errors = schema_errors(self.schema, candidate)
        if not errors:
            return True, candidate
        self.rejected += 1
        self.state.journal.once("handoff_rejected", self.step.id, f"turn:{self.turn - 1}", errors=errors, output=candidate, attempt=self.rejected)
        if self.rejected <= self.repairs:
            self.messages.append(repair_message(errors))
            return False, None
        return True, self.person_takes_handoff(candidate, errors)

    def person_takes_handoff(self, candidate: Any, errors: list[str]) -> Any:
        """Repairs are used up: a person supplies a valid output, or rejects the step."""
        decision = decision_for(self.state.journal, self.step.id, self.step.id, "handoff")
        if decision is None:
            raise ask(
                self.state.journal, self.step.id, self.step.id, "handoff",
                question=f"agent {self.agent.name}'s output for step {self.step.id} is still invalid after {self.repairs} repair(s); "
                "approve --edit JSON with a valid output, or reject",
                roles=self.state.approver_roles(self.step), output=candidate, errors=errors, schema=self.schema,
            )
        if decision.data["decision"] == "rejected":
            raise StepRejected(f"the handoff of step {self.step.id} was rejected by {decision.data['by']}: {decision.data.get('reason') or ''}".rstrip(": "))
        return decision.data["edited"]


def retry_policy(project: RetryPolicy, model: RetryPolicy | None) -> RetryPolicy:
    """The project's policy, with what a model's own `retry:` sets."""
    if model is None:
        return project
    return project.model_copy(update=model.model_dump(exclude_unset=True))


_NOT_JSON: Any = object()


def _parse_json(text: str | None) -> Any:
    if not text:
        return _NOT_JSON
    cleaned = text.strip().removeprefix("```json").removeprefix("```").removesuffix("```").strip()
    try:
        return json.loads(cleaned)
    except ValueError:
        return _NOT_JSON


def _assistant(response: ModelResponse) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": response.text}
    if response.tool_calls:
        message["tool_calls"] = [{"name": c.name, "args": c.args} for c in response.tool_calls]
    if response.has_output:
        message["output"] = response.output
    return message
