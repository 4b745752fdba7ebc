"""Tools as a user meets them: Python function tools and command tools, run for real.

Function tools: the schema the model is shown, arguments checked before the
call, a raising tool reported to the agent, async tools awaited, broken modules
reported by `lane validate`. Command tools and check steps: argv without a
shell, cwd, the LANE_* environment, timeouts that kill the whole process group,
capped output, a missing executable, `extra_args: false`.

Runs go through `lane.Project` with the public scripted model; `Recording`
keeps every request the model received, so the tests read exactly what the
model saw (tool schemas, tool results).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import lane
from conftest import LANE, write_project
from conftest import lane as lane_cli
from lane.models.base import ModelRequest, ModelResponse
from lane.testing import ScriptedModel


class Recording(ScriptedModel):
    """The public scripted model, keeping every request it was sent."""

    def __init__(self, turns: list[dict[str, Any]]) -> None:
        super().__init__(turns, name="x")
        self.requests: list[ModelRequest] = []

    async def request(self, request: ModelRequest) -> ModelResponse:
        self.requests.append(request)
        return await super().request(request)


def agent_project(root: Path, *, tools_py: str | None = None, toolsets: str = "t: {python: tools/t.py}", allow: str = "t.*") -> Path:
    """One agent step `work` (autonomy auto) whose agent may use `allow`; the model is `scripted:x`."""
    files = {
        "lane.yaml": f"""
            project: tools
            models: {{default: scripted:x}}
            roles:
              op: {{kind: human}}
              worker: {{kind: agent}}
            toolsets:
              {toolsets}
        """,
        "agents/worker.md": f"""
            ---
            name: worker
            autonomy: auto
            tools: [{allow}]
            ---
            You work.
        """,
        "runbooks/work.yaml": """
            runbook: work
            steps:
              - id: work
                agent: worker
                goal: Do the work.
        """,
    }
    if tools_py is not None:
        files["tools/t.py"] = tools_py
    return write_project(root, files)


def run_agent(root: Path, turns: list[dict[str, Any]]) -> tuple[lane.Run, dict[str, Any], Recording]:
    model = Recording(turns)
    with lane.Project.load(root, models={"scripted:x": model}) as project:
        run = project.run("work")
        return run, project.show(run.run_id), model


def tool_results(model: Recording) -> list[dict[str, Any]]:
    """The tool messages the model received, in order."""
    return [m for m in model.requests[-1].messages if m["role"] == "tool"]


# -- Python function tools --------------------------------------------------------------------------------------

CRM = '''
    from typing import Optional

    from lane import ToolContext, tool

    @tool(effect="read")
    def find(query: str, ctx: ToolContext, limit: int = 10, tags: list[str] | None = None, exact: Optional[bool] = None) -> dict:
        """Find customers by name.

        Searches the CRM, newest first.

        Args:
            query: Part of the customer's name.
            limit: At most this many customers.
            tags: Only customers with all of these tags.
        """
        return {"query": query, "limit": limit, "tags": tags, "run": ctx.run_id}

    @tool
    def note(customer_id: int, text: str, pinned: bool = False) -> str:
        """Add a note to a customer.

        :param customer_id: The customer's number.
        :param text: What to write.
        :param pinned: Keep it on top.
        """
        return "noted"

    @tool(effect="write", idempotent=True)
    def merge(keep: int, drop: int) -> None:
        """Merge two customers.

        Parameters
        ----------
        keep : int
            The customer that stays.
        drop : int
            The customer merged into it.
        """

    def helper(x: int) -> int:
        return x
'''


def test_the_model_sees_a_schema_built_from_hints_defaults_and_a_google_docstring(tmp_path: Path) -> None:
    root = agent_project(tmp_path, tools_py=CRM)
    _, view, model = run_agent(root, [{"output": "done"}])
    assert view["status"] == "completed"

    shown = {t.name: t for t in model.requests[0].tools}
    assert sorted(shown) == ["t.find", "t.merge", "t.note"], "helper has no @tool and must not be offered"
    find = shown["t.find"]
    assert find.description == "Find customers by name.\n\nSearches the CRM, newest first."
    assert find.parameters == {
        "type": "object",
        "additionalProperties": False,
        "required": ["query"],
        "properties": {
            "query": {"type": "string", "description": "Part of the customer's name."},
            "limit": {"type": "integer", "default": 10, "description": "At most this many customers."},
            "tags": {
                "anyOf": [{"type": "array", "items": {"type": "string"}}, {"type": "null"}],
                "default": None,
                "description": "Only customers with all of these tags.",
            },
            "exact": {"anyOf": [{"type": "boolean"}, {"type": "null"}], "default": None},
        },
    }
    assert "ctx" not in str(find.parameters), "the ToolContext parameter must be hidden from the model"


def test_rest_and_numpy_docstrings_describe_parameters_too(tmp_path: Path) -> None:
    with lane.Project.load(agent_project(tmp_path, tools_py=CRM), models={"scripted:x": ScriptedModel([])}) as project:
        note, merge = project.spec.tools["t.note"], project.spec.tools["t.merge"]
    assert note.description == "Add a note to a customer."
    assert note.parameters["required"] == ["customer_id", "text"]
    assert note.parameters["properties"] == {
        "customer_id": {"type": "integer", "description": "The customer's number."},
        "text": {"type": "string", "description": "What to write."},
        "pinned": {"type": "boolean", "default": False, "description": "Keep it on top."},
    }
    assert merge.parameters["properties"]["drop"]["description"] == "The customer merged into it."
    assert (note.effect, note.idempotent) == ("external", False), "a bare @tool must take the safest defaults"
    assert (merge.effect, merge.idempotent) == ("write", True)


def test_parameters_named_like_pydantic_internals_work_like_any_other(tmp_path: Path) -> None:
    root = agent_project(tmp_path, tools_py='''
        from lane import tool

        @tool(effect="read")
        def render(schema: str, json: bool = False, copy: int = 1, model_dump: str = "", _trace: bool = False) -> dict:
            """Render a document.

            Args:
                schema: Which schema to render.
            """
            return {"schema": schema, "json": json, "copy": copy, "model_dump": model_dump, "_trace": _trace}
    ''')
    run, view, model = run_agent(root, [
        {"tool_calls": [{"name": "t.render", "args": {"schema": "invoice", "json": True, "copy": 2, "_trace": True}}]},
        {"tool_calls": [{"name": "t.render", "args": {"json": "yes please"}}]},
        {"output": "ok"},
    ])
    assert run.status == "completed"
    [spec] = model.requests[0].tools
    assert list(spec.parameters["properties"]) == ["schema", "json", "copy", "model_dump", "_trace"]
    assert spec.parameters["required"] == ["schema"]
    assert spec.parameters["properties"]["schema"]["description"] == "Which schema to render."
    ok, invalid = view["steps"][0]["tool_calls"]
    assert ok["executions"][0]["result"] == {"schema": "invoice", "json": True, "copy": 2, "model_dump": "", "_trace": True}
    assert invalid["reason"] == "schema: Field required; json: Input should be a valid boolean, unable to interpret input"


def test_invalid_arguments_go_back_to_the_model_readably_and_the_tool_never_runs(tmp_path: Path) -> None:
    root = agent_project(tmp_path, tools_py='''
        from pathlib import Path
        from lane import tool

        @tool(effect="read")
        def find(query: str, limit: int = 10) -> list:
            """Find customers."""
            (Path(__file__).parent.parent / "ran.txt").write_text(query)
            return []
    ''')
    run, view, model = run_agent(root, [
        {"tool_calls": [{"name": "t.find", "args": {"limit": "many", "colour": "red"}}]},
        {"output": "gave up"},
    ])
    assert run.status == "completed"
    assert not (root / "ran.txt").exists(), "a call with invalid arguments must not reach the function"
    [call] = view["steps"][0]["tool_calls"]
    assert call["status"] == "invalid" and call["executions"] == []
    for part in ("query: Field required", "limit: Input should be a valid integer", "colour: Extra inputs are not permitted"):
        assert part in call["reason"]
    [told] = tool_results(model)
    assert told["content"]["error"].startswith("invalid arguments for t.find: ")
    assert "limit: Input should be a valid integer" in told["content"]["error"]


def test_a_raising_tool_becomes_an_error_result_the_agent_sees_and_the_run_goes_on(tmp_path: Path) -> None:
    root = agent_project(tmp_path, tools_py='''
        from lane import tool

        @tool(effect="read")
        def lookup(customer_id: int) -> dict:
            """Look a customer up."""
            raise LookupError(f"no customer {customer_id}")
    ''')
    run, view, model = run_agent(root, [
        {"tool_calls": [{"name": "t.lookup", "args": {"customer_id": 7}}]},
        {"output": "told the user"},
    ])
    assert (run.status, view["steps"][0]["output"]) == ("completed", "told the user")
    [call] = view["steps"][0]["tool_calls"]
    [execution] = call["executions"]
    assert (call["status"], execution["status"]) == ("error", "error")
    assert execution["error"] == "LookupError: no customer 7"
    assert tool_results(model)[0]["content"] == {"untrusted_data": {"error": "LookupError: no customer 7"}}


def test_a_raising_tool_fails_a_tool_step_with_its_error(tmp_path: Path) -> None:
    root = agent_project(tmp_path, tools_py='''
        from lane import tool

        @tool(effect="read")
        def lookup(customer_id: int) -> dict:
            """Look a customer up."""
            raise LookupError(f"no customer {customer_id}")
    ''')
    write_project(root, {"runbooks/work.yaml": """
        runbook: work
        autonomy: auto
        steps:
          - {id: look, tool: t.lookup, args: {customer_id: 7}}
          - {id: after, check: ["true"]}
    """})
    run, view = run_steps(root)
    assert run.status == "failed"
    assert "LookupError: no customer 7" in (run.reason or "")
    assert [s["status"] for s in view["steps"]] == ["failed", "pending"]


def test_async_tools_are_awaited_sync_tools_run_off_the_event_loop_and_both_get_the_context(tmp_path: Path) -> None:
    root = agent_project(tmp_path, tools_py='''
        import asyncio
        import threading
        from lane import ToolContext, tool

        @tool(effect="read")
        async def later(n: int, ctx: ToolContext) -> dict:
            """Wait, then answer."""
            await asyncio.sleep(0.05)
            return {"n": n * 2, "call": ctx.call_id, "thread": threading.current_thread().name}

        @tool(effect="read")
        def now(context: ToolContext) -> dict:
            """Answer at once."""
            return {
                "thread": threading.current_thread().name, "run": context.run_id, "step": context.step_id,
                "call": context.call_id, "key": context.idempotency_key, "dir": str(context.project_dir),
            }
    ''')
    run, view, _ = run_agent(root, [
        {"tool_calls": [{"name": "t.later", "args": {"n": 21}}, {"name": "t.now", "args": {}}]},
        {"output": "ok"},
    ])
    assert run.status == "completed"
    later, now = (c["executions"][0] for c in view["steps"][0]["tool_calls"])
    assert later["result"] == {"n": 42, "call": "work:1", "thread": threading.main_thread().name}
    result = now["result"]
    assert result["thread"] != threading.main_thread().name, "a sync tool must not block the event loop"
    assert (result["run"], result["step"], result["call"]) == (run.run_id, "work", "work:2")
    assert result["key"] == now["idempotency_key"] and len(result["key"]) == 32
    assert result["dir"] == str(root.resolve())


def test_the_decorator_refuses_an_unknown_effect() -> None:
    with pytest.raises(ValueError, match="effect must be one of read, write, external, not 'delete'"):
        lane.tool(effect="delete")  # type: ignore[call-overload]
    with pytest.raises(TypeError, match=r"@tool\(effect='read'\)"):
        lane.tool("read")  # type: ignore[call-overload]  # the effect passed positionally by mistake


def test_broken_tool_modules_are_reported_by_validate_and_nothing_runs(tmp_path: Path) -> None:
    root = agent_project(
        tmp_path,
        toolsets="{a: {python: tools/a.py}, b: {python: tools/b.py}, c: {python: tools/c.py}, d: {python: tools/d.py}, e: {python: tools/e.py}}",
        allow="a.*, b.*, c.*, d.*, e.*",
    )
    write_project(root, {
        "tools/a.py": '''
            from lane import tool

            raise RuntimeError("cannot reach the CRM")
        ''',
        "tools/b.py": '''
            def not_a_tool() -> None:
                """No @tool here."""
        ''',
        "tools/c.py": '''
            from lane import tool

            @tool(effect="delete")
            def wipe() -> None:
                """Wipe it."""
        ''',
        "tools/d.py": '''
            from __future__ import annotations
            from lane import tool

            @tool
            def greet(who: Customer) -> str:
                """Greet a customer."""
                return "hi"
        ''',
        "tools/e.py": '''
            import socket
            from lane import tool

            @tool
            def send(sock: socket.socket) -> None:
                """Send on a socket."""
        ''',
    })
    result = lane_cli("validate", cwd=root)
    assert result.returncode == 2, result.stdout + result.stderr
    out = result.stdout + result.stderr
    assert "tools/a.py:3:1: toolset 'a' cannot be loaded: RuntimeError: cannot reach the CRM" in out
    assert "tools/b.py has no @tool functions (from lane import tool)" in out
    assert "tools/c.py:3:" in out
    assert "toolset 'c' cannot be loaded: ValueError: effect must be one of read, write, external, not 'delete'" in out
    assert "tools/d.py cannot be loaded: tool greet: cannot read its type hints: name 'Customer' is not defined" in out
    assert "tools/e.py cannot be loaded: tool send: its parameters cannot be described to a model (" in out
    assert "Traceback" not in out
    refused = lane_cli("run", "work", cwd=root)
    assert refused.returncode == 2
    assert not (root / ".lane").exists(), "a project with problems must not start a run"


# -- command tools and check steps --------------------------------------------------------------------------------

def command_project(root: Path, toolsets: str, steps: str, files: dict[str, str] | None = None) -> Path:
    """A project of tool and check steps only (autonomy auto): no model needed. `toolsets` and `steps` are YAML."""
    def block(text: str) -> str:
        return textwrap.indent(textwrap.dedent(text).strip("\n"), "  ")

    return write_project(root, {
        "lane.yaml": f"project: commands\nroles:\n  op: {{kind: human}}\ntoolsets:\n{block(toolsets or '{}')}\n",
        "runbooks/work.yaml": f"runbook: work\nautonomy: auto\nsteps:\n{block(steps)}\n",
        **(files or {}),
    })


def run_steps(root: Path) -> tuple[lane.Run, dict[str, Any]]:
    with lane.Project.load(root, models={"scripted:x": ScriptedModel([])}) as project:
        run = project.run("work")
        return run, project.show(run.run_id)


def alive(pid: int) -> bool:
    """Whether pid is a running process (a zombie waiting to be reaped counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def test_arguments_reach_the_command_literally_without_a_shell(tmp_path: Path) -> None:
    tricky = ["; rm -rf keep", "$HOME", "*", "`touch pwned`", "$(touch pwned)", "a b", "x > out.txt", "|| true"]
    root = command_project(
        tmp_path,
        "show: {command: [printf, '%s\\n'], effect: read, extra_args: true}",
        f"- {{id: show, tool: show, args: {{args: {json.dumps(tricky)}}}}}",
        {"keep/file.txt": "still here"},
    )
    run, view = run_steps(root)
    assert run.status == "completed", run.reason
    output = view["steps"][0]["output"]
    assert output["stdout"].splitlines() == tricky
    assert (output["exit_code"], output["timed_out"], output["truncated"]) == (0, False, False)
    assert (root / "keep/file.txt").read_text() == "still here"
    assert not (root / "pwned").exists() and not (root / "out.txt").exists()


def test_an_agent_appends_arguments_and_they_arrive_literally(tmp_path: Path) -> None:
    root = agent_project(tmp_path, toolsets="echo: {command: [printf, '%s|'], effect: read, extra_args: true}", allow="echo")
    run, _, model = run_agent(root, [
        {"tool_calls": [{"name": "echo", "args": {"args": ["$HOME", "; ls", "*"]}}]},
        {"output": "ok"},
    ])
    assert run.status == "completed"
    assert tool_results(model)[0]["content"]["untrusted_data"]["stdout"] == "$HOME|; ls|*|"
    [spec] = model.requests[0].tools
    assert spec.description == "Runs the command: printf %s|"
    assert spec.parameters["properties"]["args"] == {
        "type": "array", "items": {"type": "string"}, "description": "arguments appended to the command",
    }


def test_cwd_is_honoured_by_command_tools_and_check_steps(tmp_path: Path) -> None:
    root = command_project(
        tmp_path,
        "where: {command: [pwd], cwd: sub/dir, effect: read}",
        """
          - {id: where, tool: where}
          - {id: here, check: [test, -f, marker.txt], cwd: sub/dir}
          - {id: top, check: [test, -f, lane.yaml]}
        """,
        {"sub/dir/marker.txt": "x"},
    )
    run, view = run_steps(root)
    assert run.status == "completed", run.reason
    assert view["steps"][0]["output"]["stdout"].strip() == os.path.realpath(root / "sub/dir")


def test_a_command_tool_gets_the_run_step_call_and_idempotency_key_in_its_environment(tmp_path: Path) -> None:
    root = command_project(tmp_path, "env: {command: [env], effect: read}", "- {id: look, tool: env}")
    run, view = run_steps(root)
    assert run.status == "completed", run.reason
    env = dict(line.split("=", 1) for line in view["steps"][0]["output"]["stdout"].splitlines() if "=" in line)
    [call] = view["steps"][0]["tool_calls"]
    assert env["LANE_RUN_ID"] == run.run_id
    assert env["LANE_STEP_ID"] == "look"
    assert env["LANE_CALL_ID"] == call["call_id"] == "look:1"
    assert env["LANE_IDEMPOTENCY_KEY"] == call["executions"][0]["idempotency_key"]
    assert env["PATH"] == os.environ["PATH"], "the command keeps the ordinary environment"


@pytest.mark.parametrize("kind", ["tool", "check"])
def test_a_timeout_kills_the_command_and_its_children(tmp_path: Path, kind: str) -> None:
    script = "sleep 30 & echo $! > child.pid; sleep 30"
    if kind == "tool":
        root = command_project(tmp_path, f"slow: {{command: [sh, -c, '{script}'], timeout: 1, effect: read}}", "- {id: slow, tool: slow}")
    else:
        root = command_project(tmp_path, "", f"- {{id: slow, check: [sh, -c, '{script}'], timeout: 1}}")
    began = time.monotonic()
    run, view = run_steps(root)
    assert time.monotonic() - began < 15, "the timeout did not stop the command"
    child = int((root / "child.pid").read_text())
    deadline = time.monotonic() + 5
    while alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(child), "the command's child outlived the timeout"
    step = view["steps"][0]
    if kind == "tool":
        output = step["output"]
        assert run.status == "completed" and output["timed_out"] is True
        assert output["exit_code"] == -9 and "[lane: timed out after 1 s and was killed]" in output["stderr"]
        assert output["seconds"] < 10
    else:
        assert run.status == "failed" and step["status"] == "failed"
        assert "check slow (sh -c " in (run.reason or "") and "timed out" in (run.reason or "")


def test_output_beyond_max_output_is_dropped_and_marked(tmp_path: Path) -> None:
    noisy = "import sys; sys.stdout.write('a' * 200000); sys.stderr.write('e' * 10)"
    root = command_project(
        tmp_path,
        f"loud: {{command: [{sys.executable}, -c, \"{noisy}\"], max_output: 1000, effect: read}}\n"
        f"quiet: {{command: [{sys.executable}, -c, \"print('a' * 1000, end='')\"], max_output: 1000, effect: read}}",
        f"""
          - {{id: loud, tool: loud}}
          - {{id: quiet, tool: quiet}}
          - {{id: check, check: [{sys.executable}, -c, "{noisy}"]}}
        """,
    )
    run, view = run_steps(root)
    assert run.status == "completed", run.reason
    loud, quiet, check = (s["output"] for s in view["steps"])
    assert loud["stdout"] == "a" * 1000 + "\n[lane: output truncated]"
    assert (loud["stderr"], loud["truncated"], loud["exit_code"]) == ("e" * 10, True, 0)
    assert (quiet["stdout"], quiet["truncated"]) == ("a" * 1000, False), "output exactly at the cap is kept whole"
    assert check["stdout"] == "a" * 65536 + "\n[lane: output truncated]" and check["truncated"] is True


def test_a_missing_executable_is_found_by_validate_and_is_an_error_result_if_it_goes_later(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    ghost = bin_dir / "lane-test-ghost"
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    root = agent_project(tmp_path / "p", toolsets="ghost: {command: [lane-test-ghost], effect: read}", allow="ghost")
    with pytest.raises(lane.ProjectInvalid, match="no program 'lane-test-ghost' on PATH"):
        lane.Project.load(root, models={"scripted:x": Recording([])})
    ghost.write_text("#!/bin/sh\necho boo\n")
    ghost.chmod(0o755)
    model = Recording([{"tool_calls": [{"name": "ghost", "args": {}}]}, {"output": "it is missing"}])
    with lane.Project.load(root, models={"scripted:x": model}) as project:
        ghost.unlink()  # uninstalled between validation and the run
        run = project.run("work")
        assert run.status == "completed"
        [call] = project.show(run.run_id)["steps"][0]["tool_calls"]
    assert call["status"] == "error"
    error = tool_results(model)[0]["content"]["untrusted_data"]["error"]
    assert "cannot start 'lane-test-ghost': No such file or directory" in error


def test_a_missing_working_directory_is_named(tmp_path: Path) -> None:
    root = command_project(tmp_path, "where: {command: [pwd], cwd: gone, effect: read}", "- {id: where, tool: where}")
    run, _ = run_steps(root)
    assert run.status == "failed"
    assert "cannot start 'pwd' in " in (run.reason or "") and "gone" in (run.reason or "")


def test_extra_args_false_refuses_arguments_and_offers_none(tmp_path: Path) -> None:
    root = agent_project(tmp_path, toolsets="fixed: {command: [echo, fixed], extra_args: false, effect: read}", allow="fixed")
    run, view, model = run_agent(root, [
        {"tool_calls": [{"name": "fixed", "args": {"args": ["--delete-everything"]}}]},
        {"tool_calls": [{"name": "fixed", "args": {}}]},
        {"output": "ok"},
    ])
    assert run.status == "completed"
    assert model.requests[0].tools[0].parameters == {"type": "object", "properties": {}, "additionalProperties": False}
    refused, ran = view["steps"][0]["tool_calls"]
    assert refused["status"] == "invalid" and refused["executions"] == []
    assert "takes no extra arguments" in refused["reason"]
    assert ran["executions"][0]["result"]["stdout"] == "fixed\n"
    assert "--delete-everything" not in str(ran)


def test_ctrl_c_during_a_command_kills_it_and_its_children(tmp_path: Path) -> None:
    root = command_project(tmp_path, "", "- {id: wait, check: [sh, -c, 'sleep 30 & echo $! > child.pid; sleep 30']}")
    proc = subprocess.Popen([*LANE, "run", "work"], cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    pid_file = root / "child.pid"
    deadline = time.monotonic() + 30
    try:
        while not (pid_file.exists() and pid_file.read_text().strip()):
            assert time.monotonic() < deadline and proc.poll() is None, "the check never started"
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130
    child = int(pid_file.read_text())
    deadline = time.monotonic() + 5
    while alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(child), "the check's child outlived lane"
    assert "Traceback" not in err and "never retrieved" not in err, err


def test_a_command_cancelled_while_it_starts_is_stopped_with_its_children(tmp_path: Path) -> None:
    # Ctrl-C can land after the process exists but before asyncio has connected its pipes;
    # each round cancels one loop iteration later, so one of them hits that window.
    import asyncio

    from lane.tools.command import run_command

    async def cancel_after(turns: int, pid_file: Path) -> None:
        task = asyncio.ensure_future(run_command(
            ["sh", "-c", f"sleep 30 & echo $! > {pid_file}; sleep 30"], cwd=tmp_path, timeout=60, max_output=1000))
        for _ in range(turns):
            await asyncio.sleep(0)
        task.cancel()
        done, _ = await asyncio.wait([task], timeout=10)
        assert done, f"cancelled after {turns} turns, the command never finished stopping"

    for turns in range(12):
        pid_file = tmp_path / f"child-{turns}.pid"
        asyncio.run(cancel_after(turns, pid_file))
        if pid_file.exists() and pid_file.read_text().strip():
            child = int(pid_file.read_text())
            deadline = time.monotonic() + 5
            while alive(child) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert not alive(child), f"cancelled after {turns} turns, the command's child outlived it"


def test_a_command_that_leaves_a_child_behind_finishes_when_it_exits(tmp_path: Path) -> None:
    import asyncio
    import time

    from lane.tools.command import run_command

    began = time.monotonic()
    result = asyncio.run(run_command(["sh", "-c", "sleep 30 & echo started"], cwd=tmp_path, timeout=20, max_output=1000))
    assert result.exit_code == 0 and result.stdout == "started\n" and not result.timed_out
    assert time.monotonic() - began < 10, "the step waited for a background child"


def test_a_command_tool_takes_no_arguments_from_the_agent_unless_allowed(tmp_path: Path) -> None:
    # DESIGN.md's own example: a read-only test command. Appending `--junitxml=FILE` would let it write.
    root = agent_project(tmp_path, toolsets="tests: {command: [echo, tested], effect: read}", allow="tests")
    _, view, _ = run_agent(root, [
        {"tool_calls": [{"name": "tests", "args": {"args": ["--junitxml=important.txt"]}}]},
        {"output": "ok"},
    ])
    [call] = view["steps"][0]["tool_calls"]
    assert call["status"] == "invalid" and "takes no extra arguments" in call["reason"]
    assert call["executions"] == []
