"""Crash safety with real processes: SIGKILL a run at many points, resume until it completes.

Tools append a line per execution to effects.log (sleeping around the write so
kills land before, during and after effects). Asserted at the end: the run
completed with the right outputs; no non-idempotent call ran twice; every
execution of an idempotent call saw the same idempotency key; the store was
sound after every kill. Each test runs on a SQLite file and on a PostgreSQL
database (the `backing` fixture).
"""

from __future__ import annotations

import json
import random
import signal
import sqlite3
import subprocess
import time
from collections import defaultdict
from pathlib import Path

import psycopg
import pytest

from conftest import LANE, Backing, lane, lane_json, write_project

FILES = {
    "lane.yaml": """
        project: crash
        models: {default: scripted:script.yaml}
        roles:
          operator: {kind: human}
          worker: {kind: agent}
        toolsets:
          log: {python: tools/log.py}
    """,
    "agents/worker.md": """
        ---
        name: worker
        autonomy: auto
        tools: [log.*]
        ---
        You do the work.
    """,
    "runbooks/crash.yaml": """
        runbook: crash
        autonomy: auto
        steps:
          - id: gather
            agent: worker
            goal: Gather.
            output: {type: object, properties: {count: {type: integer}}, required: [count]}
          - id: commit
            tool: log.once
            args: {tag: "commit-${{ steps.gather.output.count }}"}
          - id: verify
            check: [grep, -c, "once commit-3", effects.log]
          - id: report
            agent: worker
            goal: Report.
            with: {gathered: "${{ steps.gather.output }}", committed: "${{ steps.commit.output }}"}
            output: {type: object, properties: {done: {type: boolean}}, required: [done]}
    """,
    "script.yaml": """
        gather:
          - tool_calls: [{name: log.idem, args: {tag: g1}}, {name: log.once, args: {tag: g2}}]
          - tool_calls: [{name: log.idem, args: {tag: g3}}]
          - tool_calls: [{name: log.once, args: {tag: g4}}, {name: log.idem, args: {tag: g5}}]
          - output: {count: 3}
        report:
          - tool_calls: [{name: log.once, args: {tag: r1}}]
          - tool_calls: [{name: log.idem, args: {tag: r2}}]
          - output: {done: true}
    """,
    "tools/log.py": '''
        import os
        import time
        from pathlib import Path

        from lane import ToolContext, tool

        LOG = Path(__file__).resolve().parent.parent / "effects.log"


        def _append(kind: str, tag: str, key: str) -> None:
            time.sleep(0.04)
            with open(LOG, "a") as f:
                f.write(f"{kind} {tag} {key} {os.getpid()}\\n")
                f.flush()
                os.fsync(f.fileno())
            time.sleep(0.04)


        @tool(effect="write", idempotent=True)
        def idem(tag: str, ctx: ToolContext) -> dict:
            """Record an idempotent effect (a real tool would dedupe by the key)."""
            _append("idem", tag, ctx.idempotency_key)
            return {"tag": tag}


        @tool(effect="external", idempotent=False)
        def once(tag: str, ctx: ToolContext) -> dict:
            """Record an effect that must happen exactly once."""
            _append("once", tag, ctx.idempotency_key)
            return {"tag": tag}
    ''',
}

ONCE_TAGS = {"g2", "g4", "commit-3", "r1"}
IDEM_TAGS = {"g1", "g3", "g5", "r2"}


def _effects(root: Path) -> list[tuple[str, str, str]]:
    path = root / "effects.log"
    if not path.exists():
        return []
    return [tuple(line.split()[:3]) for line in path.read_text().splitlines() if line.strip()]  # type: ignore[misc]


def _store_sound(root: Path, run_id: str | None, backing: Backing | None = None) -> None:
    """The store is whole: no gap in the run's journal, every event JSON (SQLite when `backing` is not given)."""
    if backing is not None and backing.kind == "postgresql":
        with psycopg.connect(backing.url, autocommit=True, options="-c search_path=lane") as db:
            rows = db.execute("SELECT seq, data FROM events WHERE run_id = %s ORDER BY seq", (run_id,)).fetchall() if run_id else []
        assert [seq for seq, _ in rows] == list(range(1, len(rows) + 1)), "the journal has gaps"
        for _, data in rows:
            json.loads(data)
        return
    db = root / ".lane" / "lane.db"
    if not db.exists():
        return
    con = sqlite3.connect(db)
    try:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        if run_id:
            seqs = [s for (s,) in con.execute("SELECT seq FROM events WHERE run_id = ? ORDER BY seq", (run_id,))]
            assert seqs == list(range(1, len(seqs) + 1)), "the journal has gaps"
            for (data,) in con.execute("SELECT data FROM events WHERE run_id = ?", (run_id,)):
                json.loads(data)
    finally:
        con.close()


def _project(root: Path, backing: Backing, files: dict[str, str] = FILES) -> Path:
    return write_project(root, {**files, "lane.yaml": backing.project_yaml(files["lane.yaml"])})


