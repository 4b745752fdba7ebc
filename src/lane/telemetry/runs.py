"""A run's spans, folded from its journal one event at a time.

The run has a span per segment: from `run_started`, `run_resumed` or
`run_retried` to the pause, stop or end that follows (a segment whose process
died ends `interrupted` when the next one begins), linked to the segment before.
Under it, a span per step; under a step, a `chat` span per model turn and an
`execute_tool` span per tool call. A step still going when its segment ends
(waiting for a person) ends its span with it, and goes on in a new span of the
next segment, linked to the first: the request is an event on the first, the
person's decision an event on the second.

An event is folded `live` when this process just committed it: the spans it
ends are exported. Events read back from the store are folded only to know
where the run stands: an earlier process exported their spans. A decision is
written outside any run; the segment after it takes it up.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lane.engine.journal import among, enclosing
from lane.store.records import Event
from lane.telemetry.genai import (
    AGENT,
    CHAT,
    TOOL,
    WORKFLOW,
    Content,
    assistant,
    error_type,
    finish_reason,
    messages,
    model_attributes,
    provider_and_model,
    reply,
)
from lane.telemetry.spans import Span, span_id, trace_id

ENDINGS = {"run_paused": "paused", "run_stopped": "stopped", "run_completed": "completed", "run_failed": "failed",
           "run_rejected": "rejected"}
STEP_ENDINGS = {"step_finished": "completed", "step_failed": "failed", "step_rejected": "rejected"}
SETTLED = {"tool_call_refused": "refused", "tool_call_invalid": "invalid", "tool_call_proposed": "proposed"}
UNBOUND = ("run_started", "run_resumed", "run_retried", "decision")  # folded with no segment running


@dataclass
class Step:
    kind: str
    piece: Span | None = None  # its span in the running segment


@dataclass
class Call:
    attributes: dict[str, Any]
    args: Any = None  # kept only with content
    span: Span | None = None  # opened by its first event in the running segment
    ran: bool = False  # the tool started in the running segment
    timed_out: bool = False


@dataclass
class RunTrace:
    run_id: str
    content: Content | None  # None: no prompt, output, argument, result or free text goes in a span
    seq: int = 0  # the last event folded, and its time
    at: str = ""
    live: bool = False
    run: dict[str, Any] = field(default_factory=dict)  # what run_started says, on every segment's span
    segment: Span | None = None
    previous: int | None = None  # the span of the segment before
    steps: dict[str, Step] = field(default_factory=dict)  # steps going on, in the order they started
    last: dict[str, int] = field(default_factory=dict)  # step -> its latest span, which a later one links to
    agents: dict[str, tuple[str, str]] = field(default_factory=dict)  # agent step -> (agent, model id)
    conversations: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # agent step -> what its model was sent
    turns: dict[tuple[str | None, str | None], Span] = field(default_factory=dict)
    calls: dict[tuple[str | None, str | None], Call] = field(default_factory=dict)
    decided: list[Event] = field(default_factory=list)  # decisions since the last segment ended
    ended: list[Span] = field(default_factory=list)  # spans that live events ended, to export

    @property
    def trace_id(self) -> int:
        return trace_id(self.run_id)

    def fold(self, event: Event, *, live: bool) -> None:
        handler = HANDLERS.get(event.type)
        if handler is not None and (self.segment is not None or event.type in UNBOUND):
            self.live = live
            handler(self, event)
        self.seq, self.at = event.seq, event.at

    def take(self) -> list[Span]:
        """The spans ended since the last take."""
        ended, self.ended = self.ended, []
        return ended

    # -- the run ---------------------------------------------------------------

    def _started(self, e: Event) -> None:
        self.run = {"lane.runbook": e.data.get("runbook"), "lane.runbook.version": e.data.get("version"),
                    "lane.run.parent_id": e.data.get("parent_id"), "lane.run.parent_step": e.data.get("parent_step")}
        self._open(e, "started")
        self._put(self._segment.attributes, "lane.run.inputs", e.data.get("inputs"))

    def _resumed(self, e: Event) -> None:
        self._open(e, "resumed")

    def _retried(self, e: Event) -> None:
        again, keep = set(e.data.get("steps", ())), set(e.data.get("keep", ()))
        for step_id in [s for s in self.steps if among(s, again) and not among(s, keep)]:
            del self.steps[step_id]
        self._open(e, "retried")

    def _open(self, e: Event, how: str) -> None:
        if self.segment is not None:  # the process running it stopped without a word
            self._close(self.at, "interrupted")
        runbook = str(self.run.get("lane.runbook"))
        self.segment = Span(f"{WORKFLOW} {runbook}", span_id(self.run_id, "run", e.seq), None, e.at,
                            attributes={"gen_ai.operation.name": WORKFLOW, "gen_ai.workflow.name": runbook,
                                        "lane.run.id": self.run_id, **self.run, "lane.run.segment": how},
                            links=[self.previous] if self.previous else [])
        for step_id, step in self.steps.items():  # started in an earlier segment: goes on in this one
            step.piece = self._piece(step_id, step.kind, e)
        for decision in self.decided:
            self._take(decision, e)
        self.decided = []

    def _ended(self, e: Event) -> None:
        status, attributes = ENDINGS[e.type], self._segment.attributes
        attributes.update({"lane.run.stopped_by": e.data.get("key"), "lane.run.stopped_scope": e.data.get("scope")})
        self._put(attributes, "lane.run.reason", e.data.get("reason"))
        self._put(attributes, "lane.run.output", e.data.get("output"))
        if status == "failed":
            self._segment.error = "run_failed"
        self._close(e.at, status)

    def _close(self, at: str, status: str) -> None:
        """End the segment and what is still open in it, as `status`. A call that waits for a person has no span
        yet: its span is made where it ends. Steps and calls go on in the next segment."""
        for call in self.calls.values():
            if call.span is not None and call.ran:
                self._end_call(call, at, "timed_out" if call.timed_out else status, error="timeout" if call.timed_out else None)
            call.span, call.ran = None, False
        for turn in self.turns.values():
            turn.error = status
            self._end(turn, at)
        self.turns = {}
        for step_id, step in self.steps.items():
            if step.piece is not None:
                step.piece.attributes["lane.step.status"] = status
                self._end_piece(step_id, step.piece, at)
                step.piece = None
        segment = self._segment
        segment.attributes["lane.run.status"] = status
        self._end(segment, at)
        self.previous, self.segment = segment.span_id, None

    def _budget(self, e: Event) -> None:
        limits = e.data.get("limits") or {}
        self._segment.events.append(("budget_raised", e.at, {f"lane.budget.{key}": value for key, value in limits.items()}))

    # -- steps -----------------------------------------------------------------

    def _step_started(self, e: Event) -> None:
        step_id = str(e.step_id)
        step = self.steps[step_id] = Step(str(e.data.get("kind", "")))
        step.piece = self._piece(step_id, step.kind, e)

    def _piece(self, step_id: str, kind: str, e: Event) -> Span:
        """The step's span in this segment, opened by `e`, linked to its span before if it had one."""
        span = Span(f"step {step_id}", span_id(self.run_id, "step", step_id, e.seq), self._parent(step_id), e.at,
                    attributes={"lane.step.id": step_id, "lane.step.kind": kind},
                    links=[self.last[step_id]] if step_id in self.last else [])
        if step_id in self.agents:
            self._agent(span, *self.agents[step_id])
        return span

    def _agent(self, span: Span, agent: str, model: str) -> None:
        span.name = f"{AGENT} {agent}"
        span.attributes.update({"gen_ai.operation.name": AGENT, "gen_ai.agent.name": agent, **model_attributes(model)})

    def _context(self, e: Event) -> None:
        step_id = str(e.step_id)
        self.agents[step_id] = (str(e.data.get("agent")), str(e.data.get("model")))
        step = self.steps.get(step_id)
        if step is not None and step.piece is not None:
            self._agent(step.piece, *self.agents[step_id])
        if self.content is not None:
            self.conversations[step_id] = list(e.data.get("messages") or ())

    def _step_ended(self, e: Event) -> None:
        step_id = str(e.step_id)
        step = self.steps.pop(step_id, None)
        if step is None or step.piece is None:
            return
        piece, status = step.piece, STEP_ENDINGS[e.type]
        piece.attributes.update({"lane.step.status": status, "lane.step.edited": e.data.get("edited"),
                                 "lane.step.approved_by": e.data.get("approved_by")})
        self._put(piece.attributes, "lane.step.output", e.data.get("output"))
        self._put(piece.attributes, "lane.step.error", e.data.get("error"))
        if status == "failed":
            piece.error = "step_failed"
        self._end_piece(step_id, piece, e.at)

    def _skipped(self, e: Event) -> None:
        step_id = str(e.step_id)
        span = Span(f"step {step_id}", span_id(self.run_id, "step", step_id, e.seq), self._parent(step_id), e.at,
                    attributes={"lane.step.id": step_id, "lane.step.status": "skipped"})
        self._end(span, e.at)

    def _loop_back(self, e: Event) -> None:
        """A feedback loop sends a failure back to this agent step, which finished: it goes on, in a new span."""
        step_id = str(e.step_id)
        step = self.steps[step_id] = Step("agent")
        step.piece = self._piece(step_id, step.kind, e)
        step.piece.attributes["lane.step.attempt"] = e.data.get("attempt")

    def _child(self, e: Event) -> None:
        self._target(e.step_id).attributes["lane.child.run_id"] = e.data.get("run_id")

    def _end_piece(self, step_id: str, piece: Span, at: str) -> None:
        self.last[step_id] = piece.span_id
        self._end(piece, at)

    # -- model turns -------------------------------------------------------------

    def _called(self, e: Event) -> None:
        model = str(e.data.get("model", ""))
        turn = e.ref or ""
        span = Span(f"{CHAT} {provider_and_model(model)[1]}", span_id(self.run_id, "chat", e.step_id, turn, e.seq),
                    self._target(e.step_id).span_id, e.at, client=True,
                    attributes={"gen_ai.operation.name": CHAT, **model_attributes(model), "lane.step.id": e.step_id,
                                "lane.turn": int(turn.partition(":")[2] or 0)})
        if self.content is not None:
            conversation = self.conversations.setdefault(str(e.step_id), [])
            conversation += e.data.get("added") or ()
            self._put(span.attributes, "gen_ai.input.messages", messages(conversation))
        self.turns[(e.step_id, e.ref)] = span

    def _responded(self, e: Event) -> None:
        span = self.turns.pop((e.step_id, e.ref), None)
        if span is None:
            return
        response = e.data.get("response") or {}
        usage = response.get("usage") or {}
        span.attributes.update({"gen_ai.usage.input_tokens": usage.get("input_tokens"), "gen_ai.usage.output_tokens": usage.get("output_tokens"),
                                "lane.cost_usd": usage.get("cost_usd"), "gen_ai.response.finish_reasons": [finish_reason(response)]})
        self._put(span.attributes, "gen_ai.output.messages", [reply(response)])
        if self.content is not None:
            self.conversations.setdefault(str(e.step_id), []).append(assistant(response))
        step = self._target(e.step_id)
        for total in (step, self._segment) if step is not self._segment else (step,):
            total.add("lane.usage.input_tokens", usage.get("input_tokens") or 0)
            total.add("lane.usage.output_tokens", usage.get("output_tokens") or 0)
            if usage.get("cost_usd") is not None:
                total.add("lane.cost_usd", usage["cost_usd"])
        self._end(span, e.at)

    def _model_failed(self, e: Event) -> None:
        span = self.turns.get((e.step_id, e.ref))
        if span is None:
            return
        attributes = {"error.type": e.data.get("kind"), "lane.attempt": e.data.get("attempt"), "http.response.status_code": e.data.get("status")}
        self._put(attributes, "lane.error", e.data.get("error"))
        span.events.append(("model_failed", e.at, attributes))
        if e.data.get("retry_in") is None:  # no more tries: the run pauses
            del self.turns[(e.step_id, e.ref)]
            span.error = str(e.data.get("kind") or "_OTHER")
            self._end(span, e.at)

    def _handoff_rejected(self, e: Event) -> None:
        attributes: dict[str, Any] = {"lane.attempt": e.data.get("attempt")}
        self._put(attributes, "lane.errors", e.data.get("errors"))
        self._target(e.step_id).events.append(("handoff_rejected", e.at, attributes))

    # -- tool calls ------------------------------------------------------------

    def _requested(self, e: Event) -> None:
        call = self.calls[(e.step_id, e.ref)] = Call(
            {"gen_ai.operation.name": TOOL, "gen_ai.tool.name": e.data.get("tool"), "gen_ai.tool.call.id": e.ref, "gen_ai.tool.type": "function",
             "lane.step.id": e.step_id, "lane.tool.effect": e.data.get("effect"), "lane.tool.autonomy": e.data.get("level")},
            args=e.data.get("args") if self.content is not None else None)
        self._call_span(call, e)

    def _gated(self, e: Event) -> None:
        call = self.calls.get((e.step_id, e.ref))
        if call is not None:
            call.attributes.update({"lane.tool.gate": e.data.get("gate"), "lane.tool.basis": e.data.get("basis")})

    def _settled(self, e: Event) -> None:
        """Refused, invalid or proposed: decided without running the tool."""
        call = self.calls.pop((e.step_id, e.ref), None)
        if call is None:
            return
        if e.data.get("basis") is not None:
            call.attributes["lane.tool.basis"] = e.data["basis"]
        span = self._call_span(call, e)
        self._put(span.attributes, "gen_ai.tool.call.result", e.data.get("result"))
        self._end_call(call, e.at, SETTLED[e.type], error="invalid_arguments" if e.type == "tool_call_invalid" else None)

    def _touched(self, e: Event) -> None:
        """An approval used for the call, or the tool starting: the call's span in this segment begins here if not before."""
        call = self.calls.get((e.step_id, e.ref))
        if call is None:
            return
        self._call_span(call, e)
        if e.type == "tool_started":
            call.ran = True
            call.attributes["lane.tool.attempt"] = e.data.get("attempt")

    def _timed_out(self, e: Event) -> None:
        call = self.calls.get((e.step_id, e.ref))
        if call is not None:
            call.timed_out = True

    def _finished(self, e: Event) -> None:
        call = self.calls.pop((e.step_id, e.ref), None)
        if call is None:
            return
        span = self._call_span(call, e)
        ok = e.data.get("status") == "ok"
        call.attributes["lane.tool.settled_by"] = e.data.get("settled_by")
        self._put(span.attributes, "gen_ai.tool.call.result", e.data.get("result") if ok else e.data.get("error"))
        error = None if ok else "timeout" if e.data.get("effect_unknown") else error_type(str(e.data.get("error") or ""))
        self._end_call(call, e.at, "ok" if ok else "error", error=error)

    def _call_span(self, call: Call, e: Event) -> Span:
        if call.span is None:
            tool = call.attributes["gen_ai.tool.name"]
            call.span = Span(f"{TOOL} {tool}", span_id(self.run_id, "tool", e.step_id, e.ref, e.seq), self._target(e.step_id).span_id, e.at)
        return call.span

    def _end_call(self, call: Call, at: str, status: str, *, error: str | None = None) -> None:
        span = call.span
        assert span is not None
        span.attributes.update({**call.attributes, "lane.tool.status": status})
        self._put(span.attributes, "gen_ai.tool.call.arguments", call.args)
        span.error = error
        self._end(span, at)
        call.span = None

    # -- people ----------------------------------------------------------------

    def _asked(self, e: Event) -> None:
        attributes = {"lane.approval.kind": e.data.get("kind"), "lane.call_id": e.ref, "lane.approval.roles": list(e.data.get("roles") or ()),
                      "gen_ai.tool.name": e.data.get("tool")}
        self._put(attributes, "lane.approval.question", e.data.get("question"))
        self._target(e.step_id).events.append(("approval_requested", e.at, attributes))

    def _decision(self, e: Event) -> None:
        self.decided.append(e)
        call = self.calls.get((e.step_id, e.ref))
        if call is not None and e.data.get("kind") in ("tool_call", "in_doubt"):
            call.attributes.update({"lane.decision": e.data.get("decision"), "lane.decision.by": e.data.get("by"),
                                    "lane.decision.edited": "edited_args" in e.data})
            if self.content is not None and "edited_args" in e.data:
                call.args = e.data["edited_args"]

    def _take(self, decision: Event, opened: Event) -> None:
        """A decision, as the segment after it takes it up: an event on the step that waited for it; a rejected
        call ends there, never run."""
        data = decision.data
        attributes = {"lane.approval.kind": data.get("kind"), "lane.call_id": decision.ref, "lane.decision": data.get("decision"),
                      "lane.decision.by": data.get("by"), "lane.decision.person": data.get("person"),
                      "lane.decision.automatic": data.get("automatic"), "lane.decision.at": decision.at,
                      "lane.decision.edited": "edited_args" in data or "edited" in data}
        self._put(attributes, "lane.decision.reason", data.get("reason"))
        self._target(decision.step_id).events.append(("decision", opened.at, attributes))
        key = (decision.step_id, decision.ref)
        call = self.calls.get(key)
        if call is not None and data.get("kind") == "tool_call" and data.get("decision") == "rejected":
            del self.calls[key]
            self._call_span(call, opened)
            self._end_call(call, opened.at, "rejected")

    def _refused_approval(self, e: Event) -> None:
        self._target(e.step_id).events.append(("approval_refused", e.at, {"lane.call_id": e.ref}))

    # -- helpers ---------------------------------------------------------------

    @property
    def _segment(self) -> Span:
        assert self.segment is not None, "folded only while a segment runs"
        return self.segment

    def _parent(self, step_id: str) -> int:
        """The span a step's span goes under: the group or item it is inside, else the run's."""
        for outer in enclosing(step_id):
            step = self.steps.get(outer)
            if step is not None and step.piece is not None:
                return step.piece.span_id
        return self._segment.span_id

    def _target(self, step_id: str | None) -> Span:
        """The step's span in this segment (the run's, for an event about no running step)."""
        step = self.steps.get(step_id or "")
        return step.piece if step is not None and step.piece is not None else self._segment

    def _put(self, attributes: dict[str, Any], key: str, value: Any) -> None:
        """Content goes in only with `telemetry.content: true`, and redacted."""
        if self.content is not None and value is not None:
            attributes[key] = self.content.text(value)

    def _end(self, span: Span, at: str) -> None:
        span.end = at
        if self.live:
            self.ended.append(span)


HANDLERS: dict[str, Callable[[RunTrace, Event], None]] = {
    "run_started": RunTrace._started, "run_resumed": RunTrace._resumed, "run_retried": RunTrace._retried,
    **dict.fromkeys(ENDINGS, RunTrace._ended), "budget_raised": RunTrace._budget,
    "step_started": RunTrace._step_started, "context_assembled": RunTrace._context, **dict.fromkeys(STEP_ENDINGS, RunTrace._step_ended),
    "step_skipped": RunTrace._skipped, "loop_back": RunTrace._loop_back, "child_started": RunTrace._child,
    "model_called": RunTrace._called, "model_responded": RunTrace._responded, "model_failed": RunTrace._model_failed,
    "handoff_rejected": RunTrace._handoff_rejected,
    "tool_call_requested": RunTrace._requested, "tool_call_gated": RunTrace._gated, **dict.fromkeys(SETTLED, RunTrace._settled),
    "approval_used": RunTrace._touched, "tool_started": RunTrace._touched, "tool_timed_out": RunTrace._timed_out,
    "tool_finished": RunTrace._finished,
    "approval_requested": RunTrace._asked, "decision": RunTrace._decision, "approval_refused": RunTrace._refused_approval,
}
