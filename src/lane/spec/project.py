"""Loading a project: lane.yaml, agents/*.md, runbooks/*.yaml and tools/*.py.

Every problem in every file is collected before anything runs; `load_project`
raises ProjectInvalid with all of them.
"""

from __future__ import annotations

import difflib
import fnmatch
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from lane.engine.rules import RuleSet
from lane.errors import Problem, ProjectInvalid, UsageError
from lane.models.registry import HOSTED, PROVIDERS, missing_extra, model_id, provider_of
from lane.secrets import remember
from lane.spec.files import AgentFile, LaneFile, ModelSpec, Rules, RunbookFile, check_model
from lane.spec.gates import first_gate
from lane.spec.globs import fnmatch_difference
from lane.spec.runbook import RunbookSpec, check_children, check_runbook
from lane.spec.script import check_script
from lane.spec.skills import SkillSpec
from lane.spec.source import Loc, Source, parse_front_matter, parse_yaml, read_front_matter, read_yaml
from lane.spec.toolsets import load_toolsets
from lane.spec.triggers import check_triggers
from lane.store.url import parse_store_url
from lane.tools.base import Tool
from lane.tools.command import CommandTool

if TYPE_CHECKING:
    from lane.tools.mcp import McpServerConfig

ENV_REFERENCE = re.compile(r"env:([A-Za-z_][A-Za-z0-9_]*)")


@dataclass
class AgentSpec:
    file: AgentFile
    direction: str  # the Markdown body
    source: Source
    rules: RuleSet = field(default_factory=RuleSet)

    @property
    def name(self) -> str:
        return self.file.name


@dataclass
class ProjectSpec:
    root: Path
    config: LaneFile
    source: Source
    tools: dict[str, Tool] = field(default_factory=dict)
    agents: dict[str, AgentSpec] = field(default_factory=dict)
    runbooks: dict[str, RunbookSpec] = field(default_factory=dict)
    provided_models: frozenset[str] = frozenset()  # ids served by model objects given in Python
    unloaded: set[str] = field(default_factory=set)  # toolsets with a problem (reported on the toolset)
    mcp: dict[str, McpServerConfig] = field(default_factory=dict)  # MCP servers, listed when a run needs them
    rules: RuleSet = field(default_factory=RuleSet)
    secrets: frozenset[str] = frozenset()  # names of environment variables whose values are never stored
    files: dict[str, str] = field(default_factory=dict)  # a kept version's files (path -> text), read instead of the disk's
    skills: dict[str, SkillSpec] = field(default_factory=dict)  # skills/NAME/SKILL.md (spec/skills.py)
    warnings: list[Problem] = field(default_factory=list)  # valid, but worth a look: `lane validate` shows them

    def read(self, file: str) -> str:
        """A project file's text (an agent's context file), as the version being run has it."""
        kept = self.files.get(file)
        return kept if kept is not None else (self.root / file).read_text(encoding="utf-8")

    @property
    def human_roles(self) -> list[str]:
        return [name for name, role in self.config.roles.items() if role.kind == "human"]

    def model_spec(self, name: str | None) -> ModelSpec:
        """Follow aliases in `models:` to the model: a mapping as written, or an id as a mapping."""
        name = name or "default"
        for _ in range(10):
            target = self.config.models.get(name)
            if target is None:
                break
            if isinstance(target, ModelSpec):
                return target
            name = target
        if name == "default":
            name = "local"
        provider, _, model = name.partition(":")
        return ModelSpec(provider=provider, model=model or None)

    def model_id(self, name: str | None) -> str:
        """The `provider:model` id of the model an agent names (`local` for the built-in one)."""
        return model_id(self.model_spec(name))

    def allows(self, allowlist: list[str], tool: str) -> bool:
        return any(fnmatch.fnmatchcase(tool, pattern) for pattern in allowlist)

    def unloaded_tool(self, name: str) -> bool:
        """Whether `name` (a tool or pattern) is in a toolset that did not load or is listed only when it runs (MCP)."""
        toolset, dot, _ = name.partition(".")
        listed_later = bool(dot or "*" in name) and any(fnmatch.fnmatchcase(t, toolset) for t in self.mcp)  # `fs.*`, not `fs`
        return toolset in self.unloaded or listed_later

    def check_role(self, name: str, source: Source, loc: Loc, *, kind: str | None = None) -> list[Problem]:
        role = self.config.roles.get(name)
        if role is None:
            near = difflib.get_close_matches(name, list(self.config.roles), n=1)
            hint = f" (did you mean '{near[0]}'?)" if near else f"; roles: {', '.join(self.config.roles) or 'none'}"
            return [source.at(loc, f"role '{name}' is not in the work chart (roles in lane.yaml){hint}")]
        if kind is not None and role.kind != kind:
            return [source.at(loc, f"role '{name}' is {_a(role.kind)} role; this needs {_a(kind)} role")]
        return []


