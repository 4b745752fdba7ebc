"""The `feature` runbook: a feature's lock, its sign-off, then each task worked, verified, reviewed and committed.

The engine runs a fixed list of steps, so `plan_feature` writes the runbook for
one feature as `runbooks/feature-FEATURE.yaml`, with one block of steps per task
(in the order of the task files' names). It is an ordinary runbook: read it,
edit it, `lane validate` it, `lane run` it. Per task:

    taskN_start   check   lane task start F T      (hooks hold Claude Code and git to FILES)
    taskN_work    agent   lane's editing agent, `task: F/T` (writes held to FILES)
                  or tool an external CLI agent (claude -p, codex exec, aider --message)
    taskN_verify  check   lane task verify F T     (anything out of scope or failing)
    taskN_review  human   a person reads the summary, the verification, the refused writes, the diff
    taskN_commit  check   lane task commit F T --reverify   (what was verified; an edit made in
                          review is verified again first)

With lane's own coding agent, a failed verify, a review rejected with a reason or
an edit made in review that fails verification goes back to the agent (`on_fail:
back_to: taskN_work`, three attempts, then a person decides); with an external
CLI agent, each stops the run, and `lane retry RUN` goes on from there.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lane.coding.locks import lock_path
from lane.coding.repo import top_of_repo, write_atomically
from lane.coding.tasks import check_name, load_task
from lane.errors import UsageError


@dataclass(frozen=True)
class External:
    """An external coding CLI: the argv its toolset should run, and how the task's prompt is given."""

    argv: tuple[str, ...]
    files_flag: str | None = None  # aider takes the files to edit as `--file PATH` each

    def args(self, prompt: str, files: list[str]) -> list[str]:
        if self.files_flag is None:
            return [prompt]
        concrete = [f for f in files if not any(c in f for c in "*?[") and not f.endswith("/")]
        return [*(x for f in concrete for x in (self.files_flag, f)), "--message", prompt]


EXTERNAL = {
    "claude": External(("claude", "-p", "--permission-mode", "acceptEdits")),
    "codex": External(("codex", "exec", "--sandbox", "workspace-write")),
    "aider": External(("aider", "--yes-always", "--no-auto-commits"), files_flag="--file"),
}


@dataclass(frozen=True)
class Plan:
    path: Path
    text: str
    coder: str
    external: bool
    reviewer: str
    tasks: list[str]
    version: int
    why: str  # how the coder was chosen


def runbook_name(feature: str) -> str:
    return f"feature-{feature}"


def plan_feature(project: Path, feature: str, *, coder: str | None = None, reviewer: str | None = None,
                 force: bool = False) -> Plan:
    """Write runbooks/feature-FEATURE.yaml for the feature's tasks; UsageError saying what is missing."""
    from lane.coding.hooks import exclude_state
    from lane.spec.project import load_project

    check_name("FEATURE", feature)
    root = project.resolve()
    if not (root / "lane.yaml").is_file():
        raise UsageError(f"no lane.yaml in {root}: the feature runbook runs in a lane project at the repository's top "
                         "(`lane init --example coding` writes one)")
    top_of_repo(root)
    if not lock_path(root, feature).is_file():
        raise UsageError(f"feature {feature} has no lock: `lane lock new {feature}` writes features/{feature}/LOCK.md")
    tasks = sorted(p.name.removesuffix(".md") for p in (root / "features" / feature / "tasks").glob("*.md"))
    if not tasks:
        raise UsageError(f"feature {feature} has no tasks: `lane task new {feature} TASK` writes features/{feature}/tasks/TASK.md")
    files = {name: load_task(root, feature, name).files for name in tasks}  # a task that does not read stops here
    spec = load_project(root)
    who = _reviewer(spec.human_roles, reviewer)
    name, external, why = _coder(spec, coder)
    path = root / "runbooks" / f"{runbook_name(feature)}.yaml"
    version = 1
    if path.exists():
        if not force:
            raise UsageError(f"{path.relative_to(root)} exists: run it with `lane run {runbook_name(feature)}`, "
                             "or write it again from the tasks with --force (its version goes up by one)")
        version = _version(path) + 1
    text = render(feature, tasks, files, coder=name, external=external, reviewer=who, version=version)
    write_atomically(path, text)
    exclude_state(root)  # the run store is never part of a task's changes
    return Plan(path, text, name, external is not None, who, tasks, version, why)


