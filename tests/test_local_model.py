"""The built-in local model (Gemma 3 270M through llama.cpp), for real: schema-valid handoffs and tool calls.

Slow: loads a 250 MB model. Runs in CI.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from importlib import resources
from pathlib import Path

import pytest

import lane
from conftest import lane as run_lane
from conftest import write_project

pytest.importorskip("llama_cpp", reason="install lane[local]")
pytestmark = pytest.mark.slow

EMAILS = [
    "I was charged twice for March, please refund one payment.",
    "The app crashes every time I press save.",
    "Could you add a dark mode to the dashboard?",
    "My invoice shows the wrong VAT number.",
    "Login page shows error 500 since this morning.",
    "It would be great to export reports as CSV.",
    "Hello, just wanted to say thanks for the quick help!",
    "Why was my card declined when renewing?",
    "The search results never load on mobile.",
    "Please support single sign-on with Okta.",
    "Where can I find your office address?",
]
CATEGORIES = ["billing", "bug", "feature_request", "other"]

FILES = {
    "lane.yaml": """
        project: local
        models: {default: local}
        roles:
          lead: {kind: human}
          triager: {kind: agent}
          writer: {kind: agent}
        toolsets:
          crm: {python: tools/crm.py}
    """,
    "agents/triager.md": """
        ---
        name: triager
        autonomy: auto
        ---
        You sort support email into categories.
    """,
    "agents/writer.md": """
        ---
        name: writer
        autonomy: auto
        tools: [crm.find_customer]
        ---
        You write short replies to customers. Look the customer up first.
    """,
    "runbooks/classify.yaml": """
        runbook: classify
        inputs: {type: object, properties: {email: {type: string}}, required: [email]}
        steps:
          - id: classify
            agent: triager
            goal: Classify the email.
            with: {email: "${{ inputs.email }}"}
            output:
              type: object
              properties: {category: {enum: [billing, bug, feature_request, other]}}
              required: [category]
            examples:
              - {with: {email: "I was charged twice"}, output: {category: billing}}
              - {with: {email: "The page is blank after login"}, output: {category: bug}}
              - {with: {email: "Please add an API for invoices"}, output: {category: feature_request}}
    """,
    "runbooks/reply.yaml": """
        runbook: reply
        inputs: {type: object, properties: {from: {type: string}, body: {type: string}}, required: [from, body]}
        steps:
          - id: draft
            agent: writer
            goal: Look the customer up by their email address, then write a one-sentence reply.
            with: {from: "${{ inputs.from }}", body: "${{ inputs.body }}"}
            tool_choice: required
            output: {type: object, properties: {reply: {type: string, minLength: 1, maxLength: 400}}, required: [reply]}
    """,
    "tools/crm.py": '''
        from lane import tool

        @tool(effect="read")
        def find_customer(email: str) -> dict:
            """Look a customer up by email address.

            Args:
                email: The customer's email address.
            """
            return {"name": "Dana Reyes", "plan": "Team"} if "@" in email else {"found": False}
    ''',
}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> lane.Project:
    root = write_project(tmp_path_factory.mktemp("local") / "p", FILES)
    with lane.Project.load(root) as proj:
        yield proj


def test_a_classification_step_returns_schema_valid_output_on_every_input(project: lane.Project) -> None:
    for email in EMAILS:
        run = project.run("classify", {"email": email})
        assert run.status == "completed", (email, run.reason)
        view = project.show(run.run_id)
        [step] = view["steps"]
        assert step["output"]["category"] in CATEGORIES
        assert "handoff_rejections" not in step, "the grammar should make every reply valid the first time"
        assert step["usage"]["input_tokens"] > 0 and step["usage"]["output_tokens"] > 0
        assert step["context"]["model"] == "local"


def test_an_agent_calls_its_tool_through_the_engine_then_hands_off_valid_output(project: lane.Project) -> None:
    run = project.run("reply", {"from": "dana@example.com", "body": "I was charged twice."})
    assert run.status == "completed", run.reason
    [step] = project.show(run.run_id)["steps"]
    first = step["tool_calls"][0]
    assert first["tool"] == "crm.find_customer" and first["status"] == "ok"
    assert isinstance(first["args"]["email"], str)
    assert first["executions"][0]["result"] in ({"name": "Dana Reyes", "plan": "Team"}, {"found": False})
    assert isinstance(step["output"]["reply"], str) and 0 < len(step["output"]["reply"]) <= 400


def test_a_streamed_reply_is_the_same_reply_with_the_same_usage(project: lane.Project) -> None:
    whole = project.show(project.run("classify", {"email": EMAILS[3]}).run_id)["steps"][0]
    pieces: list[str] = []
    streamed = project.show(project.run("classify", {"email": EMAILS[3]}, on_stream=pieces.append).run_id)["steps"][0]
    assert len(pieces) > 2
    assert json.loads("".join(pieces)) == streamed["output"] == whole["output"]
    assert streamed["usage"] == whole["usage"]


def test_per_agent_settings_reach_the_model(tmp_path: Path) -> None:
    files = dict(FILES)
    files["agents/writer.md"] = FILES["agents/writer.md"].replace("autonomy: auto", "autonomy: auto\n        settings: {max_tokens: 4}")
    with lane.Project.load(write_project(tmp_path / "p", files)) as proj:
        run = proj.run("reply", {"from": "dana@example.com", "body": "I was charged twice."})
    assert run.status == "failed"
    assert "the reply was cut off at 4 tokens" in (run.reason or "")


def test_the_model_is_loaded_once_per_process(project: lane.Project) -> None:
    from lane.models import local
    from lane.models.weights import default_weights

    project.run("classify", {"email": EMAILS[0]})
    first = local.load(default_weights())[0]
    project.run("classify", {"email": EMAILS[1]})
    assert local.load(default_weights())[0] is first


def test_local_path_runs_any_gguf_file(tmp_path: Path) -> None:
    from lane.models.weights import default_weights

    files = dict(FILES)
    files["lane.yaml"] = FILES["lane.yaml"].replace("default: local", "default: local:weights/any.gguf")
    root = write_project(tmp_path / "p", files)
    (root / "weights").mkdir()
    (root / "weights" / "any.gguf").symlink_to(default_weights())
    with lane.Project.load(root) as proj:
        run = proj.run("classify", {"email": EMAILS[2]})
        assert run.status == "completed", run.reason
        assert proj.show(run.run_id)["steps"][0]["context"]["model"] == "local:weights/any.gguf"
    other = write_project(tmp_path / "other", files)  # another file at the same relative path: PATH is what is loaded
    (other / "weights").mkdir()
    (other / "weights" / "any.gguf").write_bytes(b"GGUF but not really")
    with lane.Project.load(other) as proj:
        run = proj.run("classify", {"email": EMAILS[2]})
        assert run.status == "failed"
        assert f"llama.cpp cannot load {other / 'weights' / 'any.gguf'}" in (run.reason or "")


def test_without_the_extra_validate_and_run_say_how_to_install_it_before_anything_runs(tmp_path: Path) -> None:
    root = write_project(tmp_path / "p", FILES)
    code = (
        "import sys; sys.modules['llama_cpp'] = None\n"  # as if lane[local] were not installed
        "from lane.cli.app import main; main()"
    )
    for args in (["validate"], ["run", "classify", "--input", "email=hi"]):
        result = subprocess.run([sys.executable, "-c", code, *args], cwd=root, capture_output=True, text=True, timeout=120)
        assert result.returncode == 2, result.stdout + result.stderr
        assert "agents/triager.md:2:7: agent 'triager' (the default in lane.yaml): model local needs llama_cpp, " \
               "which is not installed: pip install 'lane[local]'" in result.stdout
    assert not (root / ".lane").exists()  # nothing was run


def _one_step(root: Path, output: str, *, agent: str = "triager", extra: str = "") -> Path:
    files = dict(FILES)
    files["runbooks/one.yaml"] = f"""
        runbook: one
        inputs: {{type: object, properties: {{email: {{type: string}}}}}}
        steps:
          - id: one
            agent: {agent}
            goal: Answer the email.
            with: {{email: "${{{{ inputs.email }}}}"}}
            output: {output}
            {extra}
    """
    return write_project(root, files)


def test_bounds_llama_cpp_cannot_build_are_left_to_lanes_own_check(tmp_path: Path) -> None:
    root = _one_step(tmp_path / "p", "{type: object, properties: {reply: {type: string, maxLength: 3000}}, required: [reply]}")
    with lane.Project.load(root) as proj:
        run = proj.run("one", {"email": EMAILS[0]})
    assert run.status == "completed", run.reason  # it used to kill the process (llama.cpp segfaults)


def test_a_schema_llama_cpp_cannot_convert_fails_the_step_clearly(tmp_path: Path) -> None:
    root = _one_step(tmp_path / "p", "{type: object, properties: {code: {type: string, pattern: '[a-z]+'}}, required: [code]}")
    with lane.Project.load(root) as proj:
        run = proj.run("one", {"email": EMAILS[0]})
    assert run.status == "failed"
    assert "llama.cpp cannot turn this JSON schema into a grammar" in (run.reason or "")
    assert "internal error" not in (run.reason or "")


def test_a_reply_cut_off_at_max_tokens_is_a_failed_attempt_on_the_record(tmp_path: Path) -> None:
    """An unbounded list of enums runs to the token limit: the cut-off reply is a turn on the record, with its
    tokens, and counts against the step's repairs (none here: one reply, then the step fails, saying what to do)."""
    root = _one_step(tmp_path / "p", "{type: object, properties: {tags: {type: array, items: {enum: [billing, bug]}}}, required: [tags]}",
                     extra="repairs: 0")
    with lane.Project.load(root) as proj:
        run = proj.run("one", {"email": EMAILS[0]})
        assert run.status == "failed"
        assert "the reply was cut off at 512 tokens" in (run.reason or "") and "bound the output schema" in (run.reason or "")
        step = proj.show(run.run_id)["steps"][0]
        assert len(step["turns"]) == 1 and step["usage"]["output_tokens"] == 512


