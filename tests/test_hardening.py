"""What a red-team pass and a new user found, each closed: values the store cannot hold, files that
must not be overwritten, a store others could read, a nested .git, failed runs that could not
be taken up again, rejections counted as failures, and problems found only after a person approved."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path
from typing import Any

import pytest

import lane
from conftest import lane as lane_cli
from conftest import lane_json, write_project
from lane.testing import FakeHuman, ScriptedModel, reject

LANE_YAML = """
    project: hard
    roles:
      lead: {kind: human}
      helper: {kind: agent}
    toolsets:
      fs: {python: tools/fs.py}
      files: {builtin: files, root: data}
"""
TOOLS = """
    import math
    import os
    from lane import tool

    @tool(effect="read")
    def listing() -> list:
        \"\"\"The names in data/, as the operating system gives them.\"\"\"
        return sorted(os.listdir("data"))

    @tool(effect="read")
    def measure() -> dict:
        \"\"\"A measure that is not a number.\"\"\"
        return {"ratio": math.nan}

    @tool(effect="external")
    def send(to: str, body: str, category: str = "general") -> dict:
        \"\"\"Writes a message to outbox.txt.\"\"\"
        with open("outbox.txt", "a") as out:
            out.write(f"{to}|{category}|{body}\\n")
        return {"sent": to}
