"""Tool rules (deny -> ask -> allow) and the unwrapping of commands they are matched against.

Each case is a call a user could make and the verdict they would see: a broken order, a missed wrapper or a
path trick shows up here as a call that runs when it should not.
"""

from __future__ import annotations

import shlex

import pytest

from lane.engine.rules import RuleInvalid, RuleSet, Verdict, evaluate, parse_rule
from lane.tools.argv import MAX_DEPTH, Unanalysable, commands, has_prefix, line


def rules(**kinds: list[str]) -> RuleSet:
    ruleset, problems = RuleSet.parse(**kinds)
    assert problems == []
    return ruleset


def check(tool: str, subjects: list[str], *sets: tuple[str, RuleSet], args: dict[str, object] | None = None) -> Verdict:
    return evaluate(tool, args or {}, lambda: subjects, sets)


def shell_subjects(argv: list[str]) -> list[str]:
    return [line(c) for c in commands(argv)]


# -- parsing ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "message"), [
    ("", "empty rule"),
    ("   ", "empty rule"),
    ("shell(rm *", "'(' is never closed"),
    ("shell(rm *)x", "after the closing ')'"),
    ("shell rm *)", "')' without '('"),
    ("shell(rm (x)", "every '(' in the pattern needs its ')'"),
    ("(rm *)", "no tool glob"),
    ("files write", "is not a tool glob"),
    ("shell()", "empty pattern"),
    ("shell(  )", "empty pattern"),
    ("outbox.send(to=)", "'to=' has no glob"),
    ("outbox.send(to=*@x.example, bcc)", "'bcc' is not key=glob"),
    ("outbox.send(to=a, to=b)", "'to' is given twice"),
])
def test_malformed_rules_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(RuleInvalid, match=message.replace("(", r"\(").replace(")", r"\)").replace("*", r"\*")):
        parse_rule(text)


@pytest.mark.parametrize(("text", "tool", "pattern", "pairs"), [
    ("files.read", "files.read", None, ()),
    ("  crm.*  ", "crm.*", None, ()),
    ("shell(rm *)", "shell", "rm *", ()),
    ("files.write(src/**)", "files.write", "src/*", ()),
    ("files.read(doc (1).txt)", "files.read", "doc (1).txt", ()),
    ("tests(pytest --maxfail=1 *)", "tests", "pytest --maxfail=1 *", ()),
    ("outbox.send(to=*@competitor.example, subject=*invoice*)", "outbox.send", None,
     (("to", "*@competitor.example"), ("subject", "*invoice*"))),
])
def test_rules_are_read(text: str, tool: str, pattern: str | None, pairs: tuple[tuple[str, str], ...]) -> None:
    rule = parse_rule(text)
    assert (rule.tool, rule.pattern, rule.pairs) == (tool, pattern, pairs)


def test_a_ruleset_keeps_the_good_rules_and_reports_each_bad_one_where_it_is() -> None:
    ruleset, problems = RuleSet.parse(deny=["shell(rm *)", "shell("], ask=[42], allow=["files.read", ""])
    assert [r.text for r in ruleset.deny] == ["shell(rm *)"] and ruleset.ask == ()
    assert [r.text for r in ruleset.allow] == ["files.read"]
    assert [(kind, index) for kind, index, _ in problems] == [("deny", 1), ("ask", 0), ("allow", 1)]
    assert "not int" in problems[1][2]


# -- ordering --------------------------------------------------------------------------------------------

PROJECT = rules(
    deny=["files.write(.env)", "shell(rm *)", "outbox.send(to=*@competitor.example)", "crm.delete"],
    ask=["files.write(src/**)", "shell(git push *)", "outbox.send(subject=*invoice*)"],
    allow=["files.*", "shell(ls *)", "shell(echo *)", "tests(pytest *)", "outbox.send(to=*@us.example)"],
)


