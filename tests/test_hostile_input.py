"""Hostile or broken input fails fast, with one line that says where and why, and never a traceback.

Each case starts from BASE (a small valid project) and breaks one thing the way a
red-team pass did: alias bombs, deep nesting, bytes YAML forbids, non-UTF-8 input,
oversized widths in expressions, a tools module that exits. The expected positions
were checked by hand against the file text (1-based line and column).
"""

from __future__ import annotations

import json
import os
import re
import resource
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import LANE, lane, write_project

pytestmark = pytest.mark.timeout(60)  # a hang fails the test: each case takes seconds

BASE = {
    "lane.yaml": """
        project: hostile
        models:
          default: scripted:script.yaml
        roles:
          lead: {kind: human}
          writer: {kind: agent}
        toolsets:
          notes: {python: tools/notes.py}
    """,
    "agents/writer.md": """
        ---
        name: writer
        tools: [notes.*]
        ---
        You write notes.
    """,
    # 1 runbook  2 inputs:  3 type  4 properties:  5 name  6 n  7 steps:  8 - id  9 tool  10 args
    "runbooks/hello.yaml": """
        runbook: hello
        inputs:
          type: object
          properties:
            name: {type: string}
            n: {type: integer}
        steps:
          - id: echo
            tool: notes.echo
            args: {text: "Hello ${{ inputs.name }}"}
    """,
    "runbooks/draft.yaml": """
        runbook: draft
        steps:
          - id: draft
            agent: writer
            goal: Draft a note.
            output: {type: object, properties: {text: {type: string}}, required: [text]}
    """,
    # 1 - tool_calls  2 - output
    "script.yaml": """
        - tool_calls: [{name: notes.echo, args: {text: hi}}]
        - output: {text: done}
    """,
    "tools/notes.py": '''
        from lane import tool


        @tool(effect="read")
        def echo(text: str) -> dict:
            """Say the text back, with its length."""
            return {"said": text[:40], "length": len(text)}
    ''',
}

# "Billion laughs": 10 strings, each level 10 aliases of the one before; 9 levels, about 10^9 values.
BOMB = "\n".join(
    ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    + [f"{name}: &{name} [" + ",".join([f"*{prev}"] * 10) + "]" for prev, name in zip("abcdefgh", "bcdefghi", strict=True)]
) + "\n"
BOMB_MESSAGE = "alias '*e' expands the file past 1,000,000 values (an alias counts everything it names, each time it is used)"
MEMORY = 2 << 30  # the address space a `lane` process gets in the expression tests: a regression fails, not the machine


def project(root: Path, changes: dict[str, str] | None = None) -> Path:
    """BASE, with the files in `changes` replaced."""
    return write_project(root, {**BASE, **(changes or {})})


def run(*args: str, root: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """The real `lane`, on a terminal wide enough that no message is wrapped."""
    return lane(*args, cwd=root, env={"COLUMNS": "1000"}, timeout=timeout)


def problems(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in result.stdout.splitlines() if line.strip()]


def one_problem(result: subprocess.CompletedProcess[str]) -> str:
    """The single `path:line:column: message` line `lane validate` printed, after checking how it exited."""
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    found = problems(result)
    assert len(found) == 1, found
    assert "1 problem; nothing was run." in result.stderr
    return found[0]


def one_error(result: subprocess.CompletedProcess[str]) -> str:
    """The single `error:` line a refused command printed on stderr."""
    assert "Traceback" not in result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0].removeprefix("error: ")


def text_at(root: Path, problem: str) -> str:
    """The file text from the line and column a problem names."""
    path, line, col, _ = problem.split(":", 3)
    return (root / path).read_text().splitlines()[int(line) - 1][int(col) - 1 :]


def test_the_base_project_is_valid_and_runs(tmp_path: Path) -> None:
    root = project(tmp_path)
    assert run("validate", root=root).returncode == 0
    result = run("run", "hello", "--input", "name=Ada", "--json", root=root)
    assert result.returncode == 0, result.stdout + result.stderr