"""


def project(root: Path, runbook: str, **more: str) -> Path:
    helper = {"agents/helper.md": "---\nname: helper\nmodel: scripted:s.yaml\n---\nYou help.\n", "s.yaml": "- output: done\n"}
    return write_project(root, {"lane.yaml": LANE_YAML, "tools/fs.py": TOOLS, "data/keep.txt": "x", "runbooks/r.yaml": runbook,
                                **helper, **more})


# -- 1 and 8: what the store cannot hold -----------------------------------------------------------


def test_a_file_name_that_is_not_utf8_is_stored_escaped_and_the_run_goes_on(tmp_path: Path) -> None:
    root = project(tmp_path / "p", """
        runbook: r
        steps:
          - {id: mine, tool: fs.listing}
          - {id: builtin, tool: files.list, args: {path: "."}}
    """)
    (root / "data" / os.fsdecode(b"caf\xe9.txt")).write_text("a name in Latin-1")
    result = lane_cli("run", "r", "--json", cwd=root)
    assert result.returncode == 0, result.stdout + result.stderr
    view = lane_json("show", json.loads(result.stdout)["run_id"], cwd=root)
    steps = {s["id"]: s for s in view["steps"]}
    assert "caf\\xe9.txt" in steps["mine"]["output"]  # the byte shown as the byte it was: nothing lost
    assert "caf\\xe9.txt" in [e["name"] for e in steps["builtin"]["output"]["entries"]]
    assert lane_cli("show", view["run_id"], cwd=root).returncode == 0


def test_nan_from_a_tool_is_an_error_the_caller_sees_and_json_output_stays_json(tmp_path: Path) -> None:
    root = project(tmp_path / "p", "runbook: r\nsteps:\n  - {id: m, tool: fs.measure}\n")
    result = lane_cli("run", "r", "--json", cwd=root)
    assert result.returncode == 1
    reason = json.loads(result.stdout)["reason"]
    assert "result.ratio is nan, which JSON cannot hold" in reason

    def no_constants(name: str) -> Any:
        raise AssertionError(f"{name} is not JSON")

    for args in (["show", json.loads(result.stdout)["run_id"]], ["runs"], ["audit", json.loads(result.stdout)["run_id"]]):
        json.loads(lane_cli(*args, "--json", cwd=root).stdout, parse_constant=no_constants)


def test_nan_or_infinity_in_inputs_is_refused_before_the_run(tmp_path: Path) -> None:
    root = project(tmp_path / "p", "runbook: r\nsteps:\n  - {id: m, tool: fs.listing}\n")
    result = lane_cli("run", "r", "--input", "x=NaN", cwd=root)
    assert result.returncode == 2 and "x is nan, which JSON cannot hold" in result.stderr
    assert "Traceback" not in result.stderr
    assert lane_json("runs", cwd=root) == []


class NotJsonModel:
    """A model object whose reply holds a value that is not JSON data."""

    id = "scripted:broken"

    async def request(self, request: lane.ModelRequest) -> lane.ModelResponse:
        return lane.ModelResponse(output={"answer": object()})


class DefectModel:
    """A model object whose reply breaks while lane records it: the kind of defect that once left a run `running` for ever."""

    id = "scripted:broken"

    async def request(self, request: lane.ModelRequest) -> lane.ModelResponse:
        class Broken(lane.ModelResponse):
            def to_json(self) -> dict[str, Any]:
                raise RuntimeError("cannot say")

        return Broken(output="x")


def test_a_reply_that_is_not_json_fails_the_step_naming_the_model(tmp_path: Path) -> None:
    root = project(tmp_path / "p", "runbook: r\nsteps:\n  - {id: think, agent: helper, goal: Think.}\n",
                   **{"agents/helper.md": "---\nname: helper\nmodel: scripted:broken\n---\nYou think.\n"})
    with lane.Project.load(root, models={"scripted:broken": NotJsonModel()}) as proj:
        run = proj.run("r")
    assert run.status == "failed"
    assert run.reason is not None and run.reason.startswith("step think: model scripted:broken answered with a value that is not JSON data")


def test_an_internal_error_ends_the_run_failed_with_its_reason_and_where(tmp_path: Path) -> None:
    root = project(tmp_path / "p", "runbook: r\nsteps:\n  - {id: think, agent: helper, goal: Think.}\n",
                   **{"agents/helper.md": "---\nname: helper\nmodel: scripted:broken\n---\nYou think.\n"})
    with lane.Project.load(root, models={"scripted:broken": DefectModel()}) as proj:
        run = proj.run("r")
        assert (run.status, run.reason) == ("failed", "internal error: RuntimeError: cannot say")
        assert proj.get(run.run_id).status == "failed"
        with pytest.raises(lane.UsageError, match="only paused, stopped or interrupted runs resume"):
            proj.resume(run.run_id)
        [ending] = [e for e in proj.store.events(run.run_id) if e.type == "run_failed"]
        assert "cannot say" in ending.data["traceback"]


class RefusingStore:
    """An event store that cannot take a batch holding a `model_responded` event (as a full disk could not)."""

    def __init__(self) -> None:
        self.kept: list[lane.Event] = []
        self.status: str | None = None

    def append(self, run_id: str, events: list[lane.Event], *, status: str | None = None, reason: str | None = None,
               release: bool = False) -> None:
        if any(e.type == "model_responded" for e in events):
            raise OSError("no space left on device")
        self.kept += events
        self.status = status or self.status


def test_when_the_journal_cannot_take_a_batch_the_ending_is_still_written_alone() -> None:
    from lane.engine.journal import Journal

    store = RefusingStore()
    journal = Journal(store, "r1")
    journal.record("run_started")
    journal.flush()
    journal.record("model_responded", "think", "turn:0", response={})
    journal.fail("internal error: OSError: no space left on device")
    assert [e.type for e in store.kept] == ["run_started", "run_failed"]
    assert [e.seq for e in store.kept] == [1, 2]  # numbered on: a resume or a retry reads the journal in order
    assert store.kept[-1].data["dropped_events"] == 1 and store.status == "failed"


# -- 3: never overwrite ---------------------------------------------------------------------------


@pytest.mark.parametrize("command", [["init", "mine"], ["demo", "--yes", "--dir", "mine", "--model", "rehearsal"]])
def test_init_and_demo_never_overwrite_a_users_files(tmp_path: Path, command: list[str]) -> None:
    mine = tmp_path / "mine"
    (mine / "tools").mkdir(parents=True)
    (mine / "README.md").write_text("my own readme\n")
    (mine / ".gitignore").write_text("secrets/\n")
    result = lane_cli(*command, cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "README.md" in result.stderr and ".gitignore" in result.stderr and "never overwrites" in result.stderr
    assert (mine / "README.md").read_text() == "my own readme\n" and (mine / ".gitignore").read_text() == "secrets/\n"
    assert sorted(p.name for p in mine.iterdir()) == [".gitignore", "README.md", "tools"]  # nothing was written


def test_a_demo_that_cannot_start_takes_back_what_it_wrote(tmp_path: Path) -> None:
    failed = lane_cli("demo", "--yes", "--dir", "d", "--model", "nosuch:model", cwd=tmp_path)
    assert failed.returncode == 2 and "unknown model provider 'nosuch'" in failed.stdout
    assert list((tmp_path / "d").iterdir()) == []
    again = lane_cli("demo", "--yes", "--dir", "d", "--model", "rehearsal", cwd=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr


# -- 9 and 11: what others may read, where agents may write ---------------------------------------


def test_the_store_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    root = project(tmp_path / "p", "runbook: r\nsteps:\n  - {id: m, tool: fs.listing}\n")
    old = os.umask(0o022)
    try:
        assert lane_cli("run", "r", cwd=root).returncode == 0
    finally:
        os.umask(old)
    store = root / ".lane"
    assert stat.S_IMODE(store.stat().st_mode) == 0o700
    for file in store.glob("lane.db*"):
        assert stat.S_IMODE(file.stat().st_mode) == 0o600, file


def test_a_store_folder_left_open_by_an_older_lane_is_closed(tmp_path: Path) -> None:
    root = project(tmp_path / "p", "runbook: r\nsteps:\n  - {id: m, tool: fs.listing}\n")
    assert lane_cli("runs", cwd=root).returncode == 0
    (root / ".lane").chmod(0o755)
    (root / ".lane" / "lane.db").chmod(0o644)
    assert lane_cli("runs", cwd=root).returncode == 0
    assert stat.S_IMODE((root / ".lane").stat().st_mode) == 0o700
    assert stat.S_IMODE((root / ".lane" / "lane.db").stat().st_mode) == 0o600


def test_file_tools_never_write_inside_any_git_folder(tmp_path: Path) -> None:
    script = """
        - tool_calls:
            - {name: files.write, args: {path: vendor/x/.git/hooks/pre-commit, content: "#!/bin/sh\\nrm -rf ~\\n"}}
            - {name: files.write, args: {path: vendor/x/.GIT/config, content: "x"}}
            - {name: files.write, args: {path: vendor/x/notes.txt, content: "fine"}}
        - output: done
    """
    root = project(tmp_path / "p", "runbook: r\nsteps:\n  - {id: w, agent: helper, goal: Write.}\n", **{
        "agents/helper.md": "---\nname: helper\nmodel: scripted:s.yaml\nautonomy: auto\ntools: [files.write]\n---\nYou write.\n",
        "s.yaml": script,
    })
    (root / "data" / "vendor" / "x" / ".git" / "hooks").mkdir(parents=True)
    result = lane_cli("run", "r", "--json", cwd=root)
    assert result.returncode == 0, result.stdout + result.stderr
    calls = lane_json("show", json.loads(result.stdout)["run_id"], cwd=root)["steps"][0]["tool_calls"]
    assert [c["status"] for c in calls] == ["refused", "refused", "ok"]
    assert "inside a .git folder" in calls[0]["reason"]
    assert not (root / "data" / "vendor" / "x" / ".git" / "hooks" / "pre-commit").exists()
    assert (root / "data" / "vendor" / "x" / "notes.txt").read_text() == "fine"


# -- 12: deciding needs to be readable ------------------------------------------------------------

SEND = """
    runbook: r
    inputs: {type: object, properties: {body: {type: string}}, required: [body]}
    steps:
      - id: send
        tool: fs.send
        args: {to: ann@example.com, body: "${{ inputs.body }}", category: general}
