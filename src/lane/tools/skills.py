"""lane's own skill tools, `skills.load` and `skills.read`: an agent brings in a skill it declares (`skills:` in its
front matter) when its task calls for it. Both only read, and only inside the skill's folder; a skill the agent
does not declare, or a path that leaves the folder, is refused before the call runs (journaled like any call)."""

from __future__ import annotations

import posixpath
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lane.spec.schema import schema_errors
from lane.spec.skills import MAX_SKILL_BYTES
from lane.tools.base import Effect, Lane, ToolArgsInvalid, ToolContext

if TYPE_CHECKING:
    from lane.spec.project import ProjectSpec

LOAD, READ = "skills.load", "skills.read"
NAMES = (LOAD, READ)


def skill_tools(spec: ProjectSpec) -> dict[str, Any]:
    return {LOAD: _Load(spec), READ: _Read(spec)}


def agent_skills(spec: ProjectSpec, agent: str | None) -> list[str]:
    """The skills an agent declares, by name (its `skills:` patterns matched against the project's skills)."""
    found = spec.agents.get(agent or "")
    if found is None:
        return []
    return sorted(name for name in spec.skills if spec.allows(found.file.skills, name))


class _SkillTool:
    effect: Effect = "read"
    idempotent = True

    def __init__(self, spec: ProjectSpec) -> None:
        self.spec = spec

    def check_args(self, args: dict[str, Any]) -> dict[str, Any]:
        errors = schema_errors(self.parameters, args)  # type: ignore[attr-defined]
        if errors:
            raise ToolArgsInvalid("; ".join(errors))
        return args

    def subjects(self, args: dict[str, Any]) -> list[str]:
        return [str(args.get("name", "")), *([str(args["path"])] if "path" in args else [])]

    def out_of_lane(self, args: dict[str, Any], lane: Lane, project_dir: Path) -> str | None:
        name = str(args.get("name", ""))
        mine = agent_skills(self.spec, lane.agent)
        if name not in mine:
            return f"skill {name!r} is not one of agent {lane.agent}'s skills ({', '.join(mine) or 'none'})"
        return None


class _Load(_SkillTool):
    name = LOAD
    description = "Load one of your skills: its instructions, and the list of its other files (read one with skills.read)."
    parameters = {"type": "object", "properties": {"name": {"type": "string", "description": "The skill's name, from your catalog."}},
                  "required": ["name"], "additionalProperties": False}

    async def invoke(self, args: dict[str, Any], ctx: ToolContext) -> Any:
        skill = self.spec.skills[args["name"]]
        return {"skill": skill.name, "instructions": skill.body, "files": list(skill.files)}


class _Read(_SkillTool):
    name = READ
    description = "Read one file of one of your skills (a reference, a script, a template), by its path inside the skill's folder."
    parameters = {"type": "object", "properties": {
        "name": {"type": "string", "description": "The skill's name."},
        "path": {"type": "string", "description": "The file's path inside the skill's folder, such as references/policy.md."}},
        "required": ["name", "path"], "additionalProperties": False}

    def out_of_lane(self, args: dict[str, Any], lane: Lane, project_dir: Path) -> str | None:
        refused = super().out_of_lane(args, lane, project_dir)
        if refused is not None:
            return refused
        skill = self.spec.skills[str(args["name"])]
        path = str(args.get("path", ""))
        clean = posixpath.normpath(path) if path else ""
        if "\x00" in path or not clean or clean.startswith(("/", "../")) or clean in ("..", ".") or "\\" in path:
            return f"{path!r} is not a file inside skill {skill.name}'s folder ({skill.folder}/)"
        if clean != "SKILL.md" and clean not in skill.files:
            listed = ", ".join(skill.files[:20]) or "none besides SKILL.md"
            return f"skill {skill.name} has no file {clean!r} (its files: {listed})"
        return None

    async def invoke(self, args: dict[str, Any], ctx: ToolContext) -> Any:
        from lane.errors import ToolError

        skill = self.spec.skills[args["name"]]
        relative = posixpath.normpath(args["path"])
        target = f"{skill.folder}/{relative}"
        if not self.spec.files:  # on disk: the file itself, not what a link swapped in since points at
            real = (self.spec.root / target).resolve()
            if not real.is_relative_to((self.spec.root / skill.folder).resolve()) or not real.is_file():
                raise ToolError(f"{target} is not a file inside the skill's folder")
            if real.stat().st_size > MAX_SKILL_BYTES:
                raise ToolError(f"{target} is over {MAX_SKILL_BYTES} bytes; skills.read gives smaller files")
        try:
            text = self.spec.read(target)
        except (OSError, KeyError) as exc:
            raise ToolError(f"cannot read {target}: {exc}") from None
        except UnicodeError:
            raise ToolError(f"{target} is not text; skills.read gives text files") from None
        return {"skill": skill.name, "path": relative, "text": text[:MAX_SKILL_BYTES]}
