"""What the Claude Code hook denies in a Bash command while a task is active: best effort, with verify as the backstop.

The command is split into its simple commands by the same unwrapper lane's command rules use (tools/argv.py):
through `env`, `sudo`, `sh -c '...'`, `xargs`, `find -exec` and the like. Then it is denied when it would

- commit (`git commit`), skip hooks (`--no-verify`) or move them (`core.hooksPath`);
- put back paths outside the task's FILES (`git checkout -- PATH`, `git restore PATH`, `git reset -- PATH`);
- write a path outside FILES through a redirection (`>`, `>>`, `&>`), `tee`, or an in-place edit (`sed -i`, `perl -i`);
- change lane's own state (`lane task start|stop|commit|new`, `lane lock sign|new`).

A command it cannot analyse (`$(...)`, a subshell) is denied while a task is active. Paths are judged from the
folder the hook runs in (a `cd` inside the command is not followed). A shell can write a file in more ways than
anyone lists (`python -c`, `cp`, a script), so this is not a wall:
`lane task verify` compares the repository with the task's base and fails on any path outside FILES, whatever wrote it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from lane.tools.argv import Unanalysable, commands

GIT_VALUED = {"-C", "-c", "--git-dir", "--work-tree", "--namespace", "--exec-path", "--super-prefix", "--config-env"}
LANE_STATE = {("task", "start"), ("task", "stop"), ("task", "commit"), ("task", "new"), ("lock", "sign"), ("lock", "new"),
              ("lock", "commit"), ("feature", "plan")}
REDIRECTS = (">", ">>", ">|", "&>", "&>>", ">&", "<>")
WHOLE_TREE = {"reset": ("--hard", "--merge", "--keep"), "checkout": ("-f", "--force", "."), "clean": ()}
HARMLESS_TARGETS = ("/dev/null", "/dev/stdout", "/dev/stderr")

Allowed = Callable[[str], str | None]  # a path as written -> why it may not be written (None: it may)


def bash_denial(command: str, allowed: Allowed) -> str | None:
    """Why the Bash `command` is denied, or None to leave it to Claude Code's own permissions."""
    try:
        found = commands(["sh", "-c", command])
    except Unanalysable as exc:  # while a task is active, what cannot be read is not run: the agent can write it plainly
        return f"lane cannot analyse this command while a task is active ({exc.reason}): write it without that"
    for words in found:
        reason = _git(words, allowed) or _lane(words) or _writes(words, allowed)
        if reason:
            return reason
    return None


def _git(words: list[str], allowed: Allowed) -> str | None:
    if not words or words[0] != "git":
        return None
    i, rest = 1, words[1:]
    if any("hookspath" in word.lower() for word in rest):
        return "git with core.hooksPath would run other hooks than lane's: a person changes git's hooks"
    for j, word in enumerate(rest):
        setting = rest[j + 1] if word in ("-c", "--config-env") and j + 1 < len(rest) else word.partition("=")[2] if word.startswith("--config-env=") else ""
        if setting.lower().startswith("alias."):
            return "git -c alias.* can make any command a commit: a person changes git's configuration"
    while i < len(words) and words[i].startswith("-"):
        i += 2 if words[i] in GIT_VALUED else 1
    sub, args = (words[i], words[i + 1:]) if i < len(words) else ("", [])
    if sub in ("commit-tree", "update-ref", "replace", "filter-branch", "filter-repo", "notes"):
        return f"git {sub} writes history: a person's step while a task is active"
    if sub in WHOLE_TREE and (any(a in WHOLE_TREE[sub] for a in args) or (sub == "clean" and not _paths(args))):
        return f"git {sub} {' '.join(args)} changes the whole working tree, not only the task's FILES: a person runs it"
    if "--no-verify" in args or (sub == "commit" and "-n" in args):
        return "--no-verify skips lane's pre-commit hook: the task's FILES are checked at every commit"
    if sub == "config" and any("hookspath" in a.lower() for a in args):
        return "core.hooksPath would run other hooks than lane's: a person changes git's hooks"
    if sub in ("commit", "merge", "rebase", "cherry-pick", "am", "revert", "stash", "push"):
        return f"git {sub} is a person's step while a task is active: `lane task verify`, then a person runs `lane task commit`"
    if sub in ("checkout", "restore", "reset", "rm", "mv", "clean"):
        if "--" in args:
            paths = args[args.index("--") + 1:]
        elif sub in ("checkout", "reset"):  # a revision, then paths: every word naming a file or folder that exists counts
            paths = [a for a in _paths(args) if os.path.exists(a)]
        else:
            paths = _paths(args)
        for path in paths:
            why = allowed(path)
            if why:
                return f"git {sub} of {path}: {why}"
    return None


def _paths(args: list[str]) -> list[str]:
    return [a for a in args if not a.startswith("-")]


def _lane(words: list[str]) -> str | None:
    """lane's state-changing commands, however they are started (`lane`, `python -m lane`, `uv run lane`, `pipx run lane`)."""
    if "lane" not in words:
        return None
    rest = [w for w in words[words.index("lane") + 1:] if not w.startswith("-")]
    if tuple(rest[:2]) in LANE_STATE:
        return f"lane {' '.join(rest[:2])} changes what the task is or records: a person runs it"
    return None


def _writes(words: list[str], allowed: Allowed) -> str | None:
    targets: list[str] = []
    for i, word in enumerate(words):
        if word.lstrip("0123456789") in REDIRECTS and i + 1 < len(words):
            targets.append(words[i + 1])
    program = words[0] if words else ""
    options = [w for w in words[1:] if w.startswith("-")]
    operands = [w for w in words[1:] if not w.startswith("-") and w.lstrip("0123456789") not in REDIRECTS]
    if program == "tee":
        targets += operands
    elif program in ("sed", "gsed") and any(o.startswith(("-i", "--in-place")) or (o[1:2] != "-" and "i" in o[1:]) for o in options):
        targets += _sed_files(words[1:])
    elif program == "perl" and any(o.startswith("-i") or ("i" in o[1:] and not o.startswith("--")) for o in options):
        targets += [w for w in operands if os.path.exists(w) or "/" in w or "." in w]
    for target in targets:
        if target in HARMLESS_TARGETS:
            continue
        why = allowed(target)
        if why:
            return f"writing {target}: {why}"
    return None


def _sed_files(args: list[str]) -> list[str]:
    """The files a sed command edits: its operands, less the script (the first operand, unless -e or -f gave it)."""
    files, scripted, i = [], False, 0
    while i < len(args):
        word = args[i]
        if word in ("-e", "--expression", "-f", "--file"):
            scripted, i = True, i + 2
            continue
        if word.startswith(("-e", "-f", "--expression=", "--file=")) and not word.startswith("--in"):
            scripted = True
        elif not word.startswith("-"):
            files.append(word)
        i += 1
    return files if scripted else files[1:]


def path_check(cwd: Path, repo: Path, in_scope: Callable[[str], bool], guarded: Callable[[str], bool], files: str, task: str) -> Allowed:
    """How a path a command names is judged: relative to the command's folder, inside the repository, in FILES."""
    def allowed(path: str) -> str | None:
        target = Path(path) if os.path.isabs(path) else cwd / path
        try:
            rel = Path(os.path.realpath(target)).relative_to(os.path.realpath(repo)).as_posix()
        except ValueError:
            return f"it is outside the repository; task {task} may change only its FILES"
        if guarded(rel):
            return f"{rel} defines or records the work of task {task}; a person changes it"
        if not in_scope(rel):
            return f"{rel} is not in the FILES of task {task} ({files})"
        return None

    return allowed