def _a(word: str) -> str:
    return f"an {word}" if word[0] in "aeiou" else f"a {word}"


def load_project(root: Path, *, provided_models: frozenset[str] = frozenset()) -> ProjectSpec:
    """Load and check every file of the project at `root`; raises ProjectInvalid."""
    spec, problems = check_project(root, provided_models=provided_models)
    if problems or spec is None:
        raise ProjectInvalid(problems)
    return spec


def check_project(root: Path, *, provided_models: frozenset[str] = frozenset()) -> tuple[ProjectSpec | None, list[Problem]]:
    root = root.resolve()
    path = root / "lane.yaml"
    if not path.is_file():
        return None, [Problem("lane.yaml", 1, 1, f"no lane.yaml in {root}; `lane init` writes a working project, or pass --project DIR")]
    source = read_yaml(path, "lane.yaml")
    if source.problems:
        return None, source.problems
    config, problems = check_model(LaneFile, source)
    if config is None:
        return None, problems
    project = ProjectSpec(root, config, source, provided_models=provided_models)
    problems += _check_models(project)
    problems += _check_store(project)
    for name, person in config.people.items():
        for i, role in enumerate(person.roles):
            problems += project.check_role(role, source, ("people", name, "roles", i), kind="human")
    problems += load_toolsets(project)
    project.rules, found = _check_rules(project, config.rules, source, ("rules",))
    problems += found
    project.secrets, found = _secret_names(project)
    remember(project.secrets)  # messages printed from here on are scrubbed of their values
    problems += found
    for tool in project.tools.values():
        if isinstance(tool, CommandTool) and tool.extra_args:
            # The agent writes its argv: with a secret in its environment it could print it in pieces redaction misses.
            tool.hidden = project.secrets
    problems += _load_skills(project)
    problems += _load_agents(project)
    problems += _load_runbooks(project)
    gated = first_gate(project)
    if gated is not None:
        problems.append(gated)
    return project, _without_follow_ons(project, problems)


def _without_follow_ons(project: ProjectSpec, problems: list[Problem]) -> list[Problem]:
    """The problems, less those at a mapping whose unknown key was taken out (its misspelt key is the problem)."""
    sources = [project.source, *(a.source for a in project.agents.values()), *(b.source for b in project.runbooks.values())]
    damaged = {(s.path, *at) for s in sources for at in s.damaged}
    return [p for p in problems if (p.path, p.line, p.column) not in damaged]


def _check_rules(project: ProjectSpec, rules: Rules, source: Source, loc: Loc) -> tuple[RuleSet, list[Problem]]:
    ruleset, found = RuleSet.parse(deny=rules.deny, ask=rules.ask, allow=rules.allow)
    problems = [source.at((*loc, kind, index), message) for kind, index, message in found]
    for kind in ("deny", "ask", "allow"):
        for rule in getattr(ruleset, kind):
            if any(project.allows([rule.tool], t) for t in project.tools) or project.unloaded_tool(rule.tool):
                continue
            near = difflib.get_close_matches(rule.tool, list(project.tools), n=1)
            hint = f" (did you mean '{near[0]}'?)" if near else ""
            index = getattr(rules, kind).index(rule.text)
            problems.append(source.at((*loc, kind, index), f"rule '{rule.text}' names no tool of this project{hint}"))
    return ruleset, problems


