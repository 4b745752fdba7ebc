"""Verify a task against git: scope, prohibited changes, VALIDATE commands, with the evidence written down.

The changes are what git reports between a base revision (the commit the task
started from, else HEAD) and the working tree: `git diff --name-status -M REV` plus untracked files. What is
checked is what a commit would hold, the base's tree plus exactly those paths: the forbid and dependency
rules read that tree, and VALIDATE runs in a clean checkout of it (`checkout.py`). The evidence lands
atomically in `features/FEATURE/tasks/TASK.evidence.json`.
"""

from __future__ import annotations

import codecs
import contextlib
import hashlib
import json
import os
import re
import signal
import subprocess
import tempfile
import time
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from lane.coding.checkout import clean_checkout, left_in
from lane.coding.repo import git, repo_root, tree_with, write_atomically
from lane.coding.tasks import Command, Task, evidence_path, load_task
from lane.errors import UsageError

DEFAULT_TIMEOUT = 600.0
TAIL_BYTES = 65536  # read from the end of a command's output: enough for the tail it keeps
TAIL_LINES = 40
TAIL_CHARS = 400  # per line: one minified line must not fill the evidence
EXCLUDED = "untracked, hidden by .git/info/exclude"
STATUS = {"M": "modified", "A": "added", "D": "deleted", "R": "renamed", "C": "copied", "T": "type changed", "U": "unmerged"}
HUNK = re.compile(r"@@ -\S+ \+(\d+)(?:,\d+)? @@")
PACKAGE_SECTIONS = ("dependencies", "devDependencies", "peerDependencies", "optionalDependencies", "overrides", "resolutions")
REQUIREMENT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
Requirements = dict[tuple[str, str], set[str]]  # (where, normalized name) -> requirement texts


@dataclass(frozen=True)
class Change:
    status: str  # modified, added, deleted, renamed, copied, type changed, untracked
    path: str
    old_path: str | None = None


@dataclass(frozen=True)
class Violation:
    path: str
    reason: str


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    violations: list[Violation] = field(default_factory=list)


@dataclass(frozen=True)
class CommandResult:
    command: str
    line: int
    exit_code: int | None  # None when it timed out
    seconds: float
    timed_out: bool
    output_tail: str

    @property
    def passed(self) -> bool:
        return self.exit_code == 0


@dataclass(frozen=True)
class Verification:
    task: str
    task_file: str
    evidence_file: str
    base: str
    base_sha: str
    timestamp: str
    changes: list[Change]
    checks: list[Check]
    commands: list[CommandResult]
    fingerprint: str = ""  # of the changed paths' contents: `lane task commit` takes exactly what was verified
    contents: dict[str, str] = field(default_factory=dict)  # what each change left, by path: a refused commit names what changed
    tree: str = ""  # the tree a commit would hold: the base's, plus the changed paths
    validated_in: str = ""  # where VALIDATE ran, in words
    refused: list[dict[str, str]] = field(default_factory=list)  # what the Claude Code hook denied during the task

    @property
    def changed(self) -> bool:
        """Whether the task changed anything (its own task and evidence files aside): no change is nothing to pass."""
        return any(c.path not in (self.task_file, self.evidence_file) for c in self.changes)

    @property
    def passed(self) -> bool:
        return self.changed and all(check.passed for check in self.checks)

    def to_json(self) -> dict[str, object]:
        data = asdict(self)
        data["passed"] = self.passed
        data["changed"] = self.changed
        data["validate"] = data.pop("commands")
        return data


