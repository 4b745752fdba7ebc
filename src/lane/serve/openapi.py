"""The OpenAPI description of lane's HTTP API (served at /api/openapi.json)."""

from __future__ import annotations

from typing import Any

_JSON = {"application/json": {"schema": {"type": "object"}}}
_ERR = {"description": "what is wrong, in `error`", "content": _JSON}
_AUTH = {"401": {"description": "no valid token: send Authorization: Bearer TOKEN", "content": _JSON}}


def _op(summary: str, ok: str, *, code: str = "200", body: dict[str, Any] | None = None, errors: tuple[str, ...] = ()) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "security": [{"bearer": []}],
                          "responses": {code: {"description": ok, "content": _JSON}, **_AUTH, **{e: _ERR for e in errors}}}
    if body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    return op


_RUN = {"name": "run_id", "in": "path", "required": True, "schema": {"type": "string"}}

OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "lane", "version": "1", "description": "Runs, their timelines and audits, and people's decisions. "
             "Every answer is the document the CLI's --json prints."},
    "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "description": "lane token create NAME"}}},
    "paths": {
        "/api/runs": {
            "post": _op("Start a run; it executes in the server", "{run_id, status}", code="201", errors=("400",),
                        body={"type": "object", "required": ["runbook"],
                              "properties": {"runbook": {"type": "string"}, "inputs": {"type": "object"}}}),
            "get": _op("List runs, newest first", "a list of runs (lane runs --json)"),
        },
        "/api/runs/{run_id}": {"get": {**_op("A run's timeline (lane show --json); `pending` holds what your roles may decide",
                                              "the timeline", errors=("404",)), "parameters": [_RUN]}},
        "/api/runs/{run_id}/audit": {"get": {**_op("A run's tool calls (lane audit --json)", "the rows", errors=("404",)),
                                             "parameters": [_RUN]}},
        "/api/runs/{run_id}/decisions": {"post": {**_op(
            "Approve or reject what a paused run waits for; the run goes on by itself once nothing is left to decide",
            "the decision", errors=("400", "403", "404", "409"),
            body={"type": "object", "required": ["approve"],
                  "properties": {"approve": {"type": "boolean"}, "call": {"type": "string"}, "edit": {}, "patch": {},
                                 "result": {}, "reason": {"type": "string"}}}), "parameters": [_RUN]}},
        "/api/runs/{run_id}/outcomes": {"post": {**_op(
            "Record a result of the run known only later (lane outcome); KPIs read it as outcomes.NAME",
            "the run's outcomes and KPIs", code="201", errors=("400", "404"),
            body={"type": "object", "required": ["name", "value"], "properties": {"name": {"type": "string"}, "value": {}}}),
            "parameters": [_RUN]}},
        "/api/pending": {"get": _op("Everything waiting for your roles, oldest first", "a list of pending items, each with run_id")},
        "/api/hooks/{name}": {"post": {
            "summary": "A webhook delivery (a runbook's `triggers: [{webhook: NAME, secret: env:X}]`): signed, no token",
            "parameters": [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}},
                           {"name": "X-Lane-Signature", "in": "header", "required": True, "schema": {"type": "string"},
                            "description": "sha256=HEX: HMAC-SHA256 of the raw body with the secret"},
                           {"name": "X-Lane-Delivery", "in": "header", "required": False, "schema": {"type": "string"},
                            "description": "the delivery's id: at most one run per id"}],
            "requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}},
            "responses": {"202": {"description": "{run_id, status, duplicate: false}", "content": _JSON},
                          "200": {"description": "a delivery seen before: {run_id, status, duplicate: true}", "content": _JSON},
                          "400": _ERR, "401": _ERR, "404": _ERR, "503": _ERR}}},
        "/api/events": {"get": {"summary": "Server-Sent Events: each event of the runs this server executes, and the status changes of every run",
                                "security": [{"bearer": []}],
                                "responses": {"200": {"description": "an event stream", "content": {"text/event-stream": {}}}, **_AUTH}}},
    },
}