"""


def test_the_pause_message_and_show_print_every_argument_whole(tmp_path: Path) -> None:
    root = project(tmp_path / "p", SEND)
    body = "Dear Ann,\n" + " ".join(f"word{i}" for i in range(150)) + "\nTHE-END-OF-THE-BODY"
    paused = lane_cli("run", "r", "--input", f"body={body}", cwd=root)
    assert paused.returncode == 3
    for text in (paused.stdout, lane_cli("show", paused.stdout.split()[1], cwd=root).stdout):
        assert "THE-END-OF-THE-BODY" in text and "word149" in text and "ann@example.com" in text
        assert "…" not in text.rsplit("waiting: ", 1)[1]  # nothing cut in what the person decides


def test_edit_takes_a_merge_patch_checked_against_the_schema_and_show_tells_plain_approvals_apart(tmp_path: Path) -> None:
    root = project(tmp_path / "p", SEND)
    plain = json.loads(lane_cli("run", "r", "--input", "body=hello", "--json", cwd=root).stdout)["run_id"]
    assert lane_cli("approve", plain, cwd=root).returncode == 0
    assert lane_cli("resume", plain, cwd=root).returncode == 0
    assert "with edited arguments" not in lane_cli("show", plain, cwd=root).stdout

    patched = json.loads(lane_cli("run", "r", "--input", "body=hello", "--json", cwd=root).stdout)["run_id"]
    bad = lane_cli("approve", patched, "--edit", '{"category": 7}', cwd=root)
    assert bad.returncode == 2 and "category" in bad.stderr  # checked before it is recorded
    assert lane_cli("approve", patched, "--edit", '{"category": "hardware"}', cwd=root).returncode == 0
    assert lane_cli("resume", patched, cwd=root).returncode == 0
    assert (root / "outbox.txt").read_text().splitlines()[-1] == "ann@example.com|hardware|hello"  # one field changed
    assert "with edited arguments" in lane_cli("show", patched, cwd=root).stdout


def test_lane_run_on_a_terminal_asks_the_person_and_carries_on(tmp_path: Path) -> None:
    import pexpect

    root = project(tmp_path / "p", SEND)
    child = pexpect.spawn(sys.executable, ["-m", "lane", "run", "r", "--input", "body=hi there"], cwd=str(root),
                          env={**os.environ, "COLUMNS": "100", "TERM": "xterm"}, encoding="utf-8", timeout=60, dimensions=(40, 100))
    child.expect("body: hi there")
    child.expect(r"\[a/e/r/l\]")
    child.sendline("e")
    child.expect("merge patch")
    child.sendline('{"category": "hardware"}')
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0, child.before
    assert (root / "outbox.txt").read_text() == "ann@example.com|hardware|hi there\n"


def test_piped_or_with_json_lane_run_never_waits_on_a_prompt(tmp_path: Path) -> None:
    root = project(tmp_path / "p", SEND)
    result = lane_cli("run", "r", "--input", "body=hi", cwd=root, timeout=30)
    assert result.returncode == 3 and "lane approve" in result.stdout


# -- 13: a failed run is not the end --------------------------------------------------------------

FLAKY = """
    runbook: r
    steps:
      - {id: first, tool: fs.listing}
      - {id: gate, check: [test, -e, ready.flag]}
      - {id: last, tool: fs.listing}