def _secret_names(project: ProjectSpec) -> tuple[frozenset[str], list[Problem]]:
    """`secrets:` and every `env:NAME` anywhere in lane.yaml, an agent file or a runbook (a webhook's secret): their values are redacted."""
    problems: list[Problem] = []
    names: set[str] = set()
    for i, ref in enumerate(project.config.secrets):
        match = ENV_REFERENCE.fullmatch(ref)
        if match is None:
            problems.append(project.source.at(("secrets", i), f"a secret is named as env:NAME (an environment variable), not {ref!r}"))
        else:
            names.add(match.group(1))
    runbooks = (project.root / "runbooks")
    for path in [project.root / "lane.yaml", *sorted((project.root / "agents").glob("*.md")), *sorted(runbooks.glob("*.y*ml"))]:
        names.update(ENV_REFERENCE.findall(path.read_text(encoding="utf-8", errors="replace")))
    return frozenset(names), problems


def _check_store(project: ProjectSpec) -> list[Problem]:
    try:
        parse_store_url(project.config.store)
    except UsageError as exc:
        return [project.source.at(("store",), str(exc))]
    config, problems = project.config, []
    endpoint = config.telemetry.endpoint if config.telemetry else None
    if endpoint is not None and not re.match(r"https?://[^/\s]", endpoint):
        problems.append(project.source.at(("telemetry", "endpoint"), "telemetry.endpoint is the collector's OTLP/HTTP address, "
                                          f"such as http://localhost:4318, not {endpoint!r}"))
    if config.engine == "temporal" and config.store == "memory":
        problems.append(project.source.at(("store",), "engine: temporal needs a store its workers share: "
                                          "sqlite:///PATH (workers on this machine) or postgresql://USER@HOST/DB"))
    address = config.temporal.address if config.temporal else None
    if address is not None and not re.fullmatch(r"[^\s:/]+:\d{1,5}|\[[0-9A-Fa-f:.]+\]:\d{1,5}", address):
        problems.append(project.source.at(("temporal", "address"), f"temporal.address {address!r}: write HOST:PORT, "
                                          "e.g. localhost:7233 (no scheme, no path)"))
    return problems


def _check_models(project: ProjectSpec) -> list[Problem]:
    problems = []
    source = project.source
    for name, target in project.config.models.items():
        if isinstance(target, str):
            if target not in project.config.models:
                problems += _check_provider(provider_of(target), source, ("models", name), project.provided_models, target)
                problems += _check_model_name(target, source, ("models", name))
                problems += _check_script_file(project, target, source, ("models", name))
            continue
        loc: Loc = ("models", name)
        problems += _check_provider(target.provider, source, (*loc, "provider"))
        if target.provider in HOSTED and not target.model:
            problems.append(source.at(loc, f"model '{name}' needs `model:`, the name the server knows it by", key=True))
        if target.base_url is not None:
            if target.provider not in HOSTED:
                problems.append(source.at((*loc, "base_url"), f"base_url is for {', '.join(HOSTED)} models, not {target.provider}"))
            elif not re.match(r"https?://[^/\s]+", target.base_url):
                problems.append(source.at((*loc, "base_url"), f"base_url must be an http:// or https:// URL such as http://127.0.0.1:8080/v1, not {target.base_url!r}"))
        if target.api_key is not None and not re.fullmatch(r"env:[A-Za-z_][A-Za-z0-9_]*", target.api_key):
            problems.append(source.at((*loc, "api_key"), "api_key must name an environment variable, as env:NAME; "
                                      "keys are never written in project files"))
    return problems


def _check_model_name(model: str, source: Source, loc: Loc) -> list[Problem]:
    provider, _, name = model.partition(":")
    if provider in HOSTED and not name:
        example = {"openai": "openai:gpt-4.1-mini", "anthropic": "anthropic:claude-sonnet-4-5", "ollama": "ollama:llama3.2"}[provider]
        return [source.at(loc, f"'{model}' needs a model name after the colon, such as {example}")]
    return []


def _check_script_file(project: ProjectSpec, model: str, source: Source, loc: Loc) -> list[Problem]:
    provider, _, file = model.partition(":")
    if provider == "local" and file and not (project.root / file).is_file():
        return [source.at(loc, f"no GGUF model file {file!r} for model {model!r}")]
    if provider == "scripted" and model not in project.provided_models and not (project.root / file).is_file():
        return [source.at(loc, f"no script file {file!r} for model {model!r}")]
    return []


def _check_provider(provider: str, source: Source, loc: Loc, provided: frozenset[str] = frozenset(), model: str = "") -> list[Problem]:
    if provider in PROVIDERS or model in provided:  # a model object given in Python serves any id
        return []
    near = difflib.get_close_matches(provider, PROVIDERS, n=1)
    hint = f" (did you mean '{near[0]}'?)" if near else ""
    return [source.at(loc, f"unknown model provider '{provider}'{hint}; providers: {', '.join(PROVIDERS)}, or an alias under models:")]