@pytest.mark.parametrize(("tool", "subjects", "args", "action", "rule"), [
    ("files.write", [".env"], {}, "deny", "lane.yaml deny: files.write(.env)"),  # deny beats ask and allow
    ("files.write", ["src/app.py"], {}, "ask", "lane.yaml ask: files.write(src/**)"),  # ask beats allow
    ("files.write", ["docs/a.md"], {}, "allow", "lane.yaml allow: files.*"),
    ("files.read", [], {}, "allow", "lane.yaml allow: files.*"),  # a tool-only rule needs no subject
    ("crm.delete", [], {}, "deny", "lane.yaml deny: crm.delete"),
    ("crm.list", ["x"], {}, None, None),
    ("shell", ["ls -l", "echo hi"], {}, "allow", "lane.yaml allow: shell(ls *); lane.yaml allow: shell(echo *)"),
    ("shell", ["ls", "cat x"], {}, None, None),  # allow needs every subject
    ("shell", ["ls", "rm -rf x"], {}, "deny", "lane.yaml deny: shell(rm *)"),  # deny needs any subject
    ("shell", ["rm"], {}, "deny", "lane.yaml deny: shell(rm *)"),  # `rm *` matches rm without arguments
    ("shell", ["rmdir x"], {}, None, None),
    ("shell", ["echo x", "git push origin"], {}, "ask", "lane.yaml ask: shell(git push *)"),
    ("shell", [], {}, None, None),  # a pattern never matches a call without subjects
    ("outbox.send", [], {"to": "ceo@competitor.example"}, "deny", "lane.yaml deny: outbox.send(to=*@competitor.example)"),
    ("outbox.send", [], {"to": "ann@us.example"}, "allow", "lane.yaml allow: outbox.send(to=*@us.example)"),
    ("outbox.send", [], {"to": "ann@us.example", "subject": "Your invoice"}, "ask",
     "lane.yaml ask: outbox.send(subject=*invoice*)"),
    ("outbox.send", [], {"subject": "hello"}, None, None),  # a missing key does not match
    ("outbox.send", [], {"to": ["ann@us.example", "x@competitor.example"]}, "deny",
     "lane.yaml deny: outbox.send(to=*@competitor.example)"),  # a list: any element for deny
    ("outbox.send", [], {"to": ["ann@us.example", "bob@else.example"]}, None, None),  # every element for allow
])
def test_deny_then_ask_then_allow(tool: str, subjects: list[str], args: dict[str, object],
                                  action: str | None, rule: str | None) -> None:
    verdict = check(tool, subjects, ("lane.yaml", PROJECT), args=args)
    assert (verdict.action, verdict.rule) == (action, rule)


@pytest.mark.parametrize(("pattern", "value", "matches"), [
    ("count=3", 3, True),
    ("count=3", "3", True),
    ("flag=true", True, True),
    ("tags=[\"a\"*", ["a", "b"], True),  # the list's compact JSON
    ("meta={\"k\":1}", {"k": 1}, True),
    ("count=3", 4, False),
])
def test_non_string_arguments_match_as_compact_json(pattern: str, value: object, matches: bool) -> None:
    verdict = check("t", [], ("lane.yaml", rules(deny=[f"t({pattern})"])), args={pattern.split("=")[0]: value})
    assert verdict.action == ("deny" if matches else None)


AGENT = rules(deny=["shell(git push *)"], allow=["shell(rm -rf build/*)", "shell(cat *)"])


@pytest.mark.parametrize(("subjects", "action", "rule"), [
    (["git push origin"], "deny", "agent triager deny: shell(git push *)"),  # the agent's deny beats the project's ask
    (["rm -rf build/x"], "deny", "lane.yaml deny: shell(rm *)"),  # the project's deny beats the agent's allow
    (["ls", "cat x"], "allow", "lane.yaml allow: shell(ls *); agent triager allow: shell(cat *)"),
])
def test_project_and_agent_rules_combine(subjects: list[str], action: str, rule: str) -> None:
    verdict = check("shell", subjects, ("lane.yaml", PROJECT), ("agent triager", AGENT))
    assert (verdict.action, verdict.rule) == (action, rule)


def test_a_deny_reason_names_the_rule_where_it_is_written_and_what_it_matched() -> None:
    verdict = check("shell", ["ls", "git push origin"], ("lane.yaml", PROJECT), ("agent triager", AGENT))
    assert verdict.reason == "rule 'shell(git push *)' in agent triager denies 'git push origin'"


# -- paths -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("path", "action"), [
    (".env", "deny"),
    ("./.env", "deny"),
    ("sub/.env", "deny"),
    ("a/../.env", "deny"),
    ("src/../.env", "deny"),
    (".envrc", None),
    ("sub/.env.example", None),
    ("sub/.env/../notes", None),
])
def test_a_pattern_without_slash_matches_the_normalised_last_component(path: str, action: str | None) -> None:
    ruleset = rules(deny=["files.write(.env)"])
    assert check("files.write", [path], ("lane.yaml", ruleset)).action == action