"""


def test_retry_runs_a_failed_run_again_from_its_failed_step_as_a_new_attempt(tmp_path: Path) -> None:
    root = project(tmp_path / "p", FLAKY)
    failed = json.loads(lane_cli("run", "r", "--json", cwd=root).stdout)
    assert failed["status"] == "failed" and "check gate" in failed["reason"]
    run_id = failed["run_id"]
    early = lane_cli("retry", run_id, "--from", "last", cwd=root)
    assert early.returncode == 2 and "ended at step gate" in early.stderr
    (root / "ready.flag").write_text("")
    again = lane_cli("retry", run_id, "--json", cwd=root)
    assert again.returncode == 0, again.stdout + again.stderr
    view = lane_json("show", run_id, cwd=root)
    steps = {s["id"]: s for s in view["steps"]}
    assert view["status"] == "completed" and view["attempts"] == 2
    assert steps["gate"]["status"] == "completed" and steps["gate"]["previous_attempts"][0]["status"] == "failed"
    assert "previous_attempts" not in steps["first"]  # a step before it kept its recorded output
    assert len([c for s in view["steps"] for c in s["tool_calls"]]) == 2  # first ran once, last once
    done = lane_cli("retry", run_id, cwd=root)
    assert done.returncode == 2 and "completed" in done.stderr


def test_retry_from_an_earlier_step_runs_it_and_everything_after_again(tmp_path: Path) -> None:
    root = project(tmp_path / "p", FLAKY)
    run_id = json.loads(lane_cli("run", "r", "--json", cwd=root).stdout)["run_id"]
    (root / "ready.flag").write_text("")
    assert lane_cli("retry", run_id, "--from", "first", cwd=root).returncode == 0
    audit = lane_json("audit", run_id, cwd=root)
    assert [(row["call_id"], row["attempt"]) for row in audit] == [("first:1", 1), ("first:1", 2), ("last:1", 2)]
    unknown = lane_cli("retry", run_id, "--from", "nope", cwd=root)
    assert unknown.returncode == 2


def test_a_rejection_ends_the_run_rejected_with_its_own_exit_code_and_retry_asks_again(tmp_path: Path) -> None:
    root = project(tmp_path / "p", SEND + "    kpis:\n      sent: {value: \"steps.send.status == 'completed'\"}\n")
    run_id = json.loads(lane_cli("run", "r", "--input", "body=hi", "--json", cwd=root).stdout)["run_id"]
    assert lane_cli("reject", run_id, "--reason", "not to Ann", cwd=root).returncode == 0
    ended = lane_cli("resume", run_id, cwd=root)
    assert ended.returncode == 4 and "rejected" in ended.stdout and "lane retry" in ended.stdout
    assert lane_json("runs", cwd=root)[0]["status"] == "rejected"
    view = lane_json("show", run_id, cwd=root)
    assert view["status"] == "rejected" and view["kpis"] == {"sent": False}
    assert lane_cli("retry", run_id, cwd=root).returncode == 3  # the call is asked about again
    assert lane_cli("approve", run_id, cwd=root).returncode == 0
    assert lane_cli("resume", run_id, cwd=root).returncode == 0
    assert lane_json("show", run_id, cwd=root)["kpis"] == {"sent": True}


def test_retry_in_python(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = project(tmp_path / "p", SEND)
    monkeypatch.chdir(root)  # the tool writes outbox.txt where the process runs
    with lane.Project.load(root) as proj:
        run = FakeHuman(policy=lambda p: reject("no")).drive(proj.run("r", {"body": "x"}))
        assert run.status == "rejected"
        again = FakeHuman().drive(run.retry())
        assert again.status == "completed" and again.output == {"sent": "ann@example.com"}


# -- 14: found before the run ---------------------------------------------------------------------


def test_validate_finds_programs_that_are_not_there(tmp_path: Path) -> None:
    root = write_project(tmp_path / "p", {
        "lane.yaml": """
            project: x
            roles: {lead: {kind: human}}
            toolsets:
              tests: {command: [pytset, -q], effect: read}
              srv: {mcp: {command: no-such-mcp-server}}
        """,
        "runbooks/r.yaml": "runbook: r\nsteps:\n  - {id: c, check: [/opt/lane-test/missing.sh]}\n  - {id: d, check: [.venv/bin/made-by-a-step]}\n",
    })
    result = lane_cli("validate", cwd=root)
    assert result.returncode == 2
    lines = result.stdout.splitlines()
    assert any(line.startswith("lane.yaml:4:21: no program 'pytset' on PATH") for line in lines), lines
    assert any(line.startswith("lane.yaml:5:24: no program 'no-such-mcp-server'") for line in lines), lines
    assert any(line.startswith("runbooks/r.yaml:3:21: no executable file /opt/lane-test/missing.sh") for line in lines), lines
    assert not any("made-by-a-step" in line for line in lines)  # a relative path may be made by an earlier step


def test_a_program_beside_lanes_python_is_found_without_the_venv_on_path(tmp_path: Path) -> None:
    beside = Path(sys.executable).parent / "mcp-server-time"
    assert beside.exists(), "the test extra installs mcp-server-time into lane's venv"
    root = write_project(tmp_path / "p", {
        "lane.yaml": """
            project: x
            roles: {lead: {kind: human}}
            toolsets:
              clock: {command: [mcp-server-time, --help], effect: read}
        """,
        "runbooks/r.yaml": "runbook: r\nsteps:\n  - {id: t, tool: clock}\n",
    })
    path = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if Path(p).resolve() != beside.parent.resolve())
    assert lane_cli("validate", cwd=root, env={"PATH": path}).returncode == 0
    ran = lane_cli("run", "r", "--json", cwd=root, env={"PATH": path})
    assert ran.returncode == 0, ran.stdout + ran.stderr


def test_validate_names_the_extra_a_model_needs(tmp_path: Path) -> None:
    hide = tmp_path / "hide"
    hide.mkdir()
    # A real interpreter where llama.cpp's package cannot be found, as in an install without lane[local].
    (hide / "sitecustomize.py").write_text(
        "import importlib.machinery as machinery\n"
        "found = machinery.PathFinder.find_spec\n"
        "def find_spec(cls, name, path=None, target=None):\n"
        "    return None if name.split('.')[0] == 'llama_cpp' else found(name, path, target)\n"
        "machinery.PathFinder.find_spec = classmethod(find_spec)\n"
    )
    root = write_project(tmp_path / "p", {
        "lane.yaml": "project: x\nmodels: {default: local}\nroles: {lead: {kind: human}, bot: {kind: agent}}\n",
        "agents/bot.md": "---\nname: bot\n---\nYou work.\n",
    })
    result = lane_cli("validate", cwd=root, env={"PYTHONPATH": str(hide)})
    assert result.returncode == 2
    assert "agents/bot.md:2:7: agent 'bot' (the default in lane.yaml): model local needs llama_cpp, which is not installed: " \
           "pip install 'lane[local]'" in result.stdout


# -- 16 and 17: every problem at once, and the Python API ----------------------------------------


def test_an_unknown_key_does_not_hide_the_other_problems_of_its_file(tmp_path: Path) -> None:
    root = write_project(tmp_path / "p", {
        "lane.yaml": "project: x\nroles: {lead: {kind: human}}\n",
        "runbooks/r.yaml": """
            runbook: r
            colour: blue
            steps:
              - id: a
                human: lead
                approve: "${{ steps.nope.output }}"
                tiemout: 3
        """,
    })
    result = lane_cli("validate", cwd=root)
    assert result.stdout.splitlines() == [
        "runbooks/r.yaml:2:1: unknown key 'colour'; allowed keys: approver, autonomy, budgets, description, inputs, kill_date, kpis, output, release, runbook, steps, sunset, track, triggers, version",
        "runbooks/r.yaml:6:14: no earlier step 'nope'",
        "runbooks/r.yaml:7:5: unknown key 'tiemout' (did you mean 'timeout'?)",
    ]


class EchoModel:
    """A custom test model, written against the public API: it answers with the goal it was given."""

    id = "scripted:echo"

    async def request(self, request: lane.ModelRequest) -> lane.ModelResponse:
        goal = request.task.goal if request.task else ""
        return lane.ModelResponse(output={"goal": goal}, usage=lane.Usage(input_tokens=3, output_tokens=2))


def test_goal_takes_expressions_and_a_project_that_gates_nothing_needs_no_person(tmp_path: Path) -> None:
    root = write_project(tmp_path / "p", {
        "lane.yaml": "project: x\nroles: {bot: {kind: agent}}\n",
        "agents/bot.md": "---\nname: bot\nmodel: scripted:echo\n---\nYou work.\n",
        "runbooks/r.yaml": """
            runbook: r
            inputs: {type: object, properties: {topic: {type: string}}}
            steps:
              - id: write
                agent: bot
                goal: "Write about ${{ inputs.topic }}."
        """,
    })
    seen: list[lane.Event] = []
    with lane.Project.load(root, models={"scripted:echo": EchoModel()}) as proj:
        run = proj.run("r", {"topic": "otters"}, on_event=seen.append)
        assert run.status == "completed" and run.output == {"goal": "Write about otters."}
        assert run.pending == []
    assert [e.type for e in seen][:2] == ["run_started", "step_started"] and all(isinstance(e, lane.Event) for e in seen)


def test_pending_is_typed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = project(tmp_path / "p", SEND)
    monkeypatch.chdir(root)
    with lane.Project.load(root) as proj:
        run = proj.run("r", {"body": "hi"})
        [item] = run.pending
        assert isinstance(item, lane.Pending)
        assert (item.kind, item.tool, item.args, item.roles, item.effect) == (
            "tool_call", "fs.send", {"to": "ann@example.com", "body": "hi", "category": "general"}, ("lead",), "external")
        assert item["call_id"] == item.call_id == "send:1"  # read as a dict too
        run.approve(item.call_id, patch={"body": "hello"})
        assert run.resume().output == {"sent": "ann@example.com"}
    assert (root / "outbox.txt").read_text() == "ann@example.com|general|hello\n"


# -- 19: smaller ----------------------------------------------------------------------------------


def test_resume_help_lists_every_budget_key() -> None:
    from lane.spec.files import Budget

    shown = lane_cli("resume", "--help", cwd=Path("."), env={"COLUMNS": "300"}).stdout
    for key in Budget.model_fields:
        assert key in shown, key


def test_demo_yes_records_its_approvals_as_automatic_and_out_of_what_people_approved(tmp_path: Path) -> None:
    result = lane_cli("demo", "--yes", "--dir", "d", "--model", "rehearsal", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "approved_without_edit: no values" in result.stdout
    run_id = lane_json("runs", cwd=tmp_path / "d")[0]["run_id"]
    view = lane_json("show", run_id, cwd=tmp_path / "d")
    [decision] = [c["decision"] for s in view["steps"] for c in s["tool_calls"] if c["decision"]]
    assert (decision["by"], decision["decision"]) == ("--yes", "approved")
    assert view["kpis"]["approved_without_edit"] is None


def test_the_memory_store_keeps_a_bounded_number_of_finished_runs(tmp_path: Path) -> None:
    root = project(tmp_path / "p", "runbook: r\nsteps:\n  - {id: m, tool: fs.listing}\n")
    (root / "lane.yaml").write_text((root / "lane.yaml").read_text() + "store: memory\n")
    with lane.Project.load(root) as proj:
        proj.store.keep_finished = 3  # type: ignore[union-attr]
        ids = [proj.run("r").run_id for _ in range(5)]
        assert [r.run_id for r in proj.runs()] == ids[:1:-1]


@pytest.mark.parametrize("turns", [[{"output": "a"}]])
def test_a_scripted_model_given_in_python_still_works(tmp_path: Path, turns: list[dict[str, Any]]) -> None:
    root = write_project(tmp_path / "p", {
        "lane.yaml": "project: x\nroles: {bot: {kind: agent}}\n",
        "agents/bot.md": "---\nname: bot\nmodel: scripted:s\n---\nYou work.\n",
        "runbooks/r.yaml": "runbook: r\nsteps:\n  - {id: w, agent: bot, goal: Work.}\n",
    })
    with lane.Project.load(root, models={"scripted:s": ScriptedModel(turns)}) as proj:
        assert proj.run("r").output == "a"


class Moody:
    """A model object with an id of its own provider, that fails in its own way on request."""

    id = "mine:moody"

    async def request(self, request: lane.ModelRequest) -> lane.ModelResponse:
        raise ValueError("no mood for this")


def test_a_model_given_in_python_serves_its_own_id_and_its_failure_is_the_steps(tmp_path: Path) -> None:
    root = write_project(tmp_path / "p", {
        "lane.yaml": "project: x\nroles: {bot: {kind: agent}}\n",
        "agents/bot.md": "---\nname: bot\nmodel: mine:moody\n---\nYou work.\n",
        "runbooks/r.yaml": "runbook: r\nsteps:\n  - {id: w, agent: bot, goal: Work.}\n",
    })
    with lane.Project.load(root, models={"mine:moody": Moody()}) as proj:
        run = proj.run("r")
    assert run.status == "failed"
    assert run.reason == "step w: model mine:moody failed: ValueError: no mood for this"


def test_the_blocking_calls_say_what_to_await_inside_an_event_loop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    root = project(tmp_path / "p", "runbook: r\nsteps:\n  - {id: m, tool: fs.listing}\n")
    monkeypatch.chdir(root)

    async def inside() -> lane.Run:
        with lane.Project.load(root) as proj:
            with pytest.raises(lane.UsageError, match=r"await project.run_async"):
                proj.run("r")
            return await proj.run_async("r")

    assert asyncio.run(inside()).status == "completed"


# -- 4: a hung tool cannot keep a run alive -------------------------------------------------------

HANGING = """
    import asyncio
    import time
    from lane import tool

    @tool(effect="external")
    def hang() -> str:
        \"\"\"Never returns.\"\"\"
        time.sleep(3600)
        return "never"

    @tool(effect="read")
    async def hang_async() -> str:
        \"\"\"Never returns either.\"\"\"
        await asyncio.sleep(3600)
        return "never"

    @tool(effect="read", timeout=0.5)
    def slow() -> str:
        \"\"\"Slower than its own timeout.\"\"\"
        time.sleep(3600)
        return "never"