# -- 1. YAML that expands, nests or loops -----------------------------------------------------------


@pytest.mark.parametrize(("file", "text", "line"), [
    ("runbooks/bomb.yaml", BOMB, 6),
    ("lane.yaml", textwrap.dedent(BASE["lane.yaml"]).lstrip() + BOMB, 8 + 6),
    ("agents/writer.md", "---\nname: writer\ntools: [notes.*]\n" + BOMB + "---\nYou write notes.\n", 3 + 6),
    ("script.yaml", BOMB, 6),
], ids=["runbook", "lane.yaml", "agent-front-matter", "script"])
def test_an_alias_bomb_is_refused_at_the_alias_that_blows_it_up(tmp_path: Path, file: str, text: str, line: int) -> None:
    root = project(tmp_path)
    (root / file).write_text(text)
    problem = one_problem(run("validate", root=root))
    assert problem.startswith(f"{file}:{line}:")
    assert problem.endswith(BOMB_MESSAGE + "; lane reads at most 1,000,000")
    assert text_at(root, problem).startswith("*e")


@pytest.mark.parametrize(("args", "option"), [
    (["--input-file", "bomb.yaml"], "--input-file"),
    (["--input", "name=@bomb.yaml"], "--input name"),
])
def test_an_alias_bomb_as_input_is_one_line_error(tmp_path: Path, args: list[str], option: str) -> None:
    root = project(tmp_path)
    (root / "bomb.yaml").write_text(BOMB)
    result = run("run", "hello", *args, root=root)
    assert result.returncode == 2
    assert re.fullmatch(rf"{option}: bomb\.yaml:6:\d+: {re.escape(BOMB_MESSAGE)}.*", one_error(result))


@pytest.mark.parametrize(("text", "expected", "at"), [
    ("runbook: x\nsteps: &s [*s]\n", "runbooks/x.yaml:2:12: alias '*s' is inside the value it names; lane cannot read a value that contains itself", "*s"),
    ("runbook: x\nsteps: " + "[" * 1000 + "]" * 1000 + "\n", "runbooks/x.yaml:2:107: nested deeper than 100 levels; lane reads at most 100", "["),
    ("a: &a " + "[" * 60 + "]" * 60 + "\nb: " + "[" * 50 + "*a" + "]" * 50 + "\n",
     "runbooks/x.yaml:2:54: alias '*a' nests the file deeper than 100 levels; lane reads at most 100", "*a"),
], ids=["recursive-alias", "deep-nesting", "alias-nests-too-deep"])
def test_recursive_and_deep_yaml_is_a_problem_at_its_place(tmp_path: Path, text: str, expected: str, at: str) -> None:
    root = project(tmp_path)
    (root / "runbooks/x.yaml").write_text(text)
    problem = one_problem(run("validate", root=root))
    assert problem == expected
    assert text_at(root, problem).startswith(at)


def test_a_yaml_file_past_a_mebibyte_is_refused_before_it_is_read(tmp_path: Path) -> None:
    root = project(tmp_path)
    (root / "runbooks/x.yaml").write_text(("#" * 99 + "\n") * 15_729)  # 1.5 MiB
    assert one_problem(run("validate", root=root)) == \
        "runbooks/x.yaml:1:1: the file is 1.5 MiB; lane reads files like it up to 1.0 MiB"


@pytest.mark.timeout(20)  # about 3 s; it took 40 s while the plain data was rebuilt for every step
def test_a_long_runbook_loads_in_linear_time(tmp_path: Path) -> None:
    steps = "".join(f'  - id: s{i}\n    tool: notes.echo\n    args: {{text: "${{{{ inputs.name }}}}"}}\n' for i in range(3000))
    root = project(tmp_path, {"runbooks/hello.yaml": "runbook: hello\nsteps:\n" + steps})
    result = run("validate", root=root)
    assert result.returncode == 0, result.stdout + result.stderr