def verify(project: Path, feature: str, name: str, base: str | None = None, timeout: float = DEFAULT_TIMEOUT,
           on_command: Callable[[Command], None] | None = None) -> Verification:
    """Check the working tree against the task, run its VALIDATE commands, write the evidence and return it.

    `base` defaults to the commit the task started from (`lane task start`), else HEAD: every commit made since
    counts as the task's change, so work committed past the hooks (`git commit --no-verify`) is verified too."""
    from lane.coding.hooks import refusals, task_base

    root = repo_root(project)
    task = load_task(root, feature, name)
    base = base or task_base(root, feature, name)
    sha = resolve_base(root, base)
    changes = current_changes(root, sha)
    before = contents(root, changes)
    paths = changed_paths(changes)
    tree = tree_with(root, sha, paths, forced=forced_paths(changes))
    if contents(root, changes) != before:
        raise UsageError("the working tree changed while verify read it; run `lane task verify` again once the work is still")
    with clean_checkout(root, sha, tree) as checkout:
        commands = run_validate(checkout, task, timeout, on_command, env={"LANE_REPO": str(root)})
        left = [p for p in left_in(checkout, tree) if p != task.own_files[1]]
    files = check_files(task, changes, root)
    files = _exclude_unchanged(root, feature, name, files)
    checks = [check_task_unchanged(root, sha, tree, task), files, check_dependencies(root, sha, tree, changes),
              check_forbid(root, sha, tree, task), check_validate(task, commands, left)]
    evidence = evidence_path(root, feature, name)
    result = Verification(
        task=f"{feature}/{name}", task_file=task.own_files[0], evidence_file=task.own_files[1], base=base, base_sha=sha,
        timestamp=datetime.now(UTC).isoformat(timespec="seconds"), changes=changes, checks=checks, commands=commands,
        fingerprint=fingerprint(changes, before, skip=task.own_files[1]),
        contents={path: value for path, value in before.items() if path != task.own_files[1]},
        refused=refusals(root, feature, name), tree=tree, validated_in=f"a clean checkout of {sha[:12]} plus the {len(paths)} changed path{'s' if len(paths) != 1 else ''}",
    )
    write_atomically(evidence, json.dumps(result.to_json(), indent=2, ensure_ascii=False) + "\n")
    return result


def changed_paths(changes: list[Change]) -> list[str]:
    """Every path a change touches, both sides of a rename: what a commit of the task takes."""
    return sorted({p for c in changes for p in (c.path, c.old_path) if p})


def forced_paths(changes: list[Change]) -> tuple[str, ...]:
    """Changed paths git ignores and the change includes all the same: what only .git/info/exclude hides."""
    return tuple(c.path for c in changes if c.status == EXCLUDED)


def contents(root: Path, changes: list[Change]) -> dict[str, str]:
    """What each change leaves at its path, by path."""
    return {c.path: _content(root / c.path) for c in changes}


def fingerprint(changes: list[Change], left: dict[str, str], *, skip: str) -> str:
    """A sha256 over each change and what it `left` (the evidence file `skip` aside, as verify rewrites it)."""
    digest = hashlib.sha256()
    for change in sorted(changes, key=lambda c: (c.path, c.old_path or "", c.status)):
        if change.path != skip:
            digest.update(f"{change.status}\0{change.path}\0{change.old_path or ''}\0{left[change.path]}\n".encode())
    return digest.hexdigest()


def _content(path: Path) -> str:
    """What a change leaves at `path`: a link's target, a file's mode and bytes, a nested repository's commit."""
    if path.is_symlink():
        return "symlink:" + os.readlink(path)
    if path.is_file():
        executable = "x" if path.stat().st_mode & 0o111 else "-"
        return f"file{executable}:" + hashlib.sha256(path.read_bytes()).hexdigest()
    if path.is_dir():
        try:
            return "repository:" + git(path, "rev-parse", "--verify", "HEAD").strip()  # a submodule, or a nested clone
        except UsageError:
            return "folder"
    return "absent"


def current_changes(root: Path, sha: str) -> list[Change]:
    """What git reports between `sha` and the working tree, lane's own hook state aside."""
    return [c for c in list_changes(root, sha) if not lane_state(root, sha, c.path)]


def resolve_base(root: Path, rev: str) -> str:
    try:
        return git(root, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}").strip()
    except UsageError:
        raise UsageError(f"--base {rev!r} is not a commit in {root}; give a branch, tag or sha (a repository "
                         "with no commit yet needs a first commit)") from None