def test_a_tool_with_enum_and_model_arguments_works_on_the_local_model(tmp_path: Path) -> None:
    root = _one_step(tmp_path / "p", "{type: object, properties: {reply: {type: string, maxLength: 200}}, required: [reply]}",
                     agent="writer", extra="tool_choice: required")
    (root / "tools" / "crm.py").write_text(textwrap.dedent('''
        from enum import Enum
        from pydantic import BaseModel
        from lane import tool

        class Priority(str, Enum):
            low = "low"
            high = "high"

        class Contact(BaseModel):
            email: str

        @tool(effect="read")
        def find_customer(contact: Contact, priority: Priority) -> dict:
            """Look a customer up."""
            return {"name": "Dana", "priority": priority.value, "email": contact.email}
    '''))
    with lane.Project.load(root) as proj:
        run = proj.run("one", {"email": "dana@example.com: charged twice"})
        assert run.status == "completed", run.reason
        call = proj.show(run.run_id)["steps"][0]["tool_calls"][0]
        assert call["status"] == "ok" and call["args"]["priority"] in ("low", "high")


def test_the_prompt_holds_the_context_files_and_a_resume_sends_what_was_recorded(tmp_path: Path) -> None:
    files = dict(FILES)
    files["agents/writer.md"] = FILES["agents/writer.md"].replace("autonomy: auto", "autonomy: ask\n        context: {always: [canon/policy.md]}")
    files["canon/policy.md"] = "Refunds take five days."
    files["tools/crm.py"] = FILES["tools/crm.py"].replace('effect="read"', 'effect="write"')
    root = write_project(tmp_path / "p", files)
    with lane.Project.load(root) as proj:
        run = proj.run("reply", {"from": "dana@example.com", "body": "Refund?"})
        assert run.status == "paused", run.reason
        first = proj.show(run.run_id)["steps"][0]["turns"][0]["response"]["prompt"]
        assert "Refunds take five days." in first and first.startswith("You write short replies")
    (root / "agents" / "writer.md").write_text((root / "agents" / "writer.md").read_text().replace("You write short replies", "You write in French"))
    with lane.Project.load(root) as proj:
        proj.approve(run.run_id)
        run = proj.resume(run.run_id)
        later = proj.show(run.run_id)["steps"][0]["turns"][1]["response"]["prompt"]
        assert later.startswith("You write short replies") and "Refunds take five days." in later