@pytest.mark.parametrize(("subject", "action"), [
    ("src/app.py", "allow"),
    ("./src/app.py", "allow"),
    ("src/../.env", None),  # normalising must not widen an allow
    ("config/src/app.py", None),  # nor does an allow match the last component
    ("rm -rf x/../pytest y", None),
])
def test_allow_rules_do_not_widen(subject: str, action: str | None) -> None:
    ruleset = rules(allow=["files.write(src/**)", "files.write(pytest *)"])
    assert check("files.write", [subject], ("lane.yaml", ruleset)).action == action


# -- unwrapping ------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("argv", "expected"), [
    (["env", "X=1", "rm", "-rf", "x"], [["rm", "-rf", "x"]]),
    (["env", "-i", "PATH=/bin", "rm", "x"], [["rm", "x"]]),
    (["env", "-u", "HOME", "--", "rm", "x"], [["rm", "x"]]),
    (["nohup", "rm", "x"], [["rm", "x"]]),
    (["nice", "-n", "5", "rm", "x"], [["rm", "x"]]),
    (["nice", "-5", "rm", "x"], [["rm", "x"]]),
    (["timeout", "5", "rm", "x"], [["rm", "x"]]),
    (["timeout", "-s", "KILL", "5", "rm", "x"], [["rm", "x"]]),
    (["stdbuf", "-oL", "rm", "x"], [["rm", "x"]]),
    (["setsid", "time", "-p", "command", "rm", "x"], [["rm", "x"]]),
    (["sh", "-c", "rm -rf x"], [["rm", "-rf", "x"]]),
    (["bash", "-lc", "echo hi && rm -rf x"], [["echo", "hi"], ["rm", "-rf", "x"]]),
    (["bash", "-o", "pipefail", "-ec", "ls | rm x"], [["ls"], ["rm", "x"]]),
    (["/bin/sh", "-c", "X=1 rm x; ls"], [["rm", "x"], ["ls"]]),
    (["sh", "-c", "nohup env A=b rm x"], [["rm", "x"]]),
    (["sh", "-c", "a || b & c\nd"], [["a"], ["b"], ["c"], ["d"]]),
    (["sh", "-c", "if true; then rm x; fi"], [["true"], ["rm", "x"]]),
    (["sh", "-c", ">log 2>&1 rm x"], [["rm", "x"]]),  # leading redirections do not hide the program
    (["sh", "-c", "ls 2>/dev/null > out"], [["ls", "2>", "/dev/null", ">", "out"]]),
    (["sh", "-c", "rm ';' -rf /"], [["rm", ";", "-rf", "/"]]),  # a quoted ; is a word, not a separator
    (["sh", "-c", "echo 'a && $(b)'"], [["echo", "a && $(b)"]]),  # single quotes make it inert
    (["sh", "-c", "find . -exec rm {} \\;"], [["find", ".", "-exec", "rm", "{}", ";"], ["rm", "{}"]]),
    (["xargs", "rm"], [["rm"]]),
    (["xargs", "-0", "-n", "1", "rm", "-f"], [["rm", "-f"]]),
    (["xargs"], [["echo"]]),
    (["/usr/bin/rm", "x"], [["rm", "x"]]),
    (["./rm", "x"], [["rm", "x"]]),
    (["sudo", "-u", "root", "rm", "x"], [["sudo", "-u", "root", "rm", "x"], ["rm", "x"]]),  # sudo itself is kept
    (["sh", "script.sh"], [["sh", "script.sh"]]),  # a script file is not looked into
    (["env"], [["env"]]),
])
def test_commands_are_unwrapped(argv: list[str], expected: list[list[str]]) -> None:
    assert commands(argv) == expected


@pytest.mark.parametrize(("argv", "reason"), [
    (["sh", "-c", "echo $(rm x)"], "command substitution"),
    (["sh", "-c", 'echo "$(rm x)"'], "command substitution"),
    (["sh", "-c", "echo `rm x`"], "command substitution"),
    (["sh", "-c", "eval rm x"], "'eval' runs shell code"),
    (["sh", "-c", "source ./x.sh"], "'source' runs shell code"),
    (["sh", "-c", ". ./x.sh"], "'.' runs shell code"),
    (["sh", "-c", "echo 'x"], "single quote .* never closed"),
    (["sh", "-c", 'echo "x'], "double quote .* never closed"),
    (["sh", "-c", "(rm x)"], "subshell"),
    (["sh", "-c", "diff <(ls) x"], "process substitution"),
    (["sh", "-c", "$X y"], "computed by the shell"),
    (["sh", "-c", "r* y"], "computed by the shell"),
    (["sh", "-c"], "no command string"),
    (["env", "-S", "rm x"], "option '-S' is not understood"),
    (["fish", "-c", "rm x"], "only sh-like shells"),
    (["nohup"] * (MAX_DEPTH + 1) + ["rm"], "nested more than"),
])
def test_what_cannot_be_analysed_raises(argv: list[str], reason: str) -> None:
    with pytest.raises(Unanalysable, match=reason):
        commands(argv)