def list_changes(root: Path, sha: str) -> list[Change]:
    """Tracked changes between `sha` and the working tree, and between `sha` and the index (what a commit would
    take, even when the working copy was put back), submodules included; then untracked files."""
    changes: list[Change] = []
    for staged in ((), ("--cached",)):
        fields = git(root, "diff", *staged, "--name-status", "-M", "-z", "--no-ext-diff", "--ignore-submodules=none",
                      sha, "--").split("\0")
        i = 0
        while i < len(fields) and fields[i]:
            code = fields[i][0]
            if code in "RC":
                change = Change(STATUS[code], fields[i + 2], fields[i + 1])
                i += 3
            else:
                change = Change(STATUS.get(code, code), fields[i + 1])
                i += 2
            if change not in changes:
                changes.append(change)
    untracked = git(root, "ls-files", "--others", "--exclude-standard", "-z").split("\0")
    hidden = [line[2:] for line in git(root, "ls-files", "-v", "-z").split("\0") if line[:1] in ("S", "h") or line[:1].islower()]
    return (changes + [Change("untracked", path) for path in untracked if path]
            + [Change("hidden from git (skip-worktree or assume-unchanged)", path) for path in hidden if path]
            + [Change(EXCLUDED, path) for path in _excluded(root)])


def _excluded(root: Path) -> list[str]:
    """Untracked files only the repository's own exclude file hides (lane's own state aside): .gitignore is shared
    and reviewed, .git/info/exclude is not, so what it hides is listed and checked like any untracked file."""
    from lane.coding.hooks import ACTIVE, SETTINGS

    exclude = root / git(root, "rev-parse", "--git-path", "info/exclude").strip()
    if not exclude.is_file():
        return []
    ignored = set(git(root, "ls-files", "--others", "--ignored", "--directory", f"--exclude-from={exclude}", "-z").split("\0"))
    shared = set(git(root, "ls-files", "--others", "--ignored", "--directory", "--exclude-per-directory=.gitignore", "-z").split("\0"))
    own = (ACTIVE.as_posix(), SETTINGS.as_posix())
    return sorted(p for p in ignored - shared if p and not p.startswith((".lane/", ".claude/")) and p not in own)


def lane_state(root: Path, sha: str, path: str) -> bool:
    """Whether `path` is what `lane task start` itself wrote: the active-task mark, or settings that differ from
    `sha` only by lane's own hook entry. Neither is the agent's work."""
    from lane.coding.hooks import ACTIVE, SETTINGS, without_lane_hooks

    if path == ACTIVE.as_posix():
        return True
    if path != SETTINGS.as_posix():
        return False
    try:
        now = json.loads((root / path).read_text(encoding="utf-8"))
        before = json.loads(git(root, "show", f"{sha}:{path}")) if _tracked(root, sha, path) else {}
    except (OSError, ValueError):
        return False
    return isinstance(now, dict) and isinstance(before, dict) and without_lane_hooks(now) == without_lane_hooks(before)


def check_task_unchanged(root: Path, sha: str, tree: str, task: Task) -> Check:
    """The task file is the person's: changed since the base, it could widen its own FILES or VALIDATE."""
    path = task.own_files[0]
    if not _tracked(root, sha, path):
        return Check("task", True, [])
    changed = git(root, "diff", "--name-only", sha, tree, "--", path).strip()
    found = [Violation(path, f"the task itself changed since {sha[:12]}; a person edits and commits the task before the work")] if changed else []
    return Check("task", not found, found)


def _tracked(root: Path, sha: str, path: str) -> bool:
    try:
        git(root, "cat-file", "-e", f"{sha}:{path}")
    except UsageError:
        return False
    return True


def check_files(task: Task, changes: list[Change], root: Path | None = None) -> Check:
    """Every path git reports (both sides of a rename) is in FILES; no path changed between file and link, and no
    link points out of the repository or at a file git ignores."""
    found = []
    for change in changes:
        if change.status == "type changed":
            found.append(Violation(change.path, "changed type (a file became a link, or a link a file): a person makes that change"))
        link = _link_problem(root, change.path) if root is not None else None
        if link:
            found.append(Violation(change.path, link))
        if change.old_path is not None and not task.in_scope(change.old_path):
            found.append(Violation(change.old_path, f"{change.status} to {change.path}, and {change.old_path} is not in FILES"))
        if not task.in_scope(change.path):
            where = f" from {change.old_path}" if change.old_path is not None else ""
            found.append(Violation(change.path, f"{change.status}{where}, and it is not in FILES"))
    return Check("files", not found, found)


