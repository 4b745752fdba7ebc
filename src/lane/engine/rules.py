"""Tool rules: deny -> ask -> allow, written in lane.yaml and in an agent's front matter.

A rule is `TOOLGLOB` or `TOOLGLOB(PATTERN)`. TOOLGLOB is an fnmatch glob on the tool's name (`files.write`,
`crm.*`). PATTERN is a glob matched against the call's subjects (a file tool's path, one line per command a
command tool would run, other tools' string arguments), or `key=glob` pairs (`to=*@x.example, subject=*invoice*`)
matched against the arguments (strings as they are, other values as compact JSON; a list matches element by
element). In globs `*` (and `**`) match anything, `/` included; paths are normalised (`./a/../b` is `b`); a
pattern without `/` also matches a path's last component (`.env` matches `config/.env`); `rm *` also matches
a bare `rm`. Deny and ask rules widen with those forms; an allow rule must match the subject as given and
normalised, so `src/../.env` is not allowed by `src/**`.

A call is denied if a deny rule matches any subject (a rule without a pattern: the call), else asked if an ask
rule does, else allowed if allow rules together cover every subject, else left to the autonomy level (`None`).
Anything that goes wrong while checking (subjects that cannot be computed, a bad value) denies the call.
"""

from __future__ import annotations

import fnmatch
import json
import posixpath
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

Action = Literal["deny", "ask", "allow"]
KINDS: tuple[Action, ...] = ("deny", "ask", "allow")

_TOOL_GLOB = re.compile(r"[A-Za-z0-9_.*?\[\]!-]+")
_PAIR = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*=(.*)", re.S)


class RuleInvalid(ValueError):
    """A rule cannot be read; the message says how to write it."""


@dataclass(frozen=True)
class Rule:
    text: str
    tool: str  # fnmatch glob on the tool name
    pattern: str | None = None  # a glob against the subjects, `**` already folded to `*`
    pairs: tuple[tuple[str, str], ...] = ()  # (argument, glob)

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class RuleSet:
    deny: tuple[Rule, ...] = ()
    ask: tuple[Rule, ...] = ()
    allow: tuple[Rule, ...] = ()

    @classmethod
    def parse(
        cls, *, deny: Iterable[object] = (), ask: Iterable[object] = (), allow: Iterable[object] = ()
    ) -> tuple[RuleSet, list[tuple[str, int, str]]]:
        """The valid rules, and a problem `(kind, index, message)` for each one that is not."""
        problems: list[tuple[str, int, str]] = []
        found = [_parse_list(kind, texts, problems) for kind, texts in zip(KINDS, (deny, ask, allow), strict=True)]
        return cls(*found), problems


@dataclass(frozen=True)
class Verdict:
    action: Action | None
    rule: str | None  # where the rule is written, its kind and text: "lane.yaml deny: shell(rm *)"
    reason: str


def parse_rule(text: str) -> Rule:
    """Read `TOOLGLOB` or `TOOLGLOB(PATTERN)`; raises RuleInvalid saying how to fix it."""
    if not isinstance(text, str):
        raise RuleInvalid(f"a rule is a string such as 'files.write(.env)', not {type(text).__name__}")
    text = text.strip()
    if not text:
        raise RuleInvalid("empty rule: write a tool glob such as 'files.read' or 'files.write(src/**)'")
    tool, pattern = _split_rule(text)
    if not tool:
        raise RuleInvalid(f"{text!r} has no tool glob before '(': write e.g. 'shell(rm *)', or '*(...)' for every tool")
    if not _TOOL_GLOB.fullmatch(tool):
        raise RuleInvalid(f"{tool!r} is not a tool glob: use letters, digits, '_', '-', '.' and '*', as in 'crm.*'")
    if pattern is None:
        return Rule(text, tool)
    if not pattern:
        raise RuleInvalid(f"{text!r} has an empty pattern: write '{tool}' to match every call, or a glob inside ( )")
    if _PAIR.match(pattern):
        return Rule(text, tool, pairs=_pairs(text, pattern))
    return Rule(text, tool, pattern=re.sub(r"\*{2,}", "*", pattern))


