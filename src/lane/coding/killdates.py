"""The kill-date registry: every flag and shim with its sunset criterion and the date it must be gone.

`killdates.yaml` at the repository root groups entries by kind:

    flags:
      new_dashboard: {sunset: "100% of users on the new route for 14 days", kill_date: 2027-01-31}

Code names an entry with a marker after a comment leader (`#`, `//`, `--`, `/*`,
`<!--`): `lane: kill-date new_dashboard`. The check fails when a date has passed
or a marker names an entry that is not registered; an entry no code mentions any
more is only a warning: it is ready to delete.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lane.coding.repo import run_git
from lane.errors import Problem, ProjectInvalid, UsageError

if TYPE_CHECKING:
    from lane.spec.source import Source

REGISTRY = "killdates.yaml"
ENTRY_KEYS = ("sunset", "kill_date")
NAME = re.compile(r"\w(?:[\w.-]*\w)?")
# the leader must start the line or follow a space, so prose quoting the syntax in `code` is not a marker
# After a comment leader that starts the line or follows a space or punctuation (`x();// lane: ...`), or on a
# `*` continuation line of a block comment; not inside a word or backticks, so prose quoting it does not count.
MARKER = re.compile(r"(?:^|[\s;,)}\]>])(?:#|//|--|/\*|\*|<!--|\{#|;|%|\.\.)\s*lane:\s*kill-date\b[ \t]*(\w(?:[\w.-]*\w)?)?")
# In reStructuredText (`.. lane: kill-date NAME`), Markdown and HTML (`<!-- ... -->`) and plain text, where a line
# may also start with the marker itself, with no comment leader.
PLAIN = re.compile(r"^\s*lane:\s*kill-date\b[ \t]*(\w(?:[\w.-]*\w)?)?")
PLAIN_SUFFIXES = (".txt", ".md", ".markdown", ".rst", ".text", "")
SKIPPED_DIRS = {".git", ".hg", ".svn", ".lane", ".venv", "venv", "node_modules", "__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache"}
MAX_BYTES = 2_000_000


@dataclass(frozen=True)
class Entry:
    """One registered flag or shim, at its line in killdates.yaml."""

    kind: str
    name: str
    sunset: str
    kill_date: date
    line: int


@dataclass(frozen=True)
class Marker:
    """A `lane: kill-date NAME` comment in the code (name is "" when the marker names nothing)."""

    name: str
    path: str
    line: int

    def to_json(self) -> dict[str, object]:
        return {"name": self.name, "path": self.path, "line": self.line}


@dataclass(frozen=True)
class EntryStatus:
    entry: Entry
    days_left: int  # negative: overdue
    markers: tuple[Marker, ...]

    @property
    def overdue(self) -> bool:
        return self.days_left < 0

    def to_json(self) -> dict[str, object]:
        e = self.entry
        return {
            "kind": e.kind, "name": e.name, "sunset": e.sunset, "kill_date": e.kill_date.isoformat(), "line": e.line,
            "days_left": self.days_left, "markers": [m.to_json() for m in self.markers],
        }  # fmt: skip


@dataclass(frozen=True)
class KillDateReport:
    """Every registered entry with its days left and markers, and the markers no entry accounts for."""

    today: date
    registry: str | None  # the registry's path as shown, None when there is none
    entries: tuple[EntryStatus, ...]
    unregistered: tuple[Marker, ...]
    versions: tuple[Any, ...] = ()  # runbook versions with a kill date, in a lane project (feedback.sunset.VersionKill)

    @property
    def overdue(self) -> tuple[EntryStatus, ...]:
        return tuple(s for s in self.entries if s.overdue)

    @property
    def unused(self) -> tuple[EntryStatus, ...]:
        return tuple(s for s in self.entries if not s.markers)

    @property
    def failing_versions(self) -> tuple[Any, ...]:
        return tuple(v for v in self.versions if v.failing)

    @property
    def ok(self) -> bool:
        return not self.overdue and not self.unregistered and not self.failing_versions

    def to_json(self) -> dict[str, object]:
        return {
            "today": self.today.isoformat(), "registry": self.registry, "ok": self.ok,
            "entries": [s.to_json() for s in self.entries],
            "unregistered": [m.to_json() for m in self.unregistered],
            "overdue": [s.entry.name for s in self.overdue], "unused": [s.entry.name for s in self.unused],
            "versions": [v.to_json() for v in self.versions],
        }  # fmt: skip


def check_killdates(root: Path, *, today: date | None = None) -> KillDateReport:
    """Read the registry (ProjectInvalid if it is malformed), scan the code for markers, and compare."""
    if not root.is_dir():
        raise UsageError(f"no folder {root}: pass the repository with --project DIR")
    today = today or date.today()
    entries = load_registry(root)
    markers = list(find_markers(root))
    known = {e.name for e in entries}
    statuses = tuple(
        EntryStatus(e, (e.kill_date - today).days, tuple(m for m in markers if m.name == e.name)) for e in entries
    )
    unregistered = tuple(m for m in markers if m.name not in known)
    return KillDateReport(today, REGISTRY if (root / REGISTRY).is_file() else None, statuses, unregistered)


def load_registry(root: Path) -> list[Entry]:
    """The entries of ROOT/killdates.yaml (none when it does not exist); every problem at once as ProjectInvalid."""
    path = root / REGISTRY
    if not path.is_file():
        return []
    from lane.spec.source import read_yaml  # here: YAML is read only when a registry is, not by `lane --help`

    source = read_yaml(path, REGISTRY)
    if source.problems:
        raise ProjectInvalid(source.problems)
    if source.tree is None:
        return []
    if not isinstance(source.tree, dict):
        raise ProjectInvalid([source.at((), "killdates.yaml must map kinds (flags, shims, ...) to entries")])
    entries: list[Entry] = []
    problems: list[Problem] = []
    for kind, group in source.tree.items():
        if group is None:
            continue
        if not isinstance(group, dict):
            problems.append(source.at((kind,), f"{kind!s} must map names to {{sunset: ..., kill_date: YYYY-MM-DD}}"))
            continue
        for name in group:
            entry = _entry(source, str(kind), name, group[name], problems)
            if entry is not None:
                entries.append(entry)
    problems.extend(_duplicates(source, entries))
    if problems:
        raise ProjectInvalid(problems)
    return entries


def _entry(source: Source, kind: str, name: Any, value: Any, problems: list[Problem]) -> Entry | None:
    at = (kind, name)
    if not isinstance(name, str) or not NAME.fullmatch(name):
        problems.append(source.at(at, f"invalid name {name!r}: use letters, digits, '_', '.' and '-', as markers spell it", key=True))
        return None
    if not isinstance(value, dict):
        problems.append(source.at(at, f"{name} must be a mapping {{sunset: ..., kill_date: YYYY-MM-DD}}"))
        return None
    before = len(problems)
    for key in value:
        if key not in ENTRY_KEYS:
            problems.append(source.at((*at, key), f"unknown key {key!r} in {name}: an entry has sunset and kill_date", key=True))
    for key in ENTRY_KEYS:
        if key not in value:
            problems.append(source.at(at, f"{name} needs {key}", key=True))
    sunset, kill_date = value.get("sunset"), _date(value.get("kill_date"))
    if "sunset" in value and (not isinstance(sunset, str) or not sunset.strip()):
        problems.append(source.at((*at, "sunset"), f"sunset of {name} must say, in words, when it can be removed"))
    if "kill_date" in value and kill_date is None:
        problems.append(source.at((*at, "kill_date"), f"kill_date of {name} must be a date YYYY-MM-DD"))
    if len(problems) > before or kill_date is None:
        return None
    return Entry(kind, name, str(sunset).strip(), kill_date, source.position(at, key=True)[0])


def _date(value: Any) -> date | None:
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            return None
    return None


def _duplicates(source: Source, entries: list[Entry]) -> list[Problem]:
    first: dict[str, Entry] = {}
    problems: list[Problem] = []
    for entry in entries:
        seen = first.setdefault(entry.name, entry)
        if seen is not entry:
            message = f"{entry.name} is registered twice (also under {seen.kind} at line {seen.line}): markers name entries, so names are unique"
            problems.append(source.at((entry.kind, entry.name), message, key=True))
    return problems


def find_markers(root: Path) -> Iterator[Marker]:
    """Every kill-date marker in the repository's files, in path and line order."""
    for relative in sorted(_files(root)):
        if relative == REGISTRY:
            continue
        path = root / relative
        try:
            if not path.is_file() or path.stat().st_size > MAX_BYTES:
                continue
            data = path.read_bytes()
        except OSError:
            continue
        if b"kill-date" not in data or b"\0" in data[:8192]:
            continue
        plain = Path(relative).suffix.lower() in PLAIN_SUFFIXES
        for number, line in enumerate(data.decode("utf-8", errors="replace").splitlines(), 1):
            matches = list(MARKER.finditer(line)) or ([m] if plain and (m := PLAIN.match(line)) else [])
            for match in matches:
                yield Marker(match.group(1) or "", relative, number)


def _files(root: Path) -> list[str]:
    """Tracked and untracked-but-not-ignored files; every file under root when it is not a git repository."""
    try:
        done = run_git(root, "ls-files", "-co", "--exclude-standard", "-z", timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        done = None
    if done is not None and done.returncode == 0:
        return sorted({name for name in done.stdout.decode("utf-8", errors="replace").split("\0") if name})
    found: list[str] = []
    for folder, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if d not in SKIPPED_DIRS]
        found.extend(Path(folder, name).relative_to(root).as_posix() for name in names)
    return found