def _exclude_unchanged(root: Path, feature: str, name: str, files: Check) -> Check:
    """The files check, failed too when .git/info/exclude changed since `lane task start` (what it hides, verify would
    not see, nor git commit)."""
    from lane.coding.hooks import ACTIVE, active, exclude_digest

    if not (root / ACTIVE).exists():
        return files
    current = active(root)
    if (current.feature, current.task) != (feature, name) or current.exclude is None or exclude_digest(root) == current.exclude:
        return files
    found = [*files.violations, Violation(".git/info/exclude", "changed since the task started: a person changes what git hides")]
    return Check(files.name, False, found)


def _link_problem(root: Path, path: str) -> str | None:
    """Why a symbolic link at `path` cannot be part of the task: it leads out of the repository, or to an ignored file."""
    full = root / path
    if not full.is_symlink():
        return None
    target = Path(os.path.realpath(full))
    try:
        relative = target.relative_to(os.path.realpath(root)).as_posix()
    except ValueError:
        return f"is a link to {os.readlink(full)}, outside the repository: what it reads is not what is committed"
    ignored = subprocess.run(["git", "-C", str(root), "check-ignore", "-q", "--", relative], capture_output=True).returncode == 0
    return f"is a link to {relative}, which git ignores: what it reads is not what is committed" if ignored else None


def check_dependencies(root: Path, sha: str, tree: str, changes: list[Change]) -> Check:
    """No new or changed requirement in a changed pyproject.toml, requirements*.txt, package.json, uv.lock, tox.ini
    or Python script's PEP 723 block, as `tree` (what would be committed) has it."""
    found = []
    for change in changes:
        kind = _dependency_kind(change.path)
        if kind is None or change.status == "deleted":
            continue
        try:
            after = _requirements(kind, git(root, "cat-file", "blob", f"{tree}:{change.path}"))
        except (UsageError, ValueError) as exc:
            found.append(Violation(change.path, f"its dependencies cannot be read, so they cannot be checked: {exc}"))
            continue
        before: Requirements = {}
        if change.status not in ("added", "untracked"):
            try:
                before = _requirements(kind, git(root, "show", f"{sha}:{change.old_path or change.path}"))
            except (UsageError, ValueError):
                pass  # unreadable at the base: every requirement counts as new
        for key, texts in after.items():
            for text in sorted(texts - before.get(key, set())):
                was = f" (was {', '.join(sorted(before[key]))})" if key in before else ""
                found.append(Violation(change.path, f"{'changed' if was else 'new'} dependency in {key[0]}: {text}{was}"))
    return Check("dependencies", not found, found)


def _dependency_kind(path: str) -> str | None:
    folder, _, name = path.rpartition("/")
    if name in ("pyproject.toml", "package.json", "uv.lock", "tox.ini"):
        return name
    if name.endswith(".py"):
        return "script"  # PEP 723 inline metadata, when it has a `# /// script` block
    listed = name.endswith((".txt", ".in")) and (
        name.startswith(("requirements", "constraints")) or name.endswith(("-requirements.txt", "_requirements.txt"))
        or folder.rsplit("/", 1)[-1] == "requirements")  # requirements/dev.txt
    return "requirements" if listed else None


def _requirements(kind: str, text: str) -> Requirements:
    """The requirements a dependency file declares; ValueError when it cannot be read."""
    try:
        entries = _entries(kind, text)
    except (AttributeError, TypeError) as exc:  # a table or list where the format has none
        raise ValueError(f"unexpected structure ({exc})") from None
    found: Requirements = {}
    for where, name, entry in entries:
        if isinstance(entry, str) and entry.strip():
            spec = " ".join(entry.split())
            named = REQUIREMENT_NAME.match(spec)
            key = name or (re.sub(r"[-_.]+", "-", named[0]).lower() if named else spec)
            found.setdefault((where, key), set()).add(spec)
    return found