def evaluate(
    tool: str, args: Mapping[str, Any], subjects: Callable[[], list[str]], rulesets: Sequence[tuple[str, RuleSet]]
) -> Verdict:
    """The rules' verdict on a call; `subjects` is called only if a pattern rule for this tool needs it."""
    try:
        return _verdict(_Call(tool, args, subjects), rulesets)
    except Exception as exc:  # whatever went wrong, the call was not shown to be safe: fail closed
        return Verdict("deny", None, f"the call could not be checked against the rules, so it is denied: {exc}")


def _parse_list(kind: str, texts: Iterable[object], problems: list[tuple[str, int, str]]) -> tuple[Rule, ...]:
    if isinstance(texts, str | bytes) or not isinstance(texts, Iterable):
        problems.append((kind, 0, f"{kind} must be a list of rules, such as [\"files.write(.env)\"]"))
        return ()
    rules: list[Rule] = []
    for index, text in enumerate(texts):
        try:
            rules.append(parse_rule(text))  # type: ignore[arg-type]  # parse_rule rejects non-strings itself
        except RuleInvalid as exc:
            problems.append((kind, index, str(exc)))
    return tuple(rules)


def _split_rule(text: str) -> tuple[str, str | None]:
    """The tool glob and the pattern inside the parentheses (None without any)."""
    start = text.find("(")
    if start < 0:
        if ")" in text:
            raise RuleInvalid(f"{text!r} has ')' without '(': write TOOL or TOOL(PATTERN)")
        return text, None
    if not text.endswith(")"):
        where = "after the closing ')'" if ")" in text[start:] else "'(' is never closed"
        raise RuleInvalid(f"unbalanced parentheses in {text!r} ({where}): write TOOL(PATTERN)")
    inner = text[start + 1 : -1]
    if not _balanced(inner):
        raise RuleInvalid(f"unbalanced parentheses in {text!r}: every '(' in the pattern needs its ')'")
    return text[:start].strip(), inner.strip()


def _balanced(text: str) -> bool:
    depth = 0
    for char in text:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth < 0:
            return False
    return depth == 0


def _pairs(text: str, pattern: str) -> tuple[tuple[str, str], ...]:
    pairs: list[tuple[str, str]] = []
    for part in pattern.split(","):
        found = _PAIR.fullmatch(part)
        if found is None:
            raise RuleInvalid(f"in {text!r}, {part.strip()!r} is not key=glob: separate pairs with ',' as in "
                              "'outbox.send(to=*@x.example, subject=*invoice*)'")
        key, glob = found[1], found[2].strip()
        if not glob:
            raise RuleInvalid(f"in {text!r}, '{key}=' has no glob: write e.g. '{key}=*' or drop the pair")
        if key in dict(pairs):
            raise RuleInvalid(f"in {text!r}, '{key}' is given twice: keep one glob per argument")
        pairs.append((key, glob))
    return tuple(pairs)


class _Call:
    """A tool call being checked; its subjects are computed once, when a rule first needs them."""

    def __init__(self, tool: str, args: Mapping[str, Any], compute: Callable[[], list[str]]) -> None:
        if not isinstance(tool, str) or not isinstance(args, Mapping):
            raise TypeError(f"a call is a tool name and a mapping of arguments, not {tool!r} and {args!r}")
        self.tool, self.args, self._compute = tool, args, compute
        self._subjects: list[str] | None = None

    def subjects(self) -> list[str]:
        if self._subjects is None:
            found = self._compute()
            if not isinstance(found, list | tuple) or not all(isinstance(s, str) for s in found):
                raise TypeError(f"the subjects of {self.tool} are not a list of strings: {found!r}")
            self._subjects = list(found)
        return self._subjects


def _verdict(call: _Call, rulesets: Sequence[tuple[str, RuleSet]]) -> Verdict:
    for action in KINDS[:2]:
        for label, rule in _rules(call, rulesets, action):
            hit = _hit(rule, call)
            if hit is not None:
                verb = "denies" if action == "deny" else "asks a person about"
                return Verdict(action, f"{label} {action}: {rule}", f"rule '{rule}' in {label} {verb} {hit}")
    return _allowed(call, list(_rules(call, rulesets, "allow")))


