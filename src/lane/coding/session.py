"""Session memory: where a repository stands when work starts, and the log entry that ends a session.

`gather(root)` reads the git state, the last entries of `log.md` at the repository's top, its latest
RESUME HERE block, and the roadmap and known-issues files. `end(root, note, resume)` appends an entry.

log.md holds one `## ` entry per session, newest last:

    # Log

    ## 2025-01-31 17:05 UTC — feature-x

    What this session did.

    - HEAD: 1a2b3c4
    - Uncommitted files: 2

    ### RESUME HERE

    1. The first thing to do next.
    2. The second.

A RESUME HERE block is any heading whose text says RESUME HERE, up to the next heading of the same or a
higher level. Only the newest one counts; earlier ones stay in the log as history.
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lane.coding.repo import run_git
from lane.errors import UsageError

LOG_NAME = "log.md"
ROADMAP_FILES = ("ROADMAP.md", "roadmap.md", "docs/roadmap.md")
KNOWN_ISSUES_FILES = ("KNOWN_ISSUES.md", "known-issues.md", "docs/known-issues.md")
EXCERPT_LINES = 40
PATHS_SHOWN = 20
GIT_TIMEOUT = 30.0
_HEADING = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?[ \t#]*$")
_FENCE = re.compile(r"^ {0,3}(```|~~~)")
_RESUME = re.compile(r"\bresume here\b", re.IGNORECASE)
_CONFLICTS = frozenset({"DD", "AU", "UD", "UA", "DU", "AA", "UU"})


@dataclass(frozen=True)
class Change:
    status: str  # the two letters of `git status --porcelain=v1`, e.g. " M", "A ", "??"
    path: str


@dataclass(frozen=True)
class Commit:
    sha: str
    subject: str
    age: str  # git's relative date, e.g. "3 hours ago"
    committed_at: str  # ISO 8601


@dataclass(frozen=True)
class GitState:
    branch: str | None  # None on a detached HEAD
    head: str | None  # short sha; None before the first commit
    changes: int  # uncommitted paths, untracked ones included
    staged: int
    unstaged: int
    untracked: int
    conflicted: int
    paths: tuple[Change, ...]  # the first PATHS_SHOWN of them
    stashes: tuple[str, ...]
    base: str | None  # the default branch "unmerged" is measured against
    base_source: str  # how base was chosen, or why there is none
    unmerged: tuple[str, ...]  # local branches not merged into base
    last_commit: Commit | None


@dataclass(frozen=True)
class LogEntry:
    heading: str
    body: str


@dataclass(frozen=True)
class ResumeBlock:
    text: str
    line: int  # 1-based line of its heading in log.md
    entry: str | None  # the heading of the entry that holds it
    earlier: int  # older RESUME HERE blocks, kept in the log as history only


@dataclass(frozen=True)
class Excerpt:
    path: str  # relative to the repository's top
    text: str
    shown_lines: int
    total_lines: int


@dataclass(frozen=True)
class SessionState:
    root: Path  # the repository's top, or the folder itself outside git
    git: GitState | None
    git_note: str | None  # why there is no git state
    log: str | None  # LOG_NAME when it exists
    total_entries: int
    entries: tuple[LogEntry, ...]  # the last ones, oldest first
    resume: ResumeBlock | None
    roadmap: Excerpt | None
    known_issues: Excerpt | None
    active_task: dict[str, Any] | None = None  # `lane task start`'s mark: {feature, task, base}

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "root": str(self.root)}


@dataclass(frozen=True)
class LoggedEntry:
    path: Path
    heading: str
    text: str  # the entry as appended
    steps: tuple[str, ...]  # its RESUME HERE steps, if any
    created: bool  # log.md did not exist before


def gather(root: Path, *, entries: int = 3) -> SessionState:
    """Where the repository holding `root` stands. Works outside git, with `git_note` saying so."""
    folder = _folder(root)
    top, note = _toplevel(folder)
    base = top or folder
    text = _read(base / LOG_NAME)
    found = parse_entries(text or "")
    return SessionState(
        root=base, git=_git_state(top) if top else None, git_note=note,
        log=LOG_NAME if text is not None else None, total_entries=len(found),
        entries=tuple(found[-entries:]) if entries > 0 else (), resume=latest_resume(text or ""),
        roadmap=_excerpt(base, ROADMAP_FILES), known_issues=_excerpt(base, KNOWN_ISSUES_FILES), active_task=_active(base),
    )


def _active(top: Path) -> dict[str, Any] | None:
    """The active task, if `lane task start` marked one (an unreadable mark says so)."""
    from lane.coding.hooks import ACTIVE, active
    from lane.errors import UsageError

    if not (top / ACTIVE).exists():
        return None
    try:
        found = active(top)
    except UsageError as exc:
        return {"error": str(exc)}
    return {"feature": found.feature, "task": found.task, "base": found.base}


def end(root: Path, note: str, resume: Sequence[str] = (), *, clock: Callable[[], datetime] | None = None) -> LoggedEntry:
    """Append a dated entry to log.md (created with a `# Log` title if missing), atomically."""
    note = note.strip()
    if not note:
        raise UsageError("the note is empty: say what this session did, e.g. --note 'Parser handles tabs'")
    steps = [" ".join(step.split()) for step in resume]
    if not all(steps):
        raise UsageError("a --resume step is empty: give each step as text, e.g. --resume 'Run the tests'")
    folder = _folder(root)
    top, _ = _toplevel(folder)
    when = (clock or (lambda: datetime.now(UTC)))()
    when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    heading, facts = _describe(top)
    heading = f"## {when:%Y-%m-%d %H:%M} UTC — {heading}"
    lines = [heading, "", *_escape_headings(note), "", *facts]
    if steps:
        lines += ["", "### RESUME HERE", "", *(f"{n}. {step}" for n, step in enumerate(steps, 1))]
    text = "\n".join(lines) + "\n"
    path = (top or folder) / LOG_NAME
    created = _append(path, text)
    return LoggedEntry(path=path, heading=heading, text=text, steps=tuple(steps), created=created)


def parse_entries(text: str) -> list[LogEntry]:
    """The `## ` entries of a log, oldest first; headings inside code fences do not count."""
    lines = text.splitlines()
    starts = [(i, level, title) for i, level, title in _headings(lines) if level <= 2]
    found = []
    for n, (i, level, title) in enumerate(starts):
        stop = starts[n + 1][0] if n + 1 < len(starts) else len(lines)
        if level == 2:
            found.append(LogEntry(heading=title, body="\n".join(lines[i + 1 : stop]).strip("\n")))
    return found


def latest_resume(text: str) -> ResumeBlock | None:
    """The newest RESUME HERE block of a log, with how many older ones it supersedes."""
    lines = text.splitlines()
    heads = _headings(lines)
    marks = [n for n, (_, _, title) in enumerate(heads) if _RESUME.search(title)]
    if not marks:
        return None
    n = marks[-1]
    start, level, _ = heads[n]
    stop = next((i for i, lv, _ in heads[n + 1 :] if lv <= level), len(lines))
    entry = next((title for _, lv, title in reversed(heads[:n]) if lv == 2), None) if level > 2 else None
    body = "\n".join(lines[start + 1 : stop]).strip("\n")
    return ResumeBlock(text=body, line=start + 1, entry=entry, earlier=len(marks) - 1)


def _headings(lines: list[str]) -> list[tuple[int, int, str]]:
    """(0-based line, level, title) of each heading, as a Markdown renderer reads them (markdown-it)."""
    from lane.coding import markdown

    return [(head.line - 1, head.level, head.title.strip()) for head in markdown.parse("\n".join(lines)).headings()]


def _escape_headings(note: str) -> list[str]:
    """The note's lines, with heading-like ones escaped so they cannot start a new entry."""
    lines, fenced = [], False
    for line in note.splitlines():
        if _FENCE.match(line):
            fenced = not fenced
        lines.append("\\" + line.lstrip(" ") if not fenced and _HEADING.match(line) else line)
    return lines + (["```"] if fenced else [])


