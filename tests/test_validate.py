"""`lane validate`: every broken project file is reported at `path:line:column`, all at once, before anything runs.

Each case starts from BASE (a small valid project) and breaks one thing; the
expected lines were checked by hand against the file text (1-based line and
column of the offending key or value). The line numbers of BASE are written
beside it so a case can be read without running it.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from conftest import lane, write_project

BASE = {
    # 1 project: base
    # 2 models:
    # 3   default: scripted:script.yaml
    # 4 roles:
    # 5   lead: {kind: human}
    # 6   triager: {kind: agent}
    # 7   writer: {kind: agent}
    # 8 toolsets:
    # 9   notes: {python: tools/notes.py}
    "lane.yaml": """
        project: base
        models:
          default: scripted:script.yaml
        roles:
          lead: {kind: human}
          triager: {kind: agent}
          writer: {kind: agent}
        toolsets:
          notes: {python: tools/notes.py}
    """,
    # 1 ---  2 name  3 description  4 autonomy  5 tools  6 ---  7 body
    "agents/triager.md": """
        ---
        name: triager
        description: Sorts tickets.
        autonomy: guarded
        tools: [notes.read]
        ---
        You sort tickets into categories.
    """,
    # 1 ---  2 name  3 autonomy  4 tools  5 ---  6 body
    "agents/writer.md": """
        ---
        name: writer
        autonomy: ask
        tools: [notes.read, notes.publish]
        ---
        You write short notes.
    """,
    #  1 runbook          9 - id: classify   18 - id: draft      24 - id: review   28 - id: publish
    #  2 version         10   agent          19   agent          25   human        29   tool
    #  3 inputs:         11   goal           20   goal           26   approve      30   args
    #  4   type          12   with           21   tools          27   when         31 - id: done
    #  5   properties:   13   output:        22   with                             32   check
    #  6     ticket      14     type         23   output
    #  7   required      15     properties:
    #  8 steps:          16       category
    #                    17     required
    "runbooks/ticket.yaml": """
        runbook: ticket
        version: 1
        inputs:
          type: object
          properties:
            ticket: {type: string}
          required: [ticket]
        steps:
          - id: classify
            agent: triager
            goal: Classify the ticket.
            with: {ticket: "${{ inputs.ticket }}"}
            output:
              type: object
              properties:
                category: {type: string}
              required: [category]
          - id: draft
            agent: writer
            goal: Draft a note.
            tools: [notes.read]
            with: {category: "${{ steps.classify.output.category }}"}
            output: {type: object, properties: {text: {type: string}}, required: [text]}
          - id: review
            human: lead
            approve: "${{ steps.draft.output }}"
            when: steps.classify.output.category != 'spam'
          - id: publish
            tool: notes.publish
            args: {text: "${{ steps.review.output.text }}"}
          - id: done
            check: [test, -s, published.txt]
    """,
    # 1 classify:  2 - output  3 draft:  4 - tool_calls  5 - output
    "script.yaml": """
        classify:
          - output: {category: bug}
        draft:
          - tool_calls: [{name: notes.read, args: {}}]
          - output: {text: printer on fire}
    """,
    "tools/notes.py": '''
        from pathlib import Path

        from lane import tool


        @tool(effect="read")
        def read() -> dict:
            """Read the published notes."""
            path = Path("published.txt")
            return {"text": path.read_text() if path.exists() else ""}


        @tool(effect="external")
        def publish(text: str) -> dict:
            """Publish a note."""
            with open("published.txt", "a") as f:
                f.write(text + "\\n")
            return {"published": text}
    ''',
}

Edit = tuple[str, str | None, str | None]  # (path, old text or None for the whole file, new text or None to delete)


def sub(path: str, old: str, new: str) -> Edit:
    """Replace the one occurrence of `old` in a BASE file."""
    return (path, old, new)


def put(path: str, text: str) -> Edit:
    """Write a whole file (dedented)."""
    return (path, None, text)


def drop(path: str) -> Edit:
    return (path, None, None)


def broken(root: Path, edits: list[Edit]) -> Path:
    files = {name: textwrap.dedent(text).lstrip("\n") for name, text in BASE.items()}
    for path, old, new in edits:
        if new is None:
            del files[path]
        elif old is None:
            files[path] = textwrap.dedent(new).lstrip("\n")
        else:
            assert files[path].count(old) == 1, f"{old!r} must occur once in {path}"
            files[path] = files[path].replace(old, new)
    return write_project(root, files)


def problem_lines(stdout: str) -> list[str]:
    return [line for line in stdout.splitlines() if line.strip()]


RB = "runbooks/ticket.yaml"
TRIAGER = "agents/triager.md"
WRITER = "agents/writer.md"
PROVIDERS = "providers: local, scripted, openai, anthropic, ollama, or an alias under models:"

CASES = [
    # -- YAML syntax -------------------------------------------------------------------------------
    pytest.param(
        [sub("lane.yaml", "project: base", "project: base: camp")],
        ["lane.yaml:1:14: YAML syntax error: mapping values are not allowed here"],
        id="yaml-syntax-in-lane-yaml",
    ),
    pytest.param(
        [sub(RB, "goal: Classify the ticket.", "goal: Classify: the ticket.")],
        [f"{RB}:11:19: YAML syntax error: mapping values are not allowed here"],
        id="yaml-syntax-in-runbook",
    ),
    pytest.param(
        [sub(TRIAGER, "description: Sorts tickets.", "description: Sorts: tickets.")],
        [f"{TRIAGER}:3:19: YAML syntax error: mapping values are not allowed here"],
        id="yaml-syntax-in-agent-front-matter",
    ),
    pytest.param(  # found where the parser stopped (the ':' of `with:`), and says where the list starts
        [sub(RB, "tools: [notes.read]\n", "tools: [notes.read\n")],
        [f"{RB}:22:9: YAML syntax error: expected ',' or ']', but got ':' (in the list [...] that starts at line 21, column 12)"],
        id="yaml-unclosed-list-in-runbook",
    ),
    pytest.param(  # line numbers count the front matter's opening '---'
        [sub(TRIAGER, "tools: [notes.read]\n", "tools: [notes.read\n")],
        [f"{TRIAGER}:6:1: YAML syntax error: expected ',' or ']', but got '<stream end>' (in the list [...] that starts at line 5, column 8)"],
        id="yaml-unclosed-list-in-front-matter",
    ),
    pytest.param(
        [sub("lane.yaml", "  writer: {kind: agent}", "  writer: {kind: agent}\n  lead: {kind: agent}")],
        ['lane.yaml:8:3: YAML syntax error: found duplicate key "lead"'],
        id="yaml-duplicate-key",
    ),
    pytest.param(
        [put("lane.yaml", "")],
        ["lane.yaml:1:1: the file must be a mapping of keys, not empty"],
        id="empty-lane-yaml",
    ),
    # -- agent files --------------------------------------------------------------------------------
    pytest.param(
        [put(WRITER, "You write short notes.\n")],
        [f"{WRITER}:1:1: missing YAML front matter: start the file with a line '---'"],
        id="agent-without-front-matter",
    ),
    pytest.param(
        [sub(WRITER, "tools: [notes.read, notes.publish]\n---\n", "tools: [notes.read, notes.publish]\n")],
        [f"{WRITER}:1:1: front matter is not closed: add a line '---' after it"],
        id="agent-front-matter-not-closed",
    ),
    pytest.param(
        [put("agents/editor.md", "---\nname: editor\n---\nYou edit.\n")],
        ["agents/editor.md:2:7: role 'editor' is not in the work chart (roles in lane.yaml); roles: lead, triager, writer"],
        id="agent-file-whose-name-is-not-a-role",
    ),
    pytest.param(
        [sub(WRITER, "name: writer", "name: writter")],
        [f"{WRITER}:2:7: agent name 'writter' must match its file name 'writer'"],
        id="agent-name-not-its-file-name",
    ),
    pytest.param(
        [drop(WRITER)],
        ["lane.yaml:7:3: agent role 'writer' has no file agents/writer.md"],
        id="agent-role-without-agent-file",
    ),
    # -- unknown keys -------------------------------------------------------------------------------
    pytest.param(
        [sub("lane.yaml", "models:", "modles:")],
        ["lane.yaml:2:1: unknown key 'modles' (did you mean 'models'?)"],
        id="unknown-key-in-lane-yaml",
    ),
    pytest.param(
        [sub("lane.yaml", "{python: tools/notes.py}", "{pyhton: tools/notes.py}")],
        ["lane.yaml:9:11: unknown key 'pyhton' (did you mean 'python'?)"],
        id="unknown-key-in-toolset",
    ),
    pytest.param(
        [sub(TRIAGER, "autonomy: guarded", "autonmy: guarded")],
        [f"{TRIAGER}:4:1: unknown key 'autonmy' (did you mean 'autonomy'?)"],
        id="unknown-key-in-agent",
    ),
    pytest.param(
        [sub(RB, "version: 1", "verison: 1")],
        [f"{RB}:2:1: unknown key 'verison' (did you mean 'version'?)"],
        id="unknown-key-in-runbook",
    ),
    pytest.param(
        [sub(RB, "tools: [notes.read]", "tols: [notes.read]")],
        [f"{RB}:21:5: unknown key 'tols' (did you mean 'tools'?)"],
        id="unknown-key-in-step",
    ),
    pytest.param(
        [sub("script.yaml", "  - output: {text: printer on fire}", "  - outptu: {text: printer on fire}")],
        ["script.yaml:5:5: unknown key 'outptu' (did you mean 'output'?)"],
        id="unknown-key-in-script-turn",
    ),
    pytest.param(  # the missing key is reported where its mapping starts, the misspelt one where it is
        [sub("lane.yaml", "  default: scripted:script.yaml", "  default: scripted:script.yaml\n  office: {provder: openai, model: qwen}")],
        ["lane.yaml:4:11: missing required key 'provider'", "lane.yaml:4:12: unknown key 'provder' (did you mean 'provider'?)"],
        id="misspelt-key-in-model-mapping",
    ),
    pytest.param(
        [sub("lane.yaml", "project: base", "projet: base")],
        ["lane.yaml:1:1: missing required key 'project'", "lane.yaml:1:1: unknown key 'projet' (did you mean 'project'?)"],
        id="misspelt-required-key",
    ),
    # -- missing required keys ----------------------------------------------------------------------
    pytest.param(
        [sub("lane.yaml", "roles:\n  lead: {kind: human}\n  triager: {kind: agent}\n  writer: {kind: agent}\n", "")],
        ["lane.yaml:1:1: missing required key 'roles'"],
        id="missing-roles",
    ),
    pytest.param(
        [put(RB, "runbook: ticket\nversion: 1\n")],
        [f"{RB}:1:1: missing required key 'steps'"],
        id="missing-steps",
    ),
    pytest.param(
        [put(RB, "runbook: ticket\nsteps: []\n")],
        [f"{RB}:2:8: 'steps' needs at least 1 item"],
        id="empty-steps",
    ),
    pytest.param(
        [sub(RB, "  - id: draft\n    agent: writer", "  - agent: writer")],
        [f"{RB}:18:5: missing required key 'id'"],
        id="missing-step-id",
    ),
    # -- wrong types --------------------------------------------------------------------------------
    pytest.param(
        [sub(TRIAGER, "tools: [notes.read]", "tools: notes.read")],
        [f"{TRIAGER}:5:8: 'tools' must be a list, not a string"],
        id="tools-a-string",
    ),
    pytest.param(
        [sub(RB, "version: 1", "version: two")],
        [f"{RB}:2:10: 'version' must be an integer, not a string"],
        id="version-two",
    ),
    pytest.param(
        [sub("lane.yaml", "lead: {kind: human}", "lead: {kind: person}")],
        ["lane.yaml:5:16: 'kind' is 'person'; expected 'human' or 'agent'"],
        id="role-kind-person",
    ),
    pytest.param(
        [sub("lane.yaml", "  lead: {kind: human}", "  lead: {kind: human}\n  7: {kind: human}")],
        ["lane.yaml:6:3: key 7 must be a name (a string), not an integer"],
        id="role-name-a-number",
    ),
    pytest.param(
        [sub("lane.yaml", "  default: scripted:script.yaml", "  default: scripted:script.yaml\n  office: 8080")],
        ["lane.yaml:4:11: 'office' must be a model id such as openai:gpt-4.1-mini, or a mapping with provider, not an integer"],
        id="model-a-number",
    ),
    # -- the work chart ------------------------------------------------------------------------------
    pytest.param(
        [sub(RB, "agent: writer", "agent: writr")],
        [f"{RB}:19:12: role 'writr' is not in the work chart (roles in lane.yaml) (did you mean 'writer'?)"],
        id="step-agent-role-not-in-chart",
    ),
    pytest.param(
        [sub(RB, "human: lead", "human: boss")],
        [f"{RB}:25:12: role 'boss' is not in the work chart (roles in lane.yaml); roles: lead, triager, writer"],
        id="human-step-role-not-in-chart",
    ),
    pytest.param(
        [sub(RB, "human: lead", "human: writer")],
        [f"{RB}:25:12: role 'writer' is an agent role; this needs a human role"],
        id="human-step-names-agent-role",
    ),
    pytest.param(
        [sub(RB, "agent: writer", "agent: lead")],
        [f"{RB}:19:12: role 'lead' is a human role; this needs an agent role"],
        id="agent-step-names-human-role",
    ),
    pytest.param(
        [sub(RB, "version: 1\n", "version: 1\napprover: triager\n")],
        [f"{RB}:3:11: role 'triager' is an agent role; this needs a human role"],
        id="runbook-approver-an-agent-role",
    ),
    # -- references -----------------------------------------------------------------------------------
    pytest.param(
        [sub(RB, '"${{ inputs.ticket }}"', '"${{ steps.draft.output.text }}"')],
        [f"{RB}:12:20: step 'draft' does not run before this one, so its output is not produced yet"],
        id="ref-to-later-step",
    ),
    pytest.param(
        [sub(RB, "steps.classify.output.category }}", "steps.clasify.output.category }}")],
        [f"{RB}:22:22: no earlier step 'clasify' (did you mean 'classify'?)"],
        id="ref-to-missing-step",
    ),
    pytest.param(
        [sub(RB, "steps.classify.output.category }}", "steps.classify.output.kind }}")],
        [f"{RB}:22:22: steps.classify.output has no property 'kind'; it has category"],
        id="ref-to-property-not-in-output-schema",
    ),
    pytest.param(
        [sub(RB, "inputs.ticket", "inputs.tiket")],
        [f"{RB}:12:20: inputs has no property 'tiket' (did you mean 'ticket'?)"],
        id="ref-to-undeclared-input",
    ),
    pytest.param(
        [sub(RB, "steps.draft.output }}", "steps.draft.outputs }}")],
        [f"{RB}:26:14: steps.draft has no 'outputs' (it has output, status, refused)"],
        id="ref-to-unknown-step-field",
    ),
    pytest.param(
        [sub(RB, "inputs.ticket", "input.ticket")],
        [f"{RB}:12:20: unknown name 'input' (did you mean 'inputs'?)"],
        id="ref-to-unknown-name",
    ),
    # -- steps --------------------------------------------------------------------------------------
    pytest.param(
        [sub(RB, "- id: publish", "- id: draft")],
        [f"{RB}:28:9: duplicate step id 'draft' (first used by step 2)"],
        id="duplicate-step-id",
    ),
    pytest.param(
        [sub(RB, "- id: done", "- id: 2done")],
        [f"{RB}:31:9: step id '2done' must be a name of letters, digits and '_' that does not start with a digit"],
        id="step-id-not-a-name",
    ),
    pytest.param(
        [sub(RB, "check: [test, -s, published.txt]", "tool: notes.read\n    check: [test, -s, published.txt]")],
        [f"{RB}:31:5: step 'done' must have exactly one of agent, tool, human, check, parallel, for_each, runbook (it has tool and check)"],
        id="step-with-two-kinds",
    ),
    pytest.param(
        [sub(RB, "goal: Classify the ticket.", "goal: Classify the ticket.\n    args: {x: 1}")],
        [f"{RB}:12:5: 'args' is not used by agent steps (it belongs to tool steps)"],
        id="step-key-of-another-kind",
    ),
    pytest.param(
        [sub(RB, "    goal: Draft a note.\n", "")],
        [f"{RB}:18:5: agent step 'draft' needs a 'goal': what the agent must achieve"],
        id="agent-step-without-goal",
    ),
    pytest.param(
        [sub(RB, '    approve: "${{ steps.draft.output }}"\n', "")],
        [f"{RB}:24:5: human step 'review' needs exactly one of 'approve' (a value to sign off) or 'input' (a JSON schema to fill)"],
        id="human-step-without-approve",
    ),
    pytest.param(
        [sub(RB, "tool: notes.publish", "tool: notes.pubish")],
        [f"{RB}:29:11: unknown tool 'notes.pubish' (did you mean 'notes.publish'?)"],
        id="tool-step-unknown-tool",
    ),
    pytest.param(
        [put("runbooks/triage.yaml", "runbook: ticket\nsteps:\n  - id: done\n    check: [echo]\n")],
        ["runbooks/triage.yaml:1:10: runbook 'ticket' is also defined in runbooks/ticket.yaml"],
        id="two-runbooks-with-one-name",
    ),
    # -- JSON schemas ---------------------------------------------------------------------------------
    pytest.param(
        [sub(RB, "category: {type: string}", "category: {type: strng}")],
        [f"{RB}:16:26: invalid JSON schema: unknown type 'strng' (did you mean 'string'?)"],
        id="output-schema-type-strng",
    ),
    pytest.param(  # YAML 1.2: `yes` is a string
        [sub(RB, "required: [category]", "required: yes")],
        [f"{RB}:17:17: invalid JSON schema: 'yes' is not of type 'array'"],
        id="output-schema-required-yes",
    ),
    pytest.param(
        [sub(RB, "{text: {type: string}}", "{text: {type: [string, nul]}}")],
        [f"{RB}:23:63: invalid JSON schema: unknown type 'nul' (did you mean 'null'?)"],
        id="output-schema-type-list-with-nul",
    ),
    pytest.param(
        [sub(RB, "  type: object\n  properties:\n    ticket", "  type: obj\n  properties:\n    ticket")],
        [f"{RB}:4:9: invalid JSON schema: unknown type 'obj' (did you mean 'object'?)"],
        id="inputs-schema-type-obj",
    ),
    # -- tools ----------------------------------------------------------------------------------------
    pytest.param(
        [sub(TRIAGER, "tools: [notes.read]", "tools: [notes.raed]")],
        [f"{TRIAGER}:5:9: no tool matches 'notes.raed' (did you mean 'notes.read'?)"],
        id="agent-lists-unknown-tool",
    ),
    pytest.param(
        [sub(RB, "goal: Classify the ticket.", "goal: Classify the ticket.\n    tools: [notes.publish]")],
        [f"{RB}:12:13: agent 'triager' is not allowed tool 'notes.publish' (its tools: notes.read)"],
        id="step-tools-beyond-the-agent",
    ),
    pytest.param(  # and nothing about the tools that file would have held
        [sub("lane.yaml", "python: tools/notes.py", "python: tools/note.py")],
        ["lane.yaml:9:19: no file tools/note.py"],
        id="python-toolset-file-missing",
    ),
    pytest.param(
        [put("tools/notes.py", "from lane import tool\n\nraise RuntimeError('no database')\n")],
        ["tools/notes.py:3:1: toolset 'notes' cannot be loaded: RuntimeError: no database"],
        id="python-toolset-raises-on-import",
    ),
    pytest.param(
        [put("tools/notes.py", "from lane import tool\n\n\n@tool(effect='read')\ndef read( -> dict:\n    return {}\n")],
        ["tools/notes.py:5:11: toolset 'notes' cannot be loaded: SyntaxError: invalid syntax"],
        id="python-toolset-syntax-error",
    ),
    pytest.param(
        [put("tools/notes.py", "def read() -> dict:\n    return {}\n")],
        ["lane.yaml:9:19: tools/notes.py has no @tool functions (from lane import tool)"],
        id="python-toolset-without-tools",
    ),
    pytest.param(
        [sub("lane.yaml", "{python: tools/notes.py}", "{python: tools/notes.py, effect: read}")],
        ["lane.yaml:9:35: 'effect' of a Python tool is declared on each function: @tool(effect=...)"],
        id="python-toolset-declares-effect",
    ),
    pytest.param(
        [sub("lane.yaml", "{python: tools/notes.py}", "{}")],
        ["lane.yaml:9:10: toolset 'notes' needs exactly one of python, command, builtin, mcp, http (it has none)"],
        id="toolset-of-no-kind",
    ),
    pytest.param(
        [sub("lane.yaml", "toolsets:", "toolsets:\n  fs: {mcp: {command: npx, url: 'http://127.0.0.1:1/mcp'}}")],
        ["lane.yaml:9:13: an MCP server needs `command:` (lane starts it) or `url:` (it is running), not both"],
        id="mcp-toolset-with-command-and-url",
    ),
    pytest.param(
        [sub("lane.yaml", "toolsets:", "rules: {deny: ['notes.publish(*', ok]}\ntoolsets:")],
        [
            "lane.yaml:8:16: unbalanced parentheses in 'notes.publish(*' ('(' is never closed): write TOOL(PATTERN)",
            "lane.yaml:8:35: rule 'ok' names no tool of this project",
        ],
        id="rule-malformed",
    ),
    pytest.param(
        [sub(RB, "version: 1\n", "version: 1\nkpis: {done: {value: steps.done.status, target: most}}\n")],
        [f"{RB}:3:49: target 'most' must be a comparison with a number, such as \">= 0.8\" or \"< 30\""],
        id="kpi-target-not-a-comparison",
    ),
    pytest.param(
        [sub(RB, "version: 1\n", "version: 1\nkpis:\n  sent: {value: steps.publsh.status}\n  cost: {value: run.dollars}\n")],
        [f"{RB}:4:17: no step 'publsh' (did you mean 'publish'?)",
         f"{RB}:5:17: 'run' has id, status, tokens, seconds, not 'dollars'"],
        id="kpi-unknown-names",
    ),
    pytest.param(
        [sub(RB, "args: {text: \"${{ steps.review.output.text }}\"}", "args: {text: \"${{ run.tokens }}\"}")],
        [f"{RB}:30:18: 'run.tokens' is known only when the run ends; use it in kpis"],
        id="run-totals-only-in-kpis",
    ),
    # -- models, scripts and autonomy -------------------------------------------------------------------
    pytest.param(
        [sub("lane.yaml", "default: scripted:", "default: scriptd:")],
        [f"lane.yaml:3:12: unknown model provider 'scriptd' (did you mean 'scripted'?); {PROVIDERS}"],
        id="unknown-provider-in-lane-yaml",
    ),
    pytest.param(
        [sub(TRIAGER, "autonomy: guarded", "model: opneai:gpt-4.1\nautonomy: guarded")],
        [f"{TRIAGER}:4:8: unknown model provider 'opneai' (did you mean 'openai'?); {PROVIDERS}"],
        id="unknown-provider-in-agent",
    ),
    pytest.param(
        [sub("lane.yaml", "default: scripted:script.yaml", "default: scripted:script.yaml\n  fast: openai")],
        ["lane.yaml:4:9: 'openai' needs a model name after the colon, such as openai:gpt-4.1-mini"],
        id="hosted-model-without-a-name",
    ),
    pytest.param(
        [sub("lane.yaml", "default: scripted:script.yaml", "default: scripted:script.yaml\n  office: {provider: openai, base_url: 'localhost:8080', api_key: sk-live-123}")],
        [
            "lane.yaml:4:3: model 'office' needs `model:`, the name the server knows it by",
            "lane.yaml:4:40: base_url must be an http:// or https:// URL such as http://127.0.0.1:8080/v1, not 'localhost:8080'",
            "lane.yaml:4:67: api_key must name an environment variable, as env:NAME; keys are never written in project files",
        ],
        id="model-mapping-problems",
    ),
    pytest.param(
        [sub("lane.yaml", "project: base", "project: base\nretry: {attempts: 0, delay: -1}")],
        ["lane.yaml:2:19: 'attempts' must be at least 1, not 0", "lane.yaml:2:29: 'delay' must be at least 0, not -1"],
        id="retry-policy-out-of-range",
    ),
    pytest.param(
        [sub(TRIAGER, "autonomy: guarded", "settings: {temperature: 5, max_tokns: 10}\nautonomy: guarded")],
        [f"{TRIAGER}:4:25: 'temperature' must be at most 2, not 5", f"{TRIAGER}:4:28: unknown key 'max_tokns' (did you mean 'max_tokens'?)"],
        id="agent-settings",
    ),
    pytest.param(
        [sub("lane.yaml", "scripted:script.yaml", "scripted:scripts.yaml")],
        ["lane.yaml:3:12: no script file 'scripts.yaml' for model 'scripted:scripts.yaml'"],
        id="script-file-missing",
    ),
    pytest.param(
        [sub("script.yaml", "  - output: {category: bug}", "  - tool_calls: [{name: notes.publish, args: {}}]\n  - output: {category: bug}")],
        ["script.yaml:2:25: calls tool 'notes.publish', which its agent is not allowed (allowed: notes.read)"],
        id="script-calls-tool-agent-may-not-use",
    ),
    pytest.param(
        [sub("script.yaml", "draft:", "drafts:")],
        ["script.yaml:3:1: no agent step 'drafts' uses this script (did you mean 'draft'?)"],
        id="script-key-naming-no-step",
    ),
    pytest.param(
        [sub("script.yaml", "args: {}", "args: [1]")],
        ["script.yaml:4:43: args must be a mapping"],
        id="script-call-args-a-list",
    ),
    pytest.param(
        [sub(TRIAGER, "autonomy: guarded", "autonomy: guardd")],
        [f"{TRIAGER}:4:11: unknown autonomy level 'guardd' (one of observe, ask, guarded, auto)"],
        id="unknown-autonomy-level",
    ),
    # -- expressions ----------------------------------------------------------------------------------
    pytest.param(
        [sub(RB, "category != 'spam'", "category = 'spam'")],
        [f"{RB}:27:11: expression \"steps.classify.output.category = 'spam'\" does not parse: unexpected '='; to compare two values, write =="],
        id="when-does-not-parse",
    ),
    pytest.param(
        [sub(RB, "steps.review.output.text }}", "steps.review.output.text + }}")],
        [f"{RB}:30:18: expression 'steps.review.output.text +' does not parse: unexpected end of the expression"],
        id="value-expression-does-not-parse",
    ),
]


@pytest.mark.parametrize(("edits", "expected"), CASES)
def test_each_broken_project_is_reported_at_the_offending_place(tmp_path: Path, edits: list[Edit], expected: list[str]) -> None:
    root = broken(tmp_path / "project", edits)
    result = lane("validate", cwd=root)
    assert result.returncode == 2, result.stdout + result.stderr
    assert problem_lines(result.stdout) == expected, result.stdout
    count = len(expected)
    assert f"{count} problem{'s' if count != 1 else ''}; nothing was run." in result.stderr


# Several problems in several files, found in one run and listed by path, then line.
SEVERAL = [
    sub("lane.yaml", "  notes: {python: tools/notes.py}", "  notes: {python: tools/notes.py}\n  fs: {mcp: {}}"),
    sub(TRIAGER, "autonomy: guarded", "autonomy: guardd"),
    sub(RB, "steps.classify.output.category }}", "steps.clasify.output.category }}"),
    sub(RB, "human: lead", "human: boss"),
    sub(RB, "tool: notes.publish", "tool: notes.pubish"),
    put("runbooks/escalate.yaml", "runbook: escalate\nsteps:\n  - id: page\n    human: triager\n    approve: now\n"),
    sub("script.yaml", "draft:", "drafts:"),
]
SEVERAL_EXPECTED = [
    f"{TRIAGER}:4:11: unknown autonomy level 'guardd' (one of observe, ask, guarded, auto)",
    "lane.yaml:10:13: an MCP server needs `command:` (lane starts it) or `url:` (it is running), not both",
    "runbooks/escalate.yaml:4:12: role 'triager' is an agent role; this needs a human role",
    f"{RB}:22:22: no earlier step 'clasify' (did you mean 'classify'?)",
    f"{RB}:25:12: role 'boss' is not in the work chart (roles in lane.yaml); roles: lead, triager, writer",
    f"{RB}:29:11: unknown tool 'notes.pubish' (did you mean 'notes.publish'?)",
    "script.yaml:3:1: no agent step 'drafts' uses this script (did you mean 'draft'?)",
]


def test_every_problem_in_every_file_is_reported_in_one_run_sorted_by_path_and_line(tmp_path: Path) -> None:
    root = broken(tmp_path / "project", SEVERAL)
    result = lane("validate", cwd=root)
    assert result.returncode == 2, result.stderr
    assert problem_lines(result.stdout) == SEVERAL_EXPECTED, result.stdout
    assert "7 problems; nothing was run." in result.stderr


def test_validate_json_lists_each_problem_with_path_line_column_and_message(tmp_path: Path) -> None:
    root = broken(tmp_path / "project", SEVERAL)
    result = lane("validate", "--json", cwd=root)
    assert result.returncode == 2, result.stderr
    expected = []
    for line in SEVERAL_EXPECTED:
        path, row, column, message = line.split(":", 3)
        expected.append({"path": path, "line": int(row), "column": int(column), "message": message[1:]})
    assert json.loads(result.stdout) == expected


def test_the_base_project_is_valid_and_runs(tmp_path: Path) -> None:
    root = broken(tmp_path / "project", [])
    result = lane("validate", cwd=root)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "is a valid lane project" in result.stdout
    as_json = lane("validate", "--json", cwd=root)
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout) == []
    started = lane("run", "ticket", "--input", "ticket=printer on fire", "--json", cwd=root)
    assert started.returncode == 3, started.stdout + started.stderr  # paused at the human step
    assert json.loads(started.stdout)["status"] == "paused"


def test_validate_takes_the_project_from_an_option(tmp_path: Path) -> None:
    root = broken(tmp_path / "project", [sub(RB, "human: lead", "human: boss")])
    result = lane("validate", "--project", str(root), cwd=tmp_path)
    assert result.returncode == 2
    assert problem_lines(result.stdout) == [f"{RB}:25:12: role 'boss' is not in the work chart (roles in lane.yaml); roles: lead, triager, writer"]


def test_run_on_a_broken_project_exits_2_and_runs_nothing(tmp_path: Path) -> None:
    root = broken(tmp_path / "project", SEVERAL)
    result = lane("run", "ticket", "--input", "ticket=printer on fire", cwd=root)
    assert result.returncode == 2, result.stdout + result.stderr
    assert problem_lines(result.stdout) == SEVERAL_EXPECTED
    assert "nothing was run" in result.stderr
    assert not (root / ".lane" / "lane.db").exists()
    assert not (root / "published.txt").exists()


def test_a_bad_store_url_is_a_validate_problem(tmp_path: Path) -> None:
    root = tmp_path / "p"
    root.mkdir()
    (root / "lane.yaml").write_text("project: x\nroles: {me: {kind: human}}\nstore: mysql://db/lane\n")
    result = lane("validate", cwd=root)
    assert result.returncode == 2
    assert result.stdout.splitlines() == [
        "lane.yaml:3:8: store 'mysql://db/lane': write sqlite:///PATH, postgresql://USER@HOST/DB or memory (lane.yaml: store)"
    ]


def test_a_work_chart_without_a_person_is_a_problem_only_where_a_step_would_wait_for_one(tmp_path: Path) -> None:
    root = write_project(tmp_path / "p", {
        "lane.yaml": """
            project: x
            roles:
              bot: {kind: agent}
            toolsets:
              desk: {python: tools/desk.py}
        """,
        "agents/bot.md": "---\nname: bot\nmodel: scripted:s.yaml\nautonomy: auto\ntools: [desk.*]\n---\nYou work.\n",
        "s.yaml": "- output: done\n",
        "tools/desk.py": """
            from lane import tool

            @tool(effect="external")
            def send(to: str) -> str:
                \"\"\"Sends.\"\"\"
                return to
        """,
        "runbooks/r.yaml": "runbook: r\nsteps:\n  - {id: work, agent: bot, goal: Work.}\n",
    })
    assert lane("validate", cwd=root).returncode == 0  # nothing waits for a person: no human role needed
    (root / "runbooks" / "s.yaml").write_text("runbook: s\nsteps:\n  - {id: send, tool: desk.send, args: {to: a}}\n")
    result = lane("validate", cwd=root)
    assert result.returncode == 2
    assert result.stdout.splitlines() == [
        "runbooks/s.yaml:3:5: step 'send' waits for a person (autonomy guarded: desk.send is external), but the work chart "
        "has no human role to decide it; add one to roles in lane.yaml, such as `lead: {kind: human}`, "
        "or let the step run on its own (autonomy, rules)"
    ]


def test_tool_choice_required_without_tools_is_a_problem(tmp_path: Path) -> None:
    root = tmp_path / "p"
    (root / "agents").mkdir(parents=True)
    (root / "runbooks").mkdir()
    (root / "lane.yaml").write_text("project: x\nmodels: {default: local}\nroles:\n  me: {kind: human}\n  bot: {kind: agent}\n")
    (root / "agents" / "bot.md").write_text("---\nname: bot\n---\nYou work.\n")
    (root / "runbooks" / "r.yaml").write_text("runbook: r\nsteps:\n  - id: a\n    agent: bot\n    goal: Work.\n    tool_choice: required\n")
    result = lane("validate", cwd=root)
    assert result.returncode == 2
    assert result.stdout.splitlines() == ["runbooks/r.yaml:6:18: tool_choice: required, but agent 'bot' has no tools in this step"]
