"""Two `lane serve` processes on one PostgreSQL database: a run started through one is decided, and goes on, through the other."""

from __future__ import annotations

from pathlib import Path

from test_serve_api import FILES, start_server, stop_server

from conftest import Backing, lane, write_project
from pg import Cluster


def test_two_servers_share_runs_through_one_database(postgres: Cluster, tmp_path: Path) -> None:
    store = Backing("postgresql", postgres.new_database(), postgres)
    roots = [write_project(tmp_path / name, {**FILES, "lane.yaml": store.project_yaml(FILES["lane.yaml"])}) for name in ("a", "b")]
    token = lane("token", "create", "alice", cwd=roots[0]).stdout.strip()  # kept in the shared store: good on both
    env = {"DESK_KEY": "hunter2-secret"}
    first, a, _ = start_server(roots[0], env=env)
    second, b, _ = start_server(roots[1], env=env)
    try:
        code, started = a.call("POST", "/api/runs", token, {"runbook": "reply", "inputs": {"to": "ann@example.com"}})
        assert code == 201
        run_id = started["run_id"]
        a.until(run_id, token, "paused")
        assert [(p["run_id"], p["call_id"]) for p in b.call("GET", "/api/pending", token)[1]] == [(run_id, "send:1")]
        code, _ = b.call("POST", f"/api/runs/{run_id}/decisions", token, {"approve": True})
        assert code == 200
        done = b.until(run_id, token, "completed")  # resumed and finished by the second server
        assert a.call("GET", f"/api/runs/{run_id}", token)[1]["status"] == "completed"
        assert next(s for s in done["steps"] if s["id"] == "send")["output"] == "sent to ann@example.com"
        again = a.call("POST", f"/api/runs/{run_id}/decisions", token, {"approve": True})
        assert again[0] == 409, "the first server sees the decision the second recorded"
    finally:
        stop_server(first)
        stop_server(second)