def _settle_in_doubt(root: Path, run_id: str, decisions: list[str]) -> None:
    """The person's part: look at the world, say whether each interrupted call took effect."""
    view = lane_json("show", run_id, cwd=root)
    for pending in view["pending"]:
        assert pending["kind"] == "in_doubt", pending
        tag = pending["args"]["tag"]
        happened = [e for e in _effects(root) if e[0] == "once" and e[1] == tag]
        if happened:
            answer = lane("approve", run_id, "--call", pending["call_id"], "--result", json.dumps({"tag": tag}), cwd=root)
            decisions.append(f"{tag}: took effect")
        else:
            answer = lane("approve", run_id, "--call", pending["call_id"], cwd=root)
            decisions.append(f"{tag}: run again")
        assert answer.returncode == 0, answer.stderr


def _run_with_kills(root: Path, backing: Backing, rng: random.Random, kills_wanted: int) -> tuple[str, int, list[str]]:
    run_id: str | None = None
    kills = 0
    decisions: list[str] = []
    for _ in range(200):
        args = ["resume", run_id, "--json"] if run_id else ["run", "crash", "--json"]
        proc = subprocess.Popen([*LANE, *args], cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
        if kills < kills_wanted:
            # Most kills land after start-up, spread across the run's work.
            time.sleep(rng.uniform(0.2, 0.9))
        if proc.poll() is None and kills < kills_wanted:
            proc.send_signal(signal.SIGKILL)
            proc.communicate()
            kills += 1
        else:
            out, err = proc.communicate(timeout=120)
            if proc.returncode == 0:
                return json.loads(out)["run_id"], kills, decisions
            assert proc.returncode == 3, f"exit {proc.returncode}: {err}"
            run_id = json.loads(out)["run_id"]
            _settle_in_doubt(root, run_id, decisions)
        listed = lane_json("runs", cwd=root)
        run_id = listed[0]["run_id"] if listed else None
        _store_sound(root, run_id, backing)
        if listed and listed[0]["status"] == "completed":  # killed on its way out
            return listed[0]["run_id"], kills, decisions
    raise AssertionError("the run did not complete after 200 attempts")


@pytest.mark.slow
def test_sigkill_at_many_points_loses_and_repeats_nothing(backing: Backing, tmp_path: Path) -> None:
    rng = random.Random(20261121)
    total_kills = 0
    attempt = 0
    while total_kills < 32:
        attempt += 1
        assert attempt <= 20, f"only {total_kills} kills landed in {attempt - 1} runs"
        store = backing.fresh()  # each attempt its own store: `lane runs` lists only its run
        root = _project(tmp_path / f"p{attempt}", store)
        run_id, kills, decisions = _run_with_kills(root, store, rng, kills_wanted=6)
        total_kills += kills
        print(f"run {attempt}: {kills} kills; in doubt: {decisions or 'none'}")

        view = lane_json("show", run_id, cwd=root)
        assert view["status"] == "completed"
        outputs = {s["id"]: s["output"] for s in view["steps"]}
        assert outputs["gather"] == {"count": 3}
        assert outputs["commit"] == {"tag": "commit-3"}
        assert outputs["verify"]["stdout"].strip() == "1"
        assert outputs["report"] == {"done": True}

        effects = _effects(root)
        once = [tag for kind, tag, _ in effects if kind == "once"]
        assert sorted(once) == sorted(ONCE_TAGS), f"non-idempotent calls ran {once} (decisions: {decisions})"
        keys: dict[str, set[str]] = defaultdict(set)
        for kind, tag, key in effects:
            if kind == "idem":
                keys[tag].add(key)
        assert set(keys) == IDEM_TAGS
        shown = {c["args"]["tag"]: c for s in view["steps"] for c in s["tool_calls"]}
        for tag, seen in keys.items():
            assert len(seen) == 1, f"idempotent call {tag} saw different keys {seen}"
            assert seen == {e["idempotency_key"] for e in shown[tag]["executions"] if e["idempotency_key"]}
        _store_sound(root, run_id, store)


def test_a_resumed_run_reuses_recorded_model_responses(backing: Backing, project_dir: Path) -> None:
    """Changing the script after a pause changes nothing already recorded."""
    files = dict(FILES)
    files["agents/worker.md"] = FILES["agents/worker.md"].replace("autonomy: auto", "autonomy: ask")
    root = _project(project_dir, backing, files)
    first = lane("run", "crash", "--json", cwd=root)
    assert first.returncode == 3
    run_id = json.loads(first.stdout)["run_id"]
    assert [p["call_id"] for p in lane_json("show", run_id, cwd=root)["pending"]] == ["gather:1"]

    (root / "script.yaml").write_text("gather:\n  - output: {count: 99}\n")
    assert lane("approve", run_id, cwd=root).returncode == 0
    again = lane("resume", run_id, "--json", cwd=root)

    # Had the model been asked again, turn 0 would now be the output {count: 99}.
    assert again.returncode == 3
    view = lane_json("show", run_id, cwd=root)
    assert [p["call_id"] for p in view["pending"]] == ["gather:2"]
    assert len(view["steps"][0]["turns"]) == 1
    assert _effects(root) and _effects(root)[0][:2] == ("idem", "g1")
