"""Runs whose agents use MCP tools, end to end, with real servers and the scripted model.

Covered: an agent is offered only the MCP tools on its allowlist, its calls run on the
servers and their results are journaled, a real server tool off the allowlist is refused;
a server killed between model turns is restarted and the run goes on; a server that
cannot start fails the step with the server's own words, in the API and the CLI; and
`lane validate` does not start servers (MCP tools are listed only when a run needs them).
"""

from __future__ import annotations

import inspect
import os
import textwrap
from pathlib import Path
from typing import Any

import lane
from conftest import TIME_SERVER, NodeServers, write_project
from conftest import lane as lane_cli
from lane.testing import ScriptedModel


def running(marker: str) -> list[int]:
    """Pids of live processes that have `marker` as one of their arguments (a zombie has none)."""
    found: list[int] = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue  # it ended while we looked
        if marker.encode() in argv and int(proc.name) != os.getpid():
            found.append(int(proc.name))
    return sorted(found)


# Tools that find a server by an argument only it was given (the test's data folder), and kill it.
KILLER = textwrap.dedent("""
    import os
    import signal
    import time
    from pathlib import Path

    from lane import tool


""") + inspect.getsource(running) + textwrap.dedent('''

    @tool(effect="read")
    def server_pids(marker: str) -> list[int]:
        """The processes started with `marker` as an argument."""
        return running(marker)


    @tool(effect="external")
    def kill_server(marker: str) -> list[int]:
        """SIGKILL the processes started with `marker` as an argument; returns their pids once they are gone."""
        pids = running(marker)
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while set(pids) & set(running(marker)):
            assert time.monotonic() < deadline, f"{pids} survived SIGKILL"
            time.sleep(0.01)
        return pids
''')


def mcp_project(root: Path, toolsets: dict[str, str], *, tools: str, autonomy: str = "guarded", files: dict[str, str] | None = None) -> Path:
    """One agent step `work` whose agent `worker` (model `scripted:script.yaml`) may use `tools`."""
    config = "project: mcp-runs\nmodels: {default: scripted:script.yaml}\nroles: {op: {kind: human}, worker: {kind: agent}}\ntoolsets:\n"
    return write_project(root, {
        "lane.yaml": config + "".join(f"  {name}: {spec}\n" for name, spec in toolsets.items()),
        "agents/worker.md": f"""
            ---
            name: worker
            autonomy: {autonomy}
            tools: [{tools}]
            ---
            You work with files.
        """,
        "runbooks/work.yaml": """
            runbook: work
            steps:
              - id: work
                agent: worker
                goal: Do the work.
        """,
        "script.yaml": "- output: done\n",
        **(files or {}),
    })


def run_with(root: Path, turns: list[dict[str, Any]]) -> tuple[lane.Run, dict[str, Any]]:
    with lane.Project.load(root, models={"scripted:script.yaml": ScriptedModel(turns)}) as project:
        run = project.run("work")
        return run, project.show(run.run_id)


def call(name: str, **args: Any) -> dict[str, Any]:
    return {"name": name, "args": args}


def result(tool_call: dict[str, Any]) -> Any:
    """What the one execution of a call returned; fails if it ran more than once or did not end well."""
    [execution] = tool_call["executions"]
    assert execution["status"] == "ok", execution
    return execution["result"]


def test_an_agent_uses_the_mcp_tools_on_its_allowlist_and_no_others(node_servers: NodeServers, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "notes.txt").write_text("Invoice 42 is overdue.\n")
    root = mcp_project(
        tmp_path / "project",
        {"fs": f'{{mcp: {{command: node, args: ["{node_servers.filesystem}", "{data}"]}}}}', "time": f'{{mcp: {{command: "{TIME_SERVER}"}}}}'},
        tools="fs.read_text_file, fs.list_directory, time.get_current_time",
    )
    run, view = run_with(root, [
        {"tool_calls": [
            call("fs.read_text_file", path=str(data / "notes.txt")),
            call("fs.list_directory", path=str(data)),
            call("time.get_current_time", timezone="Europe/Paris"),
        ]},
        {"tool_calls": [call("fs.write_file", path=str(data / "new.txt"), content="written by the agent")]},
        {"output": "done"},
    ])
    assert run.status == "completed", run.reason

    [step] = view["steps"]
    assert sorted(step["context"]["tools"]) == ["fs.list_directory", "fs.read_text_file", "time.get_current_time"]
    read, listing, now, write = step["tool_calls"]
    assert (read["tool"], read["effect"], read["basis"]) == ("fs.read_text_file", "read", "autonomy guarded: a read call runs")
    assert result(read) == {"content": "Invoice 42 is overdue.\n"}
    assert "[FILE] notes.txt" in result(listing)["content"]
    assert result(now)["timezone"] == "Europe/Paris" and result(now)["datetime"][-6:] in ("+01:00", "+02:00")

    # A real tool of the server (so "allowlist", not "no such tool"), refused before it could run.
    assert (write["tool"], write["status"], write["basis"], write["executions"]) == ("fs.write_file", "refused", "allowlist", [])
    assert write["reason"] == "'fs.write_file' is not in this agent's tools (fs.read_text_file, fs.list_directory, time.get_current_time)"
    assert not (data / "new.txt").exists()
    assert running(str(data)) == [], "the run left its filesystem server running"