def _entries(kind: str, text: str) -> list[tuple[str, str | None, object]]:
    """(where, package name if the format gives it, requirement) for each declared requirement."""
    if kind == "package.json":
        data = json.loads(text)
        found: list[tuple[str, str | None, object]] = [
            (section, name, f"{name}@{_compact(version)}") for section in PACKAGE_SECTIONS
            for name, version in (data.get(section) or {}).items()]
        for section in ("bundleDependencies", "bundledDependencies"):
            found += [(section, str(name), str(name)) for name in data.get(section) or () if isinstance(data.get(section), list)]
        return found
    if kind == "pyproject.toml":
        data = tomllib.loads(text)
        project, tool = data.get("project", {}), data.get("tool", {})
        tables = [("[project] dependencies", project.get("dependencies", []))]
        tables += [(f"[project.optional-dependencies] {k}", v) for k, v in project.get("optional-dependencies", {}).items()]
        tables += [(f"[dependency-groups] {k}", v) for k, v in data.get("dependency-groups", {}).items()]
        tables += [("[build-system] requires", data.get("build-system", {}).get("requires", []))]
        tables += [("[tool.uv] dev-dependencies", tool.get("uv", {}).get("dev-dependencies", []))]
        found = [(where, None, _compact(entry)) for where, reqs in tables for entry in reqs]
        # Tables of name -> spec: Poetry's dependencies and groups; uv's sources, which repoint a package.
        poetry = tool.get("poetry", {})
        named = [("[tool.poetry.dependencies]", poetry.get("dependencies", {})),
                 ("[tool.poetry.dev-dependencies]", poetry.get("dev-dependencies", {})),
                 ("[tool.uv.sources]", tool.get("uv", {}).get("sources", {}))]
        named += [(f"[tool.poetry.group.{g}.dependencies]", t.get("dependencies", {})) for g, t in poetry.get("group", {}).items()]
        found += [(where, name, f"{name} {_compact(spec)}") for where, table in named for name, spec in table.items()]
        return found
    if kind == "uv.lock":  # each locked package, with its version and where it comes from
        packages = tomllib.loads(text).get("package", [])
        return [("uv.lock", str(pkg.get("name")), f"{pkg.get('name')} {pkg.get('version', '')} {_compact(pkg.get('source', {}))}".strip())
                for pkg in packages if isinstance(pkg, dict) and pkg.get("name")]
    if kind == "tox.ini":
        return _tox_deps(text)
    if kind == "script":
        return _inline_script(text)
    joined = re.sub(r"\\\r?\n", " ", text)  # continued lines
    return [("requirements", None, re.sub(r"(^|\s)#.*", "", line)) for line in joined.splitlines()]


INLINE = re.compile(r"(?m)^# /// (?P<type>[a-zA-Z0-9-]+)$\s(?P<content>(^#(| .*)$\s)+)^# ///$")  # PEP 723's own pattern


def _inline_script(text: str) -> list[tuple[str, str | None, object]]:
    """A Python script's PEP 723 `# /// script` block: its dependencies and requires-python."""
    if "# /// script" not in text:
        return []
    for match in INLINE.finditer(text):
        if match.group("type") != "script":
            continue
        body = "".join(line[2:] if line.startswith("# ") else line[1:] for line in match.group("content").splitlines(keepends=True))
        data = tomllib.loads(body)
        found: list[tuple[str, str | None, object]] = [("# /// script dependencies", None, entry) for entry in data.get("dependencies", [])]
        if "requires-python" in data:
            found.append(("# /// script requires-python", "python", f"python {data['requires-python']}"))
        return found
    return []


def _tox_deps(text: str) -> list[tuple[str, str | None, object]]:
    """tox.ini's `deps` of every test environment (`[testenv]`, `[testenv:NAME]`)."""
    import configparser

    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        parser.read_string(text)
    except configparser.Error as exc:
        raise ValueError(str(exc).splitlines()[0]) from None
    found: list[tuple[str, str | None, object]] = []
    for section in parser.sections():
        if section == "testenv" or section.startswith("testenv:"):
            for line in parser.get(section, "deps", fallback="").splitlines():
                entry = re.sub(r"(^|\s)#.*", "", line).strip()
                if entry:
                    found.append((f"[{section}] deps", None, entry))
    return found


def _compact(value: object) -> str:
    """A requirement as text: strings as they are, tables and lists as compact JSON."""
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, separators=(",", ":"))