def _reviewer(humans: list[str], chosen: str | None) -> str:
    if chosen is not None:
        if chosen not in humans:
            raise UsageError(f"--reviewer {chosen!r} is not a human role in lane.yaml (human roles: {', '.join(humans) or 'none'})")
        return chosen
    if len(humans) == 1:
        return humans[0]
    if not humans:
        raise UsageError("lane.yaml has no human role to sign the lock and review each task; add one under roles:, "
                         "such as `engineer: {kind: human}`")
    raise UsageError(f"lane.yaml has several human roles ({', '.join(humans)}): choose who reviews with --reviewer ROLE")


def _coder(spec: Any, chosen: str | None) -> tuple[str, External | None, str]:
    """(name, external CLI or None, why): the coding agent, an external CLI when one is configured and installed."""
    toolsets = spec.config.toolsets
    if chosen is None:
        for name in EXTERNAL:
            ts = toolsets.get(name)
            if ts is not None and ts.command and shutil.which(ts.command[0]):
                return name, EXTERNAL[name], f"toolset {name} in lane.yaml, and {ts.command[0]} is installed"
        if "coder" in spec.agents:
            return "coder", None, "lane's editing agent in agents/coder.md; no external coding CLI is both configured in lane.yaml and installed"
        raise UsageError("no coding agent: write agents/coder.md (lane's editing agent, with file tools) or configure an "
                         "external CLI as a toolset in lane.yaml, such as `claude: {command: [claude, -p, --permission-mode, "
                         "acceptEdits], extra_args: true, effect: write, timeout: 1800}`; or name one with --coder")
    if chosen in spec.agents:
        writes = [t for t in spec.tools if t.endswith(".write") and spec.allows(spec.agents[chosen].file.tools, t)]
        if not writes:
            raise UsageError(f"agent {chosen} has no file write tool: allow one in agents/{chosen}.md, such as "
                             "`tools: [repo.read, repo.write, repo.list, repo.search]` with `repo: {builtin: files, root: .}` in lane.yaml")
        return chosen, None, f"--coder {chosen}: lane's editing agent in agents/{chosen}.md"
    if chosen in EXTERNAL:
        ts = toolsets.get(chosen)
        example = f"{chosen}: {{command: [{', '.join(EXTERNAL[chosen].argv)}], extra_args: true, effect: write, timeout: 1800}}"
        if ts is None or not ts.command or not ts.extra_args:
            raise UsageError(f"--coder {chosen}: configure it as a command toolset in lane.yaml with extra_args (the task's "
                             f"prompt is passed as arguments): {example}")
        if not shutil.which(ts.command[0]):
            raise UsageError(f"--coder {chosen}: {ts.command[0]} is not installed (not found on PATH)")
        return chosen, EXTERNAL[chosen], f"--coder {chosen}: toolset {chosen} in lane.yaml"
    known = sorted(spec.agents) + list(EXTERNAL)
    raise UsageError(f"--coder {chosen!r} is neither an agent in agents/ nor an external CLI ({', '.join(known)})")


def _version(path: Path) -> int:
    from lane.spec.source import read_yaml

    data = read_yaml(path, path.name).data
    try:
        return max(1, int(data.get("version", 1))) if isinstance(data, dict) else 1
    except (ValueError, TypeError):
        return 1


def prompt(feature: str, task: str, *, given: bool = False) -> str:
    where = "your input `task` holds its text" if given else "read it first"
    return (f"Do task {task} of feature {feature}, written in features/{feature}/tasks/{task}.md ({where}). "
            "Change only the paths its FILES block lists; follow its TYPES, SKELETON and PROHIBITED blocks; make its "
            "VALIDATE commands pass. Do not edit the task file, and do not commit: a person reviews the work first.")