def test_a_server_killed_between_model_turns_is_restarted_and_the_run_goes_on(node_servers: NodeServers, tmp_path: Path) -> None:
    data = tmp_path / "killed-server-data"  # in the server's arguments: how the tools below find it
    data.mkdir()
    (data / "notes.txt").write_text("still here\n")
    root = mcp_project(
        tmp_path / "project",
        {"fs": f'{{mcp: {{command: node, args: ["{node_servers.filesystem}", "{data}"]}}}}', "ops": "{python: tools/ops.py}"},
        tools="fs.read_text_file, ops.*", autonomy="auto", files={"tools/ops.py": KILLER},
    )
    notes, marker = str(data / "notes.txt"), str(data)
    run, view = run_with(root, [
        {"tool_calls": [call("fs.read_text_file", path=notes), call("ops.server_pids", marker=marker)]},
        {"tool_calls": [call("ops.kill_server", marker=marker)]},
        {"tool_calls": [call("fs.read_text_file", path=notes), call("ops.server_pids", marker=marker)]},
        {"output": "done"},
    ])
    assert run.status == "completed", run.reason

    first_read, before, kill, second_read, after = view["steps"][0]["tool_calls"]
    assert result(first_read) == result(second_read) == {"content": "still here\n"}
    [first] = result(before)
    assert result(kill) == [first]
    [second] = result(after)
    assert second != first, "the second read ran on the killed server"
    assert running(marker) == [], "the run left its filesystem server running"


def test_a_server_that_cannot_start_fails_the_step_with_its_stderr(tmp_path: Path) -> None:
    root = mcp_project(
        tmp_path / "project", {"cfg": "{mcp: {command: node, args: [servers/broken.js]}}"}, tools="cfg.*",
        files={"servers/broken.js": 'console.error("boom: missing config"); process.exit(1);\n'},
    )
    with lane.Project.load(root) as project:
        run = project.run("work")
        view = project.show(run.run_id)
    assert run.status == "failed"
    assert run.reason is not None and "boom: missing config" in run.reason
    assert "the MCP server 'cfg' could not start (node servers/broken.js)" in run.reason
    [step] = view["steps"]
    assert (step["status"], step["error"], step["turns"]) == ("failed", run.reason, [])  # the model was never asked

    cli = lane_cli("run", "work", cwd=root)
    assert cli.returncode == 1, cli.stdout + cli.stderr
    assert "failed" in cli.stdout and "boom: missing config" in cli.stdout


def test_validate_does_not_start_mcp_servers(tmp_path: Path) -> None:
    # A server that notes each start, then fails: validating must leave no note, running must.
    root = mcp_project(
        tmp_path / "project", {"fs": "{mcp: {command: node, args: [servers/tracer.js, started.log]}}"}, tools="fs.*",
        files={"servers/tracer.js": """
            require("fs").appendFileSync(process.argv[2], "started\\n");
            console.error("the tracer never serves");
            process.exit(1);
        """},
    )
    started = root / "started.log"
    cli = lane_cli("validate", cwd=root)
    assert cli.returncode == 0, cli.stdout + cli.stderr
    assert "is a valid lane project" in cli.stdout
    assert not started.exists(), "lane validate started an MCP server"

    with lane.Project.load(root) as project:
        assert not started.exists(), "loading a project started an MCP server"
        run = project.run("work")
    assert run.status == "failed" and run.reason is not None and "the tracer never serves" in run.reason
    assert started.read_text() == "started\n"