def _rules(call: _Call, rulesets: Sequence[tuple[str, RuleSet]], action: Action) -> Iterable[tuple[str, Rule]]:
    """The rules of one kind whose tool glob matches the call, labelled by where they are written."""
    for label, ruleset in rulesets:
        yield from ((label, r) for r in getattr(ruleset, action) if fnmatch.fnmatchcase(call.tool, r.tool))


def _hit(rule: Rule, call: _Call) -> str | None:
    """What a deny or ask rule matches in the call, if anything."""
    if rule.pattern is None:
        return f"this {call.tool} call" if _pairs_match(rule, call.args, every=False) else None
    return next((repr(s) for s in call.subjects() if _matches_any_form(rule.pattern, s)), None)


def _allowed(call: _Call, rules: list[tuple[str, Rule]]) -> Verdict:
    """Allowed if a rule without pattern covers the call, or pattern rules together cover every subject."""
    for label, rule in rules:
        if rule.pattern is None and _pairs_match(rule, call.args, every=True):
            return Verdict("allow", f"{label} allow: {rule}", f"rule '{rule}' in {label} allows this {call.tool} call")
    patterned = [(label, rule.pattern, rule) for label, rule in rules if rule.pattern is not None]
    subjects = call.subjects() if patterned else []
    used: list[str] = []
    for subject in subjects:
        found = next((f"{label} allow: {rule}" for label, p, rule in patterned if _matches_every_form(p, subject)), None)
        if found is None:
            return Verdict(None, None, f"no rule decides: no allow rule covers {subject!r}")
        if found not in used:
            used.append(found)
    if not used:
        return Verdict(None, None, "no rule decides this call")
    return Verdict("allow", "; ".join(used), f"allow rules cover every part of this {call.tool} call")


def _pairs_match(rule: Rule, args: Mapping[str, Any], *, every: bool) -> bool:
    return all(key in args and _value_matches(args[key], glob, every=every) for key, glob in rule.pairs)


def _value_matches(value: object, glob: str, *, every: bool) -> bool:
    """Strings as they are, other values as compact JSON; a list also element by element.

    Deny and ask ignore case (`x@EVIL.example` is `x@evil.example` to a mail server). For allow, `*`
    stops at commas, spaces and angle brackets, so one allowed address cannot carry another along."""
    as_text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"), sort_keys=True)
    if not isinstance(value, list):
        return _one_value(as_text, glob) if every else any(_folded(part, glob) for part in _parts(as_text))
    each = [_value_matches(item, glob, every=every) for item in value]
    if every:  # an allow rule: the JSON text of a list could match a glob that one element does not
        return bool(each) and all(each)
    return any(each) or fnmatch.fnmatchcase(as_text.casefold(), glob.casefold())


def _parts(text: str) -> list[str]:
    """A value, and each word of it: `a@x.example, b@y.example` is two addresses to a deny rule."""
    return [text, *(w for w in re.split(r"[,;\s<>]+", text) if w and w != text)]


def _folded(text: str, glob: str) -> bool:
    return fnmatch.fnmatchcase(text.casefold(), glob.casefold())


def _one_value(text: str, glob: str) -> bool:
    pattern = "".join(r"[^,;\s<>]*" if c == "*" else r"[^,;\s<>]" if c == "?" else re.escape(c) for c in glob)
    return re.fullmatch(pattern, text) is not None


def _matches_any_form(pattern: str, subject: str) -> bool:
    """For deny and ask: the subject as given, normalised, or (for a pattern without '/') its last component; any case."""
    forms = {subject, posixpath.normpath(subject)} if subject else {subject}
    if "/" not in pattern:
        forms |= {posixpath.basename(f) for f in forms}
    if " " not in pattern:  # not a command line: each word of the subject counts alone too
        forms |= {w for f in forms for w in _parts(f)}
    return any(_glob(pattern.casefold(), f.casefold()) for f in forms)


def _matches_every_form(pattern: str, subject: str) -> bool:
    """For allow: normalising must not make a subject allowed (`src/../.env`, `rm -rf x/../pytest y`)."""
    given = subject
    while given.startswith("./"):
        given = given[2:]
    return bool(subject) and _glob(pattern, given) and _glob(pattern, posixpath.normpath(subject))


def _glob(pattern: str, text: str) -> bool:
    return fnmatch.fnmatchcase(text, pattern) or (pattern.endswith(" *") and fnmatch.fnmatchcase(text, pattern[:-2]))
