"""Skills, in the Agent Skills open format: `skills/NAME/SKILL.md` (YAML front matter and a Markdown body), with
optional `scripts/`, `references/` and `assets/`.

The front matter's keys (agentskills.io/specification): `name` (required; 1-64 characters, lower-case letters,
digits and single hyphens, not at either end; the folder's name), `description` (required; 1-1,024 characters:
what it does and when to use it), `license`, `compatibility` (at most 500 characters), `metadata` (strings to
strings) and `allowed-tools` (tool names separated by spaces). Keys other tools add (`model`, `argument-hint`, ...)
are left alone, so a skill written for another tool loads unchanged.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lane.errors import Problem
from lane.spec.source import Source, parse_front_matter

if TYPE_CHECKING:
    from lane.spec.project import ProjectSpec

SKILLS = "skills"
NAME = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
MAX_NAME, MAX_DESCRIPTION, MAX_COMPATIBILITY = 64, 1024, 500
MAX_FILES = 200  # listed per skill
MAX_SKILL_BYTES = 262_144  # SKILL.md, and each file skills.read gives


@dataclass(frozen=True)
class SkillSpec:
    name: str
    description: str
    folder: str  # skills/NAME, relative to the project
    body: str
    allowed_tools: tuple[str, ...] = ()
    license: str | None = None
    compatibility: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    files: tuple[str, ...] = ()  # the folder's other files, relative to it (`references/policy.md`)

    @property
    def path(self) -> str:
        return f"{self.folder}/SKILL.md"


def load_skills(project: ProjectSpec) -> list[Problem]:
    """Every skill folder under skills/, checked against the format; the valid ones go into `project.skills`."""
    base = project.root / SKILLS
    if not base.is_dir():
        return []
    problems: list[Problem] = []
    for folder in sorted(p for p in base.iterdir() if p.is_dir() and not p.name.startswith(".")):
        shown = f"{SKILLS}/{folder.name}/SKILL.md"
        path = folder / "SKILL.md"
        if folder.is_symlink() or path.is_symlink():  # a skill reads only what is in its own folder of the project
            which = f"{SKILLS}/{folder.name}" if folder.is_symlink() else shown
            problems.append(Problem(which, 1, 1, "is a symbolic link: a skill's folder and SKILL.md must be real files in "
                                                 "the project (copy the skill in)"))
            continue
        if not path.is_file():
            problems.append(Problem(f"{SKILLS}/{folder.name}", 1, 1, "a skill folder needs a SKILL.md (front matter with name and "
                                                                     "description, then the instructions)"))
            continue
        try:
            raw = path.read_bytes()
        except OSError as exc:
            problems.append(Problem(shown, 1, 1, f"cannot read it: {exc.strerror or exc}"))
            continue
        if len(raw) > MAX_SKILL_BYTES:
            problems.append(Problem(shown, 1, 1, f"it is {len(raw)} bytes; a SKILL.md is at most {MAX_SKILL_BYTES} (move detail into references/)"))
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            problems.append(Problem(shown, 1, 1, "it is not UTF-8 text"))
            continue
        skill, found = parse_skill(text, shown, folder.name, _files(folder))
        problems += found
        if skill is not None:
            project.skills[skill.name] = skill
    return problems


def parse_skill(text: str, shown: str, folder: str, files: tuple[str, ...] = ()) -> tuple[SkillSpec | None, list[Problem]]:
    source = parse_front_matter(text, shown)
    if source.problems:
        return None, source.problems
    data = source.data
    if not isinstance(data, dict):
        return None, [source.at((), "the front matter must be a mapping with name and description")]
    problems = _check(source, data, folder)
    if problems:
        return None, problems
    allowed = data.get("allowed-tools")
    return SkillSpec(
        name=data["name"], description=data["description"].strip(), folder=f"{SKILLS}/{folder}", body=source.body or "",
        allowed_tools=tuple(allowed.split()) if isinstance(allowed, str) else (), license=data.get("license"),
        compatibility=data.get("compatibility"), metadata=dict(data.get("metadata") or {}), files=files,
    ), []


def _check(source: Source, data: dict[str, Any], folder: str) -> list[Problem]:
    problems = []
    name = data.get("name")
    if "name" not in data:
        problems.append(source.at((), "a skill needs `name` (lower-case letters, digits and hyphens: the folder's name)"))
    elif not isinstance(name, str) or not name:
        problems.append(source.at(("name",), "name must be text: lower-case letters, digits and hyphens"))
    elif len(name) > MAX_NAME:
        problems.append(source.at(("name",), f"name is {len(name)} characters; at most {MAX_NAME}"))
    elif not NAME.match(name):
        problems.append(source.at(("name",), f"name {name!r}: only lower-case letters, digits and single hyphens, not at the start or end"))
    elif name != folder:
        problems.append(source.at(("name",), f"name {name!r} must be the skill's folder name, {folder!r}"))
    description = data.get("description")
    if "description" not in data:
        problems.append(source.at((), "a skill needs `description`: what it does and when to use it"))
    elif not isinstance(description, str) or not description.strip():
        problems.append(source.at(("description",), "description must be text saying what the skill does and when to use it"))
    elif len(description) > MAX_DESCRIPTION:
        problems.append(source.at(("description",), f"description is {len(description)} characters; at most {MAX_DESCRIPTION}"))
    if "license" in data and not isinstance(data["license"], str):
        problems.append(source.at(("license",), "license must be text: a license's name or a bundled file"))
    compatibility = data.get("compatibility")
    if "compatibility" in data and (not isinstance(compatibility, str) or not 1 <= len(compatibility) <= MAX_COMPATIBILITY):
        problems.append(source.at(("compatibility",), f"compatibility must be text of 1 to {MAX_COMPATIBILITY} characters"))
    metadata = data.get("metadata")
    if "metadata" in data and (not isinstance(metadata, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items())):
        problems.append(source.at(("metadata",), "metadata must map text to text (quote numbers: version: \"1.0\")"))
    if "allowed-tools" in data and not isinstance(data["allowed-tools"], str):
        problems.append(source.at(("allowed-tools",), "allowed-tools must be text: tool names separated by spaces"))
    return problems


def _files(folder: Path) -> tuple[str, ...]:
    """The skill's files other than SKILL.md, relative to its folder (symlinks and hidden files left out)."""
    found: list[str] = []
    for top, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and not (Path(top) / d).is_symlink())
        for name in sorted(names):
            path = Path(top) / name
            if name.startswith(".") or path.is_symlink():
                continue
            relative = path.relative_to(folder).as_posix()
            if relative != "SKILL.md":
                found.append(relative)
            if len(found) >= MAX_FILES:
                return tuple(found)
    return tuple(found)


def catalog(skills: list[SkillSpec]) -> str:
    """What an agent always sees of its skills: each one's name and description, nothing more."""
    lines = ["# Skills", "",
             "The project's instructions for tasks that need them: when yours does, skills.load(name) gives one, "
             "skills.read(name, path) one of its files. They never change your tools or approvals."]
    lines += [f"- {s.name}: {s.description}" for s in skills]
    return "\n".join(lines)