def test_weights_are_assembled_once_even_by_processes_at_the_same_time(tmp_path: Path) -> None:
    import os

    code = "from lane.models.weights import default_weights; print(default_weights())"
    env = {**os.environ, "LANE_CACHE": str(tmp_path / "cache")}
    procs = [subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [o[1] for o in outs]
    target = Path(outs[0][0].strip())
    assert {o[0].strip() for o in outs} == {str(target)} and target.stat().st_size > 200_000_000
    assert not list(target.parent.glob("*.partial"))
    with open(target, "r+b") as f:  # a damaged cache file is noticed and replaced
        f.truncate(1000)
    again = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and target.stat().st_size > 200_000_000


def test_the_demo_inbox_is_classified_right_with_the_examples_nearest_each_email(tmp_path: Path) -> None:
    """The support-triage example's fixtures: 5 of 8 with 8 fixed examples, 8 of 8 with the 4 of 48 nearest each email."""
    root = tmp_path / "triage"
    shutil.copytree(str(resources.files("lane.examples") / "support_triage"), root)
    ran = run_lane("test", "support-triage", "--json", cwd=root, timeout=900)
    summary = json.loads(ran.stdout or "{}")
    assert summary.get("passed", 0) >= 7, ran.stdout + ran.stderr


def test_a_long_feedback_loop_keeps_the_task_and_its_latest_turns_within_the_window() -> None:
    """A feedback loop's turns pile up past the 4,096-token window: the oldest are left out, saying so, and the
    model still sees the task, its examples and the latest feedback (it used to fail the run at attempt 6)."""
    import asyncio

    from lane.models.base import ModelRequest, Settings, Task
    from lane.models.local import N_CTX, LocalModel
    from lane.models.weights import default_weights

    model = LocalModel("local", default_weights())
    feedback = [{"role": "user", "content": f"Attempt {i}: the check failed. " + "The file does not parse. " * 120} for i in range(8)]
    request = ModelRequest(
        messages=[{"role": "system", "content": "You fix code."}, {"role": "user", "content": "Fix the cart."}, *feedback],
        output_schema={"type": "object", "properties": {"summary": {"type": "string", "maxLength": 20}}, "required": ["summary"]},
        task=Task("You fix code.", "Fix the cart.", {"task": "add add_item"}), settings=Settings(max_tokens=24),
    )
    response = asyncio.run(model.request(request))
    prompt = response.prompt or ""
    assert "of this step are left out to fit the model's window" in prompt
    assert "Attempt 7:" in prompt and "Attempt 0:" not in prompt and "Task: Fix the cart." in prompt
    assert response.usage.input_tokens + 24 <= N_CTX