def test_nested_shells_are_bounded() -> None:
    argv = ["rm", "x"]
    for _ in range(MAX_DEPTH):
        argv = ["sh", "-c", shlex.join(argv)]
    assert commands(argv) == [["rm", "x"]]
    with pytest.raises(Unanalysable, match="nested"):
        commands(["sh", "-c", shlex.join(argv)])


WRAPPED_RM = [
    ["rm", "-rf", "x"],
    ["env", "X=1", "rm", "-rf", "x"],
    ["env", "-i", "PATH=/bin", "rm", "x"],
    ["nohup", "rm", "x"],
    ["nice", "-n", "5", "rm", "x"],
    ["timeout", "5", "rm", "x"],
    ["sh", "-c", "rm -rf x"],
    ["bash", "-lc", "echo hi && rm -rf x"],
    ["/bin/sh", "-c", "X=1 rm x; ls"],
    ["sh", "-c", "nohup env A=b rm x"],
    ["xargs", "rm"],
    ["/usr/bin/rm", "x"],
    ["sudo", "rm", "x"],
]


@pytest.mark.parametrize("argv", WRAPPED_RM, ids=shlex.join)
def test_a_rule_on_rm_denies_every_wrapped_form(argv: list[str]) -> None:
    ruleset = rules(deny=["shell(rm *)"], allow=["shell(*)"])
    verdict = evaluate("shell", {}, lambda: shell_subjects(argv), [("lane.yaml", ruleset)])
    assert (verdict.action, verdict.rule) == ("deny", "lane.yaml deny: shell(rm *)")


@pytest.mark.parametrize("argv", [["sh", "-c", "echo $(rm x)"], ["bash", "-c", "eval rm"], ["sh", "-c", "'"]])
def test_a_command_that_cannot_be_analysed_is_denied_with_the_reason(argv: list[str]) -> None:
    ruleset = rules(deny=["shell(rm *)"], allow=["shell(*)"])
    verdict = evaluate("shell", {}, lambda: shell_subjects(argv), [("lane.yaml", ruleset)])
    assert verdict.action == "deny"
    assert str(_reason(argv)) in verdict.reason


def _reason(argv: list[str]) -> str:
    with pytest.raises(Unanalysable) as caught:
        commands(argv)
    return caught.value.reason


@pytest.mark.parametrize(("args", "subjects", "why"), [
    ({}, [3], "not a list of strings"),
    ({}, "rm x", "not a list of strings"),
    (None, ["x"], "mapping of arguments"),
])
def test_bad_input_fails_closed(args: object, subjects: object, why: str) -> None:
    ruleset = rules(allow=["shell(*)"])
    verdict = evaluate("shell", args, lambda: subjects, [("lane.yaml", ruleset)])  # type: ignore[arg-type,return-value]
    assert verdict.action == "deny" and why in verdict.reason


def test_subjects_are_not_computed_when_no_pattern_rule_needs_them() -> None:
    def unanalysable() -> list[str]:
        raise Unanalysable("never asked")

    ruleset = rules(deny=["files.write(.env)"], allow=["shell"])
    assert evaluate("shell", {}, unanalysable, [("lane.yaml", ruleset)]).action == "allow"
    assert evaluate("crm.list", {}, unanalysable, [("lane.yaml", ruleset)]).action is None


@pytest.mark.parametrize(("command", "prefixes", "expected"), [
    (["git", "status"], [["git", "status"]], True),
    (["git", "status", "-s"], [["git", "status"]], True),
    (["/usr/bin/git", "status"], [["git", "status"]], True),
    (["git", "status"], [["/usr/bin/git"]], True),
    (["git", "push"], [["git", "status"], ["ls"]], False),
    (["git"], [["git", "status"]], False),
    (["git-status"], [["git"]], False),  # whole words only
    (["ls"], [[]], False),  # an empty prefix allows nothing
    ([], [["ls"]], False),
])
def test_has_prefix(command: list[str], prefixes: list[list[str]], expected: bool) -> None:
    assert has_prefix(command, prefixes) is expected