def _folder(root: Path) -> Path:
    folder = root.expanduser()
    if not folder.is_dir():
        raise UsageError(f"{root} is not a folder: pass an existing repository folder with --project DIR")
    return folder.resolve()


def _git(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """A read-only git command, its output as text for the terminal; raises when git cannot run."""
    done = run_git(cwd, *args, env={"GIT_OPTIONAL_LOCKS": "0"}, timeout=GIT_TIMEOUT)
    return subprocess.CompletedProcess(done.args, done.returncode, done.stdout.decode("utf-8", errors="replace"),
                                       done.stderr.decode("utf-8", errors="replace"))


def _out(cwd: Path, *args: str) -> str:
    """What a read-only git command prints, or "" when it fails."""
    done = _git(cwd, *args)
    return done.stdout.strip() if done.returncode == 0 else ""


def _toplevel(folder: Path) -> tuple[Path | None, str | None]:
    try:
        done = _git(folder, "rev-parse", "--show-toplevel")
    except (FileNotFoundError, subprocess.TimeoutExpired) as exc:
        why = "is not installed (not found on PATH)" if isinstance(exc, FileNotFoundError) else f"did not answer within {GIT_TIMEOUT:g} s"
        return None, f"git {why}: no branch, changes, stashes or unmerged branches"
    if done.returncode != 0:
        why = done.stderr.strip().splitlines()[0] if done.stderr.strip() else ""
        hint = "" if "not a git repository" in why else f" ({why})" if why else ""
        return None, f"{folder} is not in a git repository{hint}: no branch, changes, stashes or unmerged branches"
    return Path(done.stdout.strip()), None


def _git_state(top: Path) -> GitState:
    head = _out(top, "rev-parse", "--short", "-q", "--verify", "HEAD") or None
    changes = _changes(top)
    base, source = _base(top)
    no_merged = ["branch", "--no-merged", base, "--format=%(refname:short)"] if base else []
    return GitState(
        branch=_out(top, "symbolic-ref", "--short", "-q", "HEAD") or None, head=head, changes=len(changes),
        staged=sum(c.status[0] not in " ?" and c.status not in _CONFLICTS for c in changes),
        unstaged=sum(c.status[1] not in " ?" and c.status not in _CONFLICTS for c in changes),
        untracked=sum(c.status == "??" for c in changes), conflicted=sum(c.status in _CONFLICTS for c in changes),
        paths=tuple(changes[:PATHS_SHOWN]), stashes=tuple(_out(top, "stash", "list", "--format=%gd: %s").splitlines()),
        base=base, base_source=source, unmerged=tuple(_out(top, *no_merged).splitlines()) if base else (),
        last_commit=_last_commit(top) if head else None,
    )


def _changes(top: Path) -> list[Change]:
    done = _git(top, "status", "--porcelain=v1", "-z", "--untracked-files=normal")
    records = done.stdout.split("\0") if done.returncode == 0 else []  # not stripped: " M" starts with a space
    changes, skip = [], False
    for record in records:
        if skip or len(record) < 4:  # a rename's or copy's original path follows it
            skip = False
            continue
        changes.append(Change(status=record[:2], path=record[3:]))
        skip = record[0] in "RC"
    return changes


def _base(top: Path) -> tuple[str | None, str]:
    upstream = _out(top, "symbolic-ref", "-q", "--short", "refs/remotes/origin/HEAD")
    if upstream:
        return upstream, "the upstream default branch (refs/remotes/origin/HEAD)"
    for name in ("main", "master"):
        if _out(top, "rev-parse", "-q", "--verify", f"refs/heads/{name}"):
            return name, f"the local {name} branch"
    return None, "no origin/HEAD, main or master branch, so unmerged branches are not listed"


def _last_commit(top: Path) -> Commit | None:
    parts = _out(top, "log", "-1", "--format=%h%x00%s%x00%cr%x00%cI").split("\0")
    return Commit(*parts) if len(parts) == 4 else None


def _describe(top: Path | None) -> tuple[str, list[str]]:
    """The entry's heading label and its facts about HEAD and uncommitted work."""
    if top is None:
        return "no git repository", ["- HEAD: none (not a git repository)"]
    head = _out(top, "rev-parse", "--short", "-q", "--verify", "HEAD")
    branch = _out(top, "symbolic-ref", "--short", "-q", "HEAD")
    label = branch or f"detached at {head}"
    return label, [f"- HEAD: {head or 'none (no commits yet)'}", f"- Uncommitted files: {len(_changes(top))}"]


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None


def _excerpt(base: Path, candidates: Sequence[str]) -> Excerpt | None:
    for name in candidates:
        if (base / name).is_file() and (text := _read(base / name)) is not None:
            lines = text.splitlines()
            shown = lines[:EXCERPT_LINES]
            return Excerpt(path=name, text="\n".join(shown), shown_lines=len(shown), total_lines=len(lines))
    return None


def _append(path: Path, text: str) -> bool:
    """Write old content + text to a temporary file and move it over `path`: readers see all or nothing."""
    target = path.resolve()  # through a symlink, so the link stays a link
    try:
        old = target.read_bytes() if target.exists() else None
        mode = stat.S_IMODE(target.stat().st_mode) if old is not None else 0o666 & ~_umask()
        _replace(target, _joined(old, text), mode)
    except OSError as exc:
        raise UsageError(f"cannot write {target}: {exc.strerror or exc}; check that it is a file you may write") from exc
    return old is None


def _joined(old: bytes | None, text: str) -> bytes:
    """The old bytes untouched, a blank line, then text in the old file's line endings."""
    base = old if old is not None and old.strip() else (old or b"") + b"# Log\n"
    newline = "\r\n" if b"\r\n" in base else "\n"
    blank = base.endswith(b"\n\n") or base.endswith(b"\r\n\r\n")
    sep = b"" if blank else newline.encode() * (1 if base.endswith(b"\n") else 2)
    return base + sep + text.replace("\n", newline).encode("utf-8")


def _replace(target: Path, data: bytes, mode: int) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    current = os.umask(0o022)
    os.umask(current)
    return current