"""


@pytest.mark.timeout(60)
@pytest.mark.parametrize("tool", ["wait.hang", "wait.hang_async"])
def test_a_hung_python_tool_is_cut_off_by_wall_seconds_and_the_run_stops_resumable(tmp_path: Path, tool: str) -> None:
    root = write_project(tmp_path / "p", {
        "lane.yaml": "project: x\nroles: {lead: {kind: human}}\ntoolsets:\n  wait: {python: tools/wait.py}\nbudgets: {wall_seconds: 1.5}\n",
        "tools/wait.py": HANGING,
        "runbooks/r.yaml": f"runbook: r\nautonomy: auto\nsteps:\n  - {{id: h, tool: {tool}}}\n",
    })
    result = lane_cli("run", "r", "--json", cwd=root, timeout=30)  # the process itself ends: nothing waits on the thread
    assert result.returncode == 1, result.stdout + result.stderr
    ended = json.loads(result.stdout)
    assert ended["status"] == "stopped"
    assert ended["reason"].startswith("budget: wall_seconds 1.5 reached (run) while a call was in flight, which was cut off")
    [call] = lane_json("show", ended["run_id"], cwd=root)["steps"][0]["tool_calls"]
    assert call["status"] == "timed_out" and call["executions"][0]["status"] == "timed_out"
    resumed = lane_cli("resume", ended["run_id"], "--budget", "wall_seconds=600", "--json", cwd=root, timeout=30)
    if tool == "wait.hang":  # not idempotent: whether it took effect is not known, so a person is asked
        assert resumed.returncode == 3, resumed.stdout + resumed.stderr
        [pending] = lane_json("show", ended["run_id"], cwd=root)["pending"]
        assert pending["kind"] == "in_doubt"


@pytest.mark.timeout(60)
def test_a_tools_own_timeout_is_an_error_the_agent_sees_and_the_run_goes_on(tmp_path: Path) -> None:
    root = write_project(tmp_path / "p", {
        "lane.yaml": "project: x\nroles: {bot: {kind: agent}}\ntoolsets:\n  wait: {python: tools/wait.py}\n  quick: {python: tools/quick.py, timeout: 0.5}\n",
        "tools/wait.py": HANGING,
        "tools/quick.py": HANGING,
        "agents/bot.md": "---\nname: bot\nmodel: scripted:s.yaml\nautonomy: auto\ntools: [wait.slow, quick.hang_async]\n---\nYou wait.\n",
        "s.yaml": "- tool_calls: [{name: wait.slow}, {name: quick.hang_async}]\n- output: gave up\n",
        "runbooks/r.yaml": "runbook: r\nsteps:\n  - {id: w, agent: bot, goal: Wait.}\n",
    })
    result = lane_cli("run", "r", "--json", cwd=root, timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr
    calls = lane_json("show", json.loads(result.stdout)["run_id"], cwd=root)["steps"][0]["tool_calls"]
    errors = [c["executions"][0]["error"] for c in calls]
    assert [c["status"] for c in calls] == ["error", "error"]
    assert errors[0].startswith("timed out after 0.5 s (the tool's timeout)") and errors[1].startswith("timed out after 0.5 s")


def test_a_tool_timeout_must_be_a_positive_number() -> None:
    with pytest.raises(ValueError, match="timeout must be a number of seconds above 0"):
        lane.tool(timeout=0)


# -- what an attack pass on the above found ------------------------------------------------------


@pytest.mark.timeout(60)
def test_on_a_terminal_a_run_paused_for_its_provider_ends_instead_of_resuming_for_ever(tmp_path: Path) -> None:
    import pexpect

    root = write_project(tmp_path / "p", {
        "lane.yaml": "project: x\nmodels: {default: openai:gpt-4.1-mini}\nroles: {lead: {kind: human}, bot: {kind: agent}}\n",
        "agents/bot.md": "---\nname: bot\n---\nYou work.\n",
        "runbooks/r.yaml": "runbook: r\nsteps:\n  - {id: w, agent: bot, goal: Work.}\n",
    })
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    child = pexpect.spawn(sys.executable, ["-m", "lane", "run", "r"], cwd=str(root), env=env, encoding="utf-8", timeout=30)
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 3, child.before
    assert "OPENAI_API_KEY" in child.before
    events = lane.Project.load(root).store.events(lane_json("runs", cwd=root)[0]["run_id"])
    assert sum(e.type == "run_paused" for e in events) == 1


CHARGE = """
    import os
    from lane import tool

    @tool(effect="external")
    def charge(amount: int) -> str:
        \"\"\"Charges once, then the process dies before lane hears back.\"\"\"
        with open("charges.log", "a") as log:
            log.write(f"{amount}\\n")
        if not os.path.exists("survived"):
            open("survived", "w").close()
            os._exit(9)
        return "charged"
