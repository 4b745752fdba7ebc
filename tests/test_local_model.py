"""The built-in local model (Gemma 3 270M through llama.cpp), for real: schema-valid handoffs and tool calls.

Slow: loads a 250 MB model. Runs in CI.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import lane
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


def test_the_model_is_loaded_once_per_process(project: lane.Project) -> None:
    from lane.models import local

    project.run("classify", {"email": EMAILS[0]})
    project.run("classify", {"email": EMAILS[1]})
    assert len(local._LOADED) == 1


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


def test_without_the_extra_the_error_says_how_to_install_it(tmp_path: Path) -> None:
    root = write_project(tmp_path / "p", FILES)
    code = (
        "import sys; sys.modules['llama_cpp'] = None\n"  # as if lane[local] were not installed
        "from lane.cli.app import main; main()"
    )
    result = subprocess.run([sys.executable, "-c", code, "run", "classify", "--input", "email=hi", "--json"],
                            cwd=root, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    view = json.loads(result.stdout)
    assert view["status"] == "failed"
    assert "install it with: pip install 'lane[local]'" in view["reason"]