def _load_skills(project: ProjectSpec) -> list[Problem]:
    """skills/*/SKILL.md, and lane's own skills.load and skills.read when there are any."""
    from lane.spec.skills import load_skills
    from lane.tools.skills import skill_tools

    problems = load_skills(project)
    if "skills" in project.config.toolsets:
        problems.append(project.source.at(("toolsets", "skills"), "the toolset name 'skills' is lane's own (skills.load, skills.read): "
                                                                  "name yours otherwise", key=True))
    elif project.skills:
        project.tools.update(skill_tools(project))
    return problems


def _load_agents(project: ProjectSpec) -> list[Problem]:
    problems: list[Problem] = []
    files = sorted((project.root / "agents").glob("*.md"))
    for path in files:
        problems += _load_agent(project, read_front_matter(path, f"agents/{path.name}"), path.stem)
    for name, role in project.config.roles.items():
        if role.kind == "agent" and name not in project.agents and not (project.root / "agents" / f"{name}.md").exists():
            problems.append(project.source.at(("roles", name), f"agent role '{name}' has no file agents/{name}.md", key=True))
    return problems


def _load_agent(project: ProjectSpec, source: Source, stem: str) -> list[Problem]:
    if source.problems:
        return source.problems
    agent, problems = check_model(AgentFile, source)
    if agent is None:
        return problems
    if agent.name != stem:
        problems.append(source.at(("name",), f"agent name '{agent.name}' must match its file name '{stem}'"))
    else:
        problems += project.check_role(agent.name, source, ("name",), kind="agent")
    problems += _check_agent(project, agent, source)
    for i, pattern in enumerate(agent.paths):
        if (changed := fnmatch_difference(pattern)) is not None:
            project.warnings.append(source.at(("paths", i), changed))
    rules, found = _check_rules(project, agent.rules, source, ("rules",))
    problems += found
    project.agents[agent.name] = AgentSpec(agent, source.body, source, rules)
    return problems


def load_version(current: ProjectSpec, files: dict[str, str]) -> ProjectSpec:
    """The project as a kept version of a runbook has it: this lane.yaml, tools and models, with the version's own
    runbooks, agents and context files (`files`: path -> text). Raises ProjectInvalid when they no longer load."""
    import dataclasses

    view = dataclasses.replace(current, agents=dict(current.agents), runbooks=dict(current.runbooks), files=dict(files),
                               skills=dict(current.skills), tools=dict(current.tools))
    problems: list[Problem] = []
    problems += _kept_skills(view, files)
    for path, text in sorted(files.items()):
        if path.startswith("agents/") and path.endswith(".md"):
            problems += _load_agent(view, parse_front_matter(text, path), Path(path).stem)
    for path, text in sorted(files.items()):
        if path.startswith("runbooks/"):
            source = parse_yaml(text, path)
            book, found = check_model(RunbookFile, source) if not source.problems else (None, source.problems)
            problems += found
            if book is not None:
                spec, found = check_runbook(book, source, view)
                problems += found
                view.runbooks[book.runbook] = spec
    problems += check_children(view)
    if problems:
        raise ProjectInvalid(problems)
    return view


def _kept_skills(view: ProjectSpec, files: dict[str, str]) -> list[Problem]:
    """A kept version's skills, from its files; the skill tools then read them."""
    from lane.spec.skills import SKILLS, parse_skill
    from lane.tools.skills import skill_tools

    problems: list[Problem] = []
    for path, text in sorted(files.items()):
        parts = path.split("/")
        if len(parts) == 3 and parts[0] == SKILLS and parts[2] == "SKILL.md":
            own = tuple(p.split("/", 2)[2] for p in sorted(files) if p.startswith(f"{SKILLS}/{parts[1]}/") and p != path)
            skill, found = parse_skill(text, path, parts[1], own)
            problems += found
            if skill is not None:
                view.skills[skill.name] = skill
    if view.skills and "skills" not in view.config.toolsets:
        view.tools.update(skill_tools(view))
    return problems


