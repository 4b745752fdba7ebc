"""The command line a newcomer meets: init, validate, demo, inputs, --project, --help."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import lane, lane_json, on_a_terminal, write_project

EMAIL = "email=inbox/01-double-charge.eml"


def rehearse(root: Path) -> None:
    """Put the example on its scripted rehearsal model: the one-line switch the README describes."""
    config = root / "lane.yaml"
    config.write_text(config.read_text().replace("default: local", "default: rehearsal", 1))


def test_init_writes_a_project_that_validates_and_runs(tmp_path: Path) -> None:
    made = lane("init", "proj", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    assert "lane validate --project proj" in made.stdout
    root = tmp_path / "proj"
    assert lane("validate", "--project", "proj", cwd=tmp_path).returncode == 0
    rehearse(root)
    started = lane("run", "support-triage", "--input", EMAIL, "--json", cwd=root)
    assert started.returncode == 3, started.stderr
    run_id = json.loads(started.stdout)["run_id"]
    assert lane("approve", run_id, cwd=root).returncode == 0
    assert lane("resume", run_id, cwd=root).returncode == 0
    assert (root / "outbox" / f"{run_id}.eml").read_text().endswith("Acme Support\n")
    again = lane("init", "proj", cwd=tmp_path)
    assert again.returncode == 2 and "README.md" in again.stderr and "never overwrites" in again.stderr


def test_inputs_from_pairs_files_and_dotted_keys(tmp_path: Path) -> None:
    root = write_project(tmp_path / "p", {
        "lane.yaml": "project: echo\nroles: {me: {kind: human}}\n",
        "runbooks/echo.yaml": """
            runbook: echo
            steps:
              - id: say
                check: [echo, "${{ inputs }}"]
        """,
        "extra.yaml": "limit: 3\nnames: [a, b]\n",
    })
    run_id = lane_json("run", "echo", "--input", "email.from=a@x.example", "--input", "email.count=2",
                       "--input", "flag=true", "--input", "text=hello world", "--input", "more=@extra.yaml", cwd=root)["run_id"]
    view = lane_json("show", run_id, cwd=root)
    assert view["inputs"] == {"email": {"from": "a@x.example", "count": 2}, "flag": True, "text": "hello world", "more": {"limit": 3, "names": ["a", "b"]}}
    bad = lane("run", "echo", "--input", "novalue", cwd=root)
    assert bad.returncode == 2 and "--input 'novalue': write KEY=VALUE" in bad.stderr
    missing = lane("run", "echo", "--input-file", "nope.json", cwd=root)
    assert missing.returncode == 2 and "--input-file: no file nope.json" in missing.stderr
    unknown = lane("run", "nope", cwd=root)
    assert unknown.returncode == 2 and "no runbook 'nope'" in unknown.stderr and "runbooks: echo" in unknown.stderr


def test_every_command_takes_project_and_explains_itself(tmp_path: Path) -> None:
    for command in ("init", "validate", "run", "runs", "show", "approve", "reject", "resume", "demo"):
        helped = lane(command, "--help", cwd=tmp_path)
        assert helped.returncode == 0
        assert len(helped.stdout.splitlines()) > 4
        assert "--project" in helped.stdout, command
    nothing = lane("runs", cwd=tmp_path)
    assert nothing.returncode == 2 and "no lane.yaml in" in nothing.stdout + nothing.stderr
    top = lane("--help", cwd=tmp_path)
    assert "lane init" in top.stdout


def test_run_shows_live_progress_on_a_terminal_and_nothing_extra_when_piped(tmp_path: Path) -> None:
    assert lane("init", "p", cwd=tmp_path).returncode == 0
    root = tmp_path / "p"
    rehearse(root)
    seen = on_a_terminal(["run", "support-triage", "--input", EMAIL], root)
    for step in ("classify", "lookup", "draft"):
        assert f"{step} done" in seen, seen
    assert "paused" in seen
    piped = lane("run", "support-triage", "--input", EMAIL, cwd=root)
    assert piped.returncode == 3
    assert "classify done" not in piped.stdout and "\x1b[" not in piped.stdout
    quiet = on_a_terminal(["run", "support-triage", "--input", EMAIL, "--quiet"], root)
    assert "classify done" not in quiet and "paused" in quiet