def render(feature: str, tasks: list[str], files: dict[str, list[str]], *, coder: str, external: External | None,
           reviewer: str, version: int) -> str:
    q = json.dumps  # a JSON string is a YAML scalar, quoted safely
    count = f"{len(tasks)} task{'s' if len(tasks) != 1 else ''}"
    out = [
        f"# Written by `lane feature plan {feature}` from features/{feature}/: its lock and {count}.",
        "# An ordinary runbook: edit it freely, or write it again from the tasks with --force.",
        f"runbook: {runbook_name(feature)}",
        f"version: {version}",
        "track: coding",
        f"description: {q(f'Feature {feature}: the lock checked and signed, then {count}, each worked, verified, reviewed and committed.')}",
        "steps:",
        "  - id: lock",
        f"    description: {q('The lock has no blank, TBD or bracketed gate.')}",
        f"    check: [lane, lock, check, {q(feature)}]",
        "  - id: sign_off",
        f"    human: {reviewer}",
        f"    prompt: {q(f'Read features/{feature}/LOCK.md. Approve to sign it and commit it; reject to stop.')}",
        "    approve: ${{ steps.lock.output.stdout }}",
        "  - id: signed",
        f"    check: [lane, lock, sign, {q(feature)}, --by, {reviewer}, --commit]",
    ]
    for i, task in enumerate(tasks, 1):
        name = f"{feature}/{task}"
        out += [
            f"  # task {i} of {len(tasks)}: {name}",
            f"  - id: task{i}_start",
            f"    description: {q(f'{name} becomes the active task: Claude Code and git hooks hold edits and commits to its FILES.')}",
            f"    check: [lane, task, start, {q(feature)}, {q(task)}]",
            f"  - id: task{i}_work",
        ]
        if external is None:
            out += [
                f"    agent: {coder}",
                f"    task: {name}",
                f"    goal: {q(prompt(feature, task, given=True) + ' Answer with a short summary of what you changed.')}",
                "    output: {type: object, properties: {summary: {type: string}}, required: [summary]}",
            ]
            summary = f"${{{{ steps.task{i}_work.output.summary }}}}"
        else:
            out += [
                f"    tool: {coder}",
                "    autonomy: guarded",
                f"    args: {{args: {q(external.args(prompt(feature, task), files[task]))}}}",
            ]
            summary = f"${{{{ steps.task{i}_work.output.stdout }}}}"
        # lane's own agent's writes refused outside FILES are in the journal; Claude Code's, in the verification.
        refused = f", refused: \"${{{{ steps.task{i}_work.refused }}}}\"" if external is None else ""
        # With lane's own coding agent, a failed verify or a change the reviewer asks for goes back to it.
        loop = [f"    on_fail: {{back_to: task{i}_work, attempts: 3}}"] if external is None else []
        then = "reject with what to change: it goes back to the coding agent" if external is None else "reject to stop"
        out += [
            f"  - id: task{i}_verify",
            f"    description: {q('Every changed path is in FILES, PROHIBITED holds and VALIDATE passes; the evidence is written.')}",
            f"    check: [lane, task, verify, {q(feature)}, {q(task)}]",
            *loop,
            f"  - id: task{i}_review",
            f"    human: {reviewer}",
            f"    prompt: {q(f'Review {name}: the diff (git diff, git status) and the verification below. Approve to commit it; {then}.')}",
            f"    approve: {{summary: {q(summary)}, verification: \"${{{{ steps.task{i}_verify.output.stdout }}}}\"{refused}}}",
            *loop,
            f"  - id: task{i}_commit",
            f"    description: {q('Commit what verify passed; a file changed during review is verified again first.')}",
            f"    check: [lane, task, commit, {q(feature)}, {q(task)}, --reverify]",
            *loop,
        ]
    return "\n".join(out) + "\n"