# -- 2. characters YAML forbids, values Python cannot hold -----------------------------------------


@pytest.mark.parametrize(("text", "expected"), [
    ("runbook: x\nsteps: \x00\n", "runbooks/x.yaml:2:8: the character U+0000 is not allowed in YAML; remove it"),
    ("runbook: x\nversion: 1\x1b\n", "runbooks/x.yaml:2:11: the character U+001B is not allowed in YAML; remove it"),
    ("runbook: x\ndescription: 2024-13-45\n",
     "runbooks/x.yaml:2:14: cannot read '2024-13-45' (month must be in 1..12); quote it to keep it as text"),
    ("runbook: x\nversion: " + "9" * 5000 + "\n",
     "runbooks/x.yaml:2:10: cannot read '" + "9" * 40 + "…' (Exceeds the limit (4300 digits) for integer string conversion: "
     "value has 5000 digits); quote it to keep it as text"),
], ids=["nul", "escape-character", "impossible-date", "huge-integer"])
def test_what_ruamel_cannot_read_is_a_problem_at_its_position(tmp_path: Path, text: str, expected: str) -> None:
    root = project(tmp_path)
    (root / "runbooks/x.yaml").write_text(text)
    assert one_problem(run("validate", root=root)) == expected


# -- 3. --input values and files -------------------------------------------------------------------


@pytest.mark.parametrize(("args", "expected"), [
    (["--input", os.fsdecode(b"name=caf\xe9")],
     "--input name: the value is not UTF-8 text ('caf\\xe9'); pass it in UTF-8, or from a file with KEY=@FILE"),
    (["--input", os.fsdecode(b"n\xe4me=x")], "--input n\\xe4me: the name is not UTF-8 text; write it in UTF-8"),
    (["--input", "name=" + "[" * 5000 + "]" * 5000], "--input name: nested deeper than 100 levels; lane reads at most 100"),
    (["--input", "name=" + "[" * 101 + "]" * 101], "--input name: nested deeper than 100 levels; lane reads at most 100"),
], ids=["value-not-utf8", "name-not-utf8", "json-past-recursion-limit", "json-past-depth-limit"])
def test_input_values_lane_cannot_take_are_one_line_errors(tmp_path: Path, args: list[str], expected: str) -> None:
    root = project(tmp_path)
    result = run("run", "hello", *args, root=root)
    assert result.returncode == 2
    assert one_error(result) == expected
    assert not (root / ".lane").exists()  # refused before anything was stored


@pytest.mark.parametrize(("name", "content", "expected"), [
    ("deep.json", b'{"name": ' + b"[" * 5000 + b"]" * 5000 + b"}", "--input-file: deep.json:1:109: nested deeper than 100 levels; lane reads at most 100"),
    ("deep.json", b'{"name": "[[[[", "n": ' + b"[" * 100 + b"]" * 100 + b"}",
     "--input-file: deep.json:1:122: nested deeper than 100 levels; lane reads at most 100"),
    ("latin1.json", b'{"name": "caf\xe9"}', "--input-file: latin1.json:1:14: the file is not UTF-8 text (byte 0xe9); save it as UTF-8"),
    ("broken.json", b'{"name": "Ada",}', "--input-file: broken.json:1:16: JSON syntax error: Expecting property name enclosed in double quotes"),
    ("big.yaml", b"name: " + b"x" * (2 << 20) + b"\n",
     "--input-file: big.yaml:1:1: the file is 2.0 MiB of YAML; lane reads YAML up to 1.0 MiB: save large data as JSON, which it reads up to 32.0 MiB"),
], ids=["json-past-recursion-limit", "json-past-depth-limit", "not-utf8", "json-syntax", "yaml-too-big"])
def test_input_files_lane_cannot_take_are_one_line_errors(tmp_path: Path, name: str, content: bytes, expected: str) -> None:
    root = project(tmp_path)
    (root / name).write_bytes(content)
    result = run("run", "hello", "--input-file", name, root=root)
    assert result.returncode == 2
    assert one_error(result) == expected