"""


def test_a_retry_asks_a_person_before_making_again_a_call_whose_effect_is_unknown(tmp_path: Path) -> None:
    root = write_project(tmp_path / "p", {
        "lane.yaml": "project: x\nroles: {lead: {kind: human}}\ntoolsets:\n  pay: {python: tools/pay.py}\n",
        "tools/pay.py": CHARGE,
        "runbooks/r.yaml": "runbook: r\nautonomy: auto\nsteps:\n  - {id: pay, tool: pay.charge, args: {amount: 10}}\n"
                           "  - {id: after, check: [test, -e, ready]}\n",
    })
    died = lane_cli("run", "r", cwd=root)
    assert died.returncode == 9  # killed in the middle of the call: the run is left `running`
    run_id = lane_json("runs", cwd=root)[0]["run_id"]
    # Its process is gone; the person first asks it to run again from the start, which must not charge blindly.
    assert lane_cli("resume", run_id, cwd=root).returncode == 3  # the in-doubt question, as always after a crash
    assert lane_cli("reject", run_id, "--reason", "not sure it went through", cwd=root).returncode == 0
    assert lane_cli("resume", run_id, cwd=root).returncode == 1  # the call was given up: the step fails
    again = lane_cli("retry", run_id, "--json", cwd=root)
    assert again.returncode == 3, again.stdout + again.stderr  # asked again, not charged again
    [pending] = lane_json("show", run_id, cwd=root)["pending"]
    assert pending["kind"] == "in_doubt" and pending["tool"] == "pay.charge"
    assert (root / "charges.log").read_text() == "10\n"
    assert lane_cli("approve", run_id, "--result", '"charged"', cwd=root).returncode == 0
    (root / "ready").write_text("")
    assert lane_cli("resume", run_id, cwd=root).returncode == 0
    assert (root / "charges.log").read_text() == "10\n"  # charged once in all


def test_retry_runs_on_the_runs_own_version_after_its_file_changed(tmp_path: Path) -> None:
    root = project(tmp_path / "p", "runbook: r\nsteps:\n  - {id: a, tool: fs.listing}\n  - {id: b, check: [test, -e, nope]}\n")
    run_id = json.loads(lane_cli("run", "r", "--json", cwd=root).stdout)["run_id"]
    (root / "runbooks" / "r.yaml").write_text("runbook: r\nsteps:\n  - {id: a, tool: fs.listing}\n")  # b, which failed, is gone
    (root / "nope").write_text("now there")
    again = lane_cli("retry", run_id, "--json", cwd=root)
    assert again.returncode == 0, again.stderr  # b ran again, as the run's own version has it
    shown = lane_json("show", run_id, cwd=root)
    assert shown["status"] == "completed" and [s["id"] for s in shown["steps"]] == ["a", "b"]
    assert len(lane_json("audit", run_id, cwd=root)) == 1  # a stands: nothing ran twice
    refused = lane_cli("run", "r", cwd=root)
    assert refused.returncode == 2 and "runbook r v1 has runs, and its files changed since (runbooks/r.yaml changed)" in refused.stderr


def test_a_secret_that_is_a_number_is_redacted_and_json_output_stays_json(tmp_path: Path) -> None:
    root = project(tmp_path / "p", "runbook: r\nautonomy: auto\nsteps:\n  - {id: s, tool: fs.send, args: {to: a, body: \"${{ inputs.pin }}\"}}\n")
    (root / "lane.yaml").write_text((root / "lane.yaml").read_text() + "secrets: [env:LANE_PIN]\n")
    result = lane_cli("run", "r", "--input", "pin=73918264", "--json", cwd=root, env={"LANE_PIN": "73918264"})
    run_id = json.loads(result.stdout)["run_id"]
    shown = lane_cli("show", run_id, "--json", cwd=root, env={"LANE_PIN": "73918264"}).stdout
    view = json.loads(shown)
    assert "73918264" not in shown and view["inputs"] == {"pin": "[secret:LANE_PIN]"}
    assert b"73918264" not in (root / ".lane" / "lane.db").read_bytes()


@pytest.mark.timeout(60)
def test_a_tool_that_ignores_cancellation_cannot_hold_the_run_and_its_late_result_is_not_kept(tmp_path: Path) -> None:
    root = write_project(tmp_path / "p", {
        "lane.yaml": "project: x\nroles: {lead: {kind: human}}\ntoolsets:\n  s: {python: tools/s.py}\nbudgets: {wall_seconds: 1}\n",
        "tools/s.py": """
            import asyncio
            from lane import tool

            @tool(effect="read", idempotent=True)
            async def stubborn() -> str:
                \"\"\"Ignores being cut off, once.\"\"\"
                try:
                    await asyncio.sleep(3)
                except asyncio.CancelledError:
                    await asyncio.sleep(2)
                return "late"
        """,
        "runbooks/r.yaml": "runbook: r\nautonomy: auto\nsteps:\n  - {id: s, tool: s.stubborn}\n",
    })
    result = lane_cli("run", "r", "--json", cwd=root, timeout=30)
    ended = json.loads(result.stdout)
    assert ended["status"] == "stopped"
    [call] = lane_json("show", ended["run_id"], cwd=root)["steps"][0]["tool_calls"]
    assert call["status"] == "timed_out" and all(e["status"] != "ok" for e in call["executions"])


@pytest.mark.timeout(60)
def test_a_check_whose_child_leaves_its_process_group_cannot_hold_the_run(tmp_path: Path) -> None:
    root = write_project(tmp_path / "p", {
        "lane.yaml": "project: x\nroles: {lead: {kind: human}}\nbudgets: {wall_seconds: 2}\n",
        "runbooks/r.yaml": "runbook: r\nsteps:\n  - {id: c, check: [sh, -c, 'setsid sleep 30 & sleep 10']}\n",
    })
    try:
        result = lane_cli("run", "r", "--json", cwd=root, timeout=20)
        assert json.loads(result.stdout)["status"] == "stopped"
    finally:
        os.system("pkill -f 'sleep 30' >/dev/null 2>&1")  # noqa: S605 - the child the test itself let escape


def test_init_refuses_a_folder_in_the_way_that_is_a_file_or_a_symlink(tmp_path: Path) -> None:
    (tmp_path / "victim").mkdir()
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "agents").write_text("a file where the example has a folder")
    (tmp_path / "mine" / "tools").symlink_to(tmp_path / "victim")
    result = lane_cli("init", "mine", cwd=tmp_path)
    assert result.returncode == 2 and "agents, tools" in result.stderr and "Traceback" not in result.stderr
    assert list((tmp_path / "victim").iterdir()) == [] and sorted(p.name for p in (tmp_path / "mine").iterdir()) == ["agents", "tools"]


def test_a_project_whose_rules_let_every_call_run_needs_no_person(tmp_path: Path) -> None:
    root = project(tmp_path / "p", "runbook: r\nsteps:\n  - {id: s, tool: fs.send, args: {to: a, body: b}}\n")
    text = (root / "lane.yaml").read_text().replace("  lead: {kind: human}\n", "")
    (root / "lane.yaml").write_text(text + "rules: {allow: [fs.send]}\n")
    assert lane_cli("validate", cwd=root).returncode == 0, lane_cli("validate", cwd=root).stdout
    (root / "lane.yaml").write_text(text + "rules: {allow: ['fs.send(to=a)']}\n")  # only some calls: one may still wait
    assert lane_cli("validate", cwd=root).returncode == 2


def test_an_edit_that_changes_nothing_is_a_plain_approval(tmp_path: Path) -> None:
    root = project(tmp_path / "p", SEND)
    run_id = json.loads(lane_cli("run", "r", "--input", "body=hi", "--json", cwd=root).stdout)["run_id"]
    assert lane_cli("approve", run_id, "--edit", "{}", cwd=root).returncode == 0
    assert lane_cli("resume", run_id, cwd=root).returncode == 0
    [call] = lane_json("show", run_id, cwd=root)["steps"][0]["tool_calls"]
    assert call["decision"]["edited_args"] is None