def check_forbid(root: Path, sha: str, tree: str, task: Task) -> Check:
    """No line `tree` adds over `sha` (what would be committed) matches a `forbid:` rule; the task's own files aside."""
    found = []
    if task.forbid:
        for path, number, text in added_lines(root, sha, tree):
            if path in task.own_files:
                continue
            for rule in task.forbid:
                if rule.pattern.search(text):
                    found.append(Violation(f"{path}:{number}", f"added line matches forbid `{rule.pattern.pattern}` "
                                                               f"(task line {rule.line}): {text.strip()[:200]}"))
    return Check("forbid", not found, found)


def added_lines(root: Path, sha: str, tree: str) -> Iterator[tuple[str, int, str]]:
    """(path, line number, text) of every line `tree` adds over `sha`. Every file is read as text: a
    .gitattributes that marks a file binary or gives it a diff driver cannot hide its lines."""
    diff = git(root, "diff", "-U0", "-M", "--text", "--no-color", "--no-ext-diff", "--no-textconv",
                "--src-prefix=a/", "--dst-prefix=b/", sha, tree, "--")
    path, number, header = "", 0, True
    for line in diff.splitlines():
        if line.startswith("diff --git "):
            header = True
        elif header and line.startswith("+++ "):
            path = _unquote(line[4:])[2:] if line[4:] != "/dev/null" else ""
        elif line.startswith("@@") and (hunk := HUNK.match(line)):
            header, number = False, int(hunk[1])
        elif not header and line.startswith("+"):
            yield path, number, line[1:]
            number += 1


def check_validate(task: Task, commands: list[CommandResult], left: list[str] | None = None) -> Check:
    found = [Violation(f"{task.own_files[0]}:{c.line}", f"`{c.command}` " + (f"timed out after {c.seconds:.0f} s"
             if c.timed_out else f"exited {c.exit_code}")) for c in commands if not c.passed]
    found += [Violation(path, "VALIDATE left this file changed, new or deleted, and git does not ignore it: what ran is "
                              "not what would be committed (add it to .gitignore, or make the command clean up)") for path in left or []]
    if not task.validate:
        found.append(Violation(task.own_files[0], "VALIDATE has no command: add a ```sh block with commands that must exit 0"))
    return Check("validate", not found, found)


def run_validate(root: Path, task: Task, timeout: float = DEFAULT_TIMEOUT,
                 on_command: Callable[[Command], None] | None = None, env: dict[str, str] | None = None) -> list[CommandResult]:
    """Run every VALIDATE command in `root`, each to its end, whatever the others did."""
    results = []
    for command in task.validate:
        if on_command:
            on_command(command)
        results.append(run_command(root, command, command.timeout or timeout, env))
    return results


def run_command(root: Path, command: Command, timeout: float, env: dict[str, str] | None = None) -> CommandResult:
    started = time.monotonic()
    # Output goes to a file, not a pipe: a command that prints gigabytes costs disk, not memory, and a child
    # that escapes the kill (setsid) cannot hold a pipe open past the timeout. Its own session lets the kill
    # reach the rest of its children.
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(["sh", "-c", command.run], cwd=root, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True, env={**os.environ, **(env or {})})
        try:
            code: int | None = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            code = None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # what it left running in its group stops with it
        proc.wait()
        out.seek(max(0, out.seek(0, os.SEEK_END) - TAIL_BYTES))
        output = out.read()
    seconds = round(time.monotonic() - started, 3)
    return CommandResult(command.run, command.line, code, seconds, code is None, _tail(output))


def _tail(output: bytes) -> str:
    lines = output.decode("utf-8", errors="replace").splitlines()[-TAIL_LINES:]
    return "\n".join(line if len(line) <= TAIL_CHARS else line[:TAIL_CHARS] + "…" for line in lines)


def _unquote(path: str) -> str:
    """A path as git prints it in a diff header: C-quoted when it holds unusual characters."""
    if len(path) > 1 and path.startswith('"') and path.endswith('"'):
        return codecs.escape_decode(path[1:-1].encode())[0].decode("utf-8", errors="replace")
    return path