@pytest.mark.timeout(120)
def test_a_ten_megabyte_json_input_is_read_as_json_and_runs(tmp_path: Path) -> None:
    root = project(tmp_path)
    (root / "big.json").write_text(json.dumps({"name": "x" * 10_000_000}))
    result = run("run", "hello", "--input-file", "big.json", "--json", root=root, timeout=120)
    assert result.returncode == 0, result.stderr[:2000]
    shown = json.loads(run("show", json.loads(result.stdout)["run_id"], "--json", root=root, timeout=120).stdout)
    assert shown["steps"][0]["output"] == {"said": "Hello " + "x" * 34, "length": len("Hello ") + 10_000_000}


# -- 4. scripted-model files -----------------------------------------------------------------------


@pytest.mark.parametrize(("script", "expected"), [
    ("- output: {text: done}\n  usage: {input_tokens: lots}\n",
     "script.yaml:2:25: input_tokens must be a whole number of tokens, 0 or more, not 'lots'"),
    ("- output: {text: done}\n  usage: {output_tokens: -3}\n",
     "script.yaml:2:26: output_tokens must be a whole number of tokens, 0 or more, not -3"),
    ("- output: {text: done}\n  usage: {cost_usd: cheap}\n",
     "script.yaml:2:21: cost_usd must be a cost in US dollars (0 or more) or null, not 'cheap'"),
    ("- output: {text: done}\n  usage: {tokens: 3}\n",
     "script.yaml:2:11: unknown key 'tokens' (did you mean 'input_tokens'?)"),
    ("- output: {text: done}\n  usage: 12\n",
     "script.yaml:2:10: usage must be a mapping such as {input_tokens: 120, output_tokens: 30}"),
    ("- text: 42\n", "script.yaml:1:9: text must be text, not int; quote it"),
    ("- tool_calls: [{name: notes.nope, args: {}}]\n- output: {text: done}\n",
     "script.yaml:1:23: no tool 'notes.nope' in this project (did you mean 'notes.echo'?)"),
], ids=["tokens-not-a-number", "tokens-negative", "cost-not-a-number", "unknown-usage-key", "usage-not-a-mapping",
        "text-not-text", "tool-not-in-project"])
def test_a_script_turn_a_run_could_not_use_is_a_validate_problem(tmp_path: Path, script: str, expected: str) -> None:
    root = project(tmp_path, {"script.yaml": script})
    assert one_problem(run("validate", root=root)) == expected


def test_a_script_may_call_mcp_tools_known_only_when_the_server_runs(tmp_path: Path) -> None:
    root = project(tmp_path, {
        "lane.yaml": textwrap.dedent(BASE["lane.yaml"]) + "  clock: {mcp: {command: mcp-server-time}}\n",
        "agents/writer.md": "---\nname: writer\ntools: [notes.*, clock.*]\n---\nYou write notes.\n",
        "script.yaml": "- tool_calls: [{name: clock.get_current_time, args: {}}]\n- output: {text: done}\n",
    })
    result = run("validate", root=root)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(("turn", "says"), [
    ({"output": {}, "usage": {"input_tokens": "lots"}}, "usage.input_tokens is wrong: input_tokens must be a whole number"),
    ({"tool_calls": [{"args": {}}]}, "tool_calls.0 is wrong: a tool call needs a name"),
    ({"tool_calls": "notes.echo"}, "tool_calls is wrong: tool_calls must be a list"),
])
def test_the_python_api_refuses_the_same_turns_with_a_usage_error(turn: dict[str, object], says: str) -> None:
    from lane.errors import UsageError
    from lane.models.scripted import parse_turn
    from lane.testing import ScriptedModel

    with pytest.raises(UsageError, match=re.escape(says)):
        parse_turn(turn)
    with pytest.raises(UsageError, match=re.escape(says)):
        ScriptedModel([turn])


# -- 5. expressions that would build a huge value ---------------------------------------------------