def _check_agent(project: ProjectSpec, agent: AgentFile, source: Source) -> list[Problem]:
    problems: list[Problem] = []
    model = project.model_spec(agent.model)
    missing = missing_extra(model) if model_id(model) not in project.provided_models else None
    if missing is not None:
        where = "" if agent.model else " (the default in lane.yaml)"
        problems.append(source.at(("model",) if agent.model else ("name",), f"agent '{agent.name}'{where}: {missing}"))
    if agent.model is not None and agent.model not in project.config.models:
        problems += _check_provider(provider_of(agent.model), source, ("model",), project.provided_models, agent.model)
        problems += _check_model_name(agent.model, source, ("model",))
        problems += _check_script_file(project, agent.model, source, ("model",))
    for i, pattern in enumerate(agent.tools):
        if not any(project.allows([pattern], t) for t in project.tools) and not project.unloaded_tool(pattern):
            near = difflib.get_close_matches(pattern, list(project.tools), n=1)
            hint = f" (did you mean '{near[0]}'?)" if near else ""
            problems.append(source.at(("tools", i), f"no tool matches '{pattern}'{hint}"))
    for i, pattern in enumerate(agent.skills):
        if not any(project.allows([pattern], name) for name in project.skills):
            near = difflib.get_close_matches(pattern, list(project.skills), n=1)
            hint = f" (did you mean '{near[0]}'?)" if near else f"; skills: {', '.join(sorted(project.skills)) or 'none (write skills/NAME/SKILL.md)'}"
            problems.append(source.at(("skills", i), f"no skill matches '{pattern}'{hint}"))
    for i, file in enumerate(agent.context.always):
        if file not in project.files and not (project.root / file).is_file():
            problems.append(source.at(("context", "always", i), f"no file {file}"))
    for i, trigger in enumerate(agent.context.on):
        if trigger.read not in project.files and not (project.root / trigger.read).is_file():
            problems.append(source.at(("context", "on", i, "read"), f"no file {trigger.read}"))
    return problems


def _load_runbooks(project: ProjectSpec) -> list[Problem]:
    problems: list[Problem] = []
    first: dict[str, str] = {}
    every = True  # every runbook loaded
    for path in sorted((project.root / "runbooks").glob("*.y*ml")):
        shown = f"runbooks/{path.name}"
        source = read_yaml(path, shown)
        if source.problems:
            problems += source.problems
            every = False
            continue
        book, found = check_model(RunbookFile, source)
        problems += found
        if book is None:
            every = False
            continue
        if book.runbook in first:
            problems.append(source.at(("runbook",), f"runbook '{book.runbook}' is also defined in {first[book.runbook]}"))
            continue
        first[book.runbook] = shown
        spec, found = check_runbook(book, source, project)
        problems += found
        project.runbooks[book.runbook] = spec
    problems += check_children(project)
    problems += check_triggers(project)
    from lane.feedback.fixtures import check_fixtures

    problems += check_fixtures(project)
    problems += _check_scripts(project, every_runbook=every)
    return problems


def _check_scripts(project: ProjectSpec, *, every_runbook: bool) -> list[Problem]:
    """Scripted models: the file's shape, and that no turn calls a tool its agent may not use.

    A step whose agent has a problem (or a runbook that did not load) may be the one that
    uses a script: its id is not reported as unused."""
    uses: dict[str, dict[str, list[str]]] = {}  # script file -> step id -> allowlist
    unsure: set[str] = set()  # agent steps whose model is not known
    for book in project.runbooks.values():
        for path, step in book.named():
            agent = project.agents.get(step.step.agent or "")
            if step.kind != "agent":
                continue
            names = {path, step.step.id}  # a step inside a group is scripted by its path (each.write) or its own id
            if agent is None:
                unsure.update(names)
                continue
            model = project.model_id(agent.file.model)
            if provider_of(model) == "scripted":
                allow = step.step.tools if step.step.tools is not None else agent.file.tools
                for name in names:
                    uses.setdefault(model.partition(":")[2], {})[name] = allow
            elif provider_of(model) not in PROVIDERS:
                unsure.update(names)
    for agent in project.agents.values():
        model = project.model_id(agent.file.model)
        if provider_of(model) == "scripted":
            uses.setdefault(model.partition(":")[2], {})
    problems: list[Problem] = []
    for file, steps in uses.items():
        if f"scripted:{file}" in project.provided_models:
            continue
        problems += check_script(project, file, steps, maybe=unsure if every_runbook else None)
    return problems