def lane_with_memory_limit(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The real `lane`, in an address space a regression would run out of rather than eat the machine."""
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY, MEMORY))

    return subprocess.run([*LANE, *args], cwd=cwd, capture_output=True, text=True, timeout=120, preexec_fn=limit,
                          env={**os.environ, "COLUMNS": "200"}, stdin=subprocess.DEVNULL)


@pytest.mark.parametrize(("expression", "says"), [
    ("'%999999999d' | format(1)", "the format filter would build 1000000"),
    ("'%.999999999f' % 1.0", "'%' would build 1000000"),
    ("'%*d' % (999999999, 1)", "'%' would build 1000000"),
    ("'{:>999999999}'.format(1)", "str.format would build 1000000"),  # not `{:{w}}`: `}}` would end the `${{`
    ("inputs.name | center(999999999)", "the center filter would build 1000000"),
], ids=["format-filter", "percent-precision", "percent-star-width", "str-format-width", "center"])
def test_a_run_fails_at_the_step_whose_expression_would_build_a_huge_value(tmp_path: Path, expression: str, says: str) -> None:
    hello = textwrap.dedent(BASE["runbooks/hello.yaml"]).replace("Hello ${{ inputs.name }}", "${{ " + expression + " }}")
    root = project(tmp_path, {"runbooks/hello.yaml": hello})
    result = lane_with_memory_limit("run", "hello", "--input", "name=Ada", cwd=root)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert says in result.stdout + result.stderr
    assert "(a width, count or separator may add at most 1000000)" in result.stdout + result.stderr
    assert "MemoryError" not in result.stdout + result.stderr


EVALUATE = """
import json, sys
from lane.spec.expressions import ExpressionFailed, compile_expression
out = []
for text in json.loads(sys.stdin.read()):
    try:
        compile_expression(text).evaluate({"inputs": {}, "steps": {}, "run": {"id": "r"}})
        out.append("evaluated")
    except ExpressionFailed as exc:
        out.append(str(exc))
print(json.dumps(out))
"""

HUGE = [  # (expression, what the failure says): every way Jinja2's filters, methods and operators could build one
    ("'{:999999999}'.format(1)", "str.format would build 1000000000"),
    ("'{:{w}}'.format(1, w=999999999)", "str.format would build 1000000000"),
    ("'{x:999999999}'.format_map({'x': 1})", "str.format would build 1000000000"),
    ("'x' | indent(999999999)", "the indent filter would build"),
    ("('a\\n' * 500000) | indent(1000)", "the indent filter would build"),
    ("('x' * 1000000) | wordwrap(1, wrapstring='y' * 1000)", "the wordwrap filter would build"),
    ("'x'.ljust(999999999)", "str.ljust would build 1000000000"),
    ("'x'.rjust(999999999)", "str.rjust would build 1000000000"),
    ("'x'.zfill(999999999)", "str.zfill would build 1000000000"),
    ("'x'.center(999999999)", "str.center would build 1000000000"),
    ("('\\t' * 1000000).expandtabs(1000000)", "str.expandtabs would build"),
    ("('x' * 1000000).replace('', 'y' * 1000)", "str.replace would build"),
    ("('x' * 1000000) | replace('', 'y' * 1000)", "the replace filter would build"),
    ("'y' * 1000000 ~ ''.join(['x'] * 1000)", "evaluated"),  # within the limits: still works
    ("('x' * 1000) | join('y' * 1000000)", "the join filter would build"),
    ("('y' * 1000000).join('x' * 1000)", "str.join would build"),
    ("(['x' * 1000000] * 1000000) | join", "'*' would build 1000000000000 items"),
    ("range(10) | batch(999999999, 'x') | list", "the batch filter would build"),
    ("range(10) | slice(999999999) | list", "the slice filter would build"),
    ("{'a': [1, [2, [3]]]} | tojson(999999999)", "the tojson filter would build"),
    ("(10 ** 1000) ** 1000", "'**' would build a number of 3322000 bits (at most 100000)"),
    ("range(100000) | map('center', 100000) | join", "would take what this expression builds past 20000000"),
    ("dict.fromkeys(range(100000), 'x' * 100000) | string", "would take what this expression builds past 20000000"),
    ("dict.fromkeys(range(100000), 'x' * 100000) ~ ''", "would take what this expression builds past 20000000"),
    ("dict.fromkeys(range(100000), 'x' * 100000)", "its value would be more than 20000000 characters or items as text"),
    ("'%s' % (dict.fromkeys(range(100000), 'x' * 100000),)", "would take what this expression builds past 20000000"),
    ("'{}'.format(dict.fromkeys(range(100000), 'x' * 100000))", "would take what this expression builds past 20000000"),
    ("range(100000) | batch(1) | sum(start=[]) | length", "evaluated"),  # quadratic in Jinja2's own sum
    ("lipsum(999999)", "'lipsum' is undefined"),  # validate refuses the name in a runbook; this is the Python API
]


def test_every_way_to_build_a_huge_value_fails_with_the_reason() -> None:
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY, MEMORY))

    result = subprocess.run([sys.executable, "-c", EVALUATE], input=json.dumps([e for e, _ in HUGE]), capture_output=True,
                            text=True, timeout=60, preexec_fn=limit)
    assert result.returncode == 0, result.stderr
    for (expression, says), outcome in zip(HUGE, json.loads(result.stdout), strict=True):
        assert says in outcome, (expression, outcome)


# -- 6. an expression that is not closed -----------------------------------------------------------


def test_an_unclosed_expression_is_a_validate_problem_not_literal_text(tmp_path: Path) -> None:
    hello = textwrap.dedent(BASE["runbooks/hello.yaml"]).replace("Hello ${{ inputs.name }}", "Hello ${{ inputs.name")
    root = project(tmp_path, {"runbooks/hello.yaml": hello})
    assert one_problem(run("validate", root=root)) == \
        "runbooks/hello.yaml:10:18: an expression '${{' is not closed with '}}': '${{ inputs.name'"


# -- 7. a tools module that exits ------------------------------------------------------------------


@pytest.mark.parametrize(("module", "says"), [
    ("import sys\n\nsys.exit(3)\n", "SystemExit: 3 (it exits when imported; keep sys.exit() under `if __name__ == \"__main__\":`)"),
    ("raise SystemExit\n", "SystemExit (it exits when imported"),
    ("raise GeneratorExit('odd')\n", "GeneratorExit: odd"),
], ids=["sys-exit", "bare-system-exit", "other-base-exception"])
def test_a_tools_module_that_exits_on_import_is_the_modules_problem(tmp_path: Path, module: str, says: str) -> None:
    root = project(tmp_path, {"tools/notes.py": module})
    problem = one_problem(run("validate", root=root))
    line = module.count("\n")
    assert problem.startswith(f"tools/notes.py:{line}:1: toolset 'notes' cannot be loaded: {says}")


# -- 8. schema messages about huge values ----------------------------------------------------------


@pytest.mark.timeout(120)
def test_a_huge_input_that_misses_its_schema_is_shown_as_a_preview(tmp_path: Path) -> None:
    root = project(tmp_path)
    (root / "big.json").write_text(json.dumps({"name": "Ada", "n": "7" * 10_000_000}))
    result = run("run", "hello", "--input-file", "big.json", root=root, timeout=120)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert len(result.stderr) < 1000, result.stderr[:2000]
    assert f"inputs.n: '{'7' * 199}… (10000000 characters) is not of type 'integer'" in result.stderr


def test_a_list_of_a_million_wrong_items_lists_twenty_problems_and_says_there_are_more() -> None:
    from lane.spec.schema import schema_errors

    errors = schema_errors({"type": "array", "items": {"type": "integer"}}, ["x"] * 1_000_000, root="inputs.ids")
    assert len(errors) == 21
    assert errors[-1] == "inputs.ids: more problems than these 20; fix them and check again"
