"""The canon: `canon/*.md`, each a Markdown file with YAML front matter.

    ---
    tier: 2                          # 1: always loaded; 2: read when its trigger holds
    read_when: you change billing    # tier 2 only, required: the trigger sentence
    title: Billing                   # optional; else the body's first `# ` heading, else the file name
    globs: [src/billing/**]          # optional, tier 2: Cursor attaches the rule to matching files
    tools: [claude]                  # optional: Claude-specific, rendered into CLAUDE.md only
    ---

Every problem in every file is reported at once as `canon/FILE.md:LINE:COL: message`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import Field
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from lane.errors import Problem, ProjectInvalid, UsageError
from lane.spec.files import Strict, check_model
from lane.spec.source import Source, read_front_matter

CANON_DIR = "canon"
HOW = "each file starts with front matter `tier: 1` (always loaded) or `tier: 2` with `read_when:` (a trigger sentence)"


class CanonFrontMatter(Strict):
    tier: Literal[1, 2]
    read_when: str | None = Field(default=None, min_length=1)
    title: str | None = Field(default=None, min_length=1)
    globs: list[str] | str | None = None
    tools: list[Literal["claude"]] = []


@dataclass(frozen=True)
class CanonFile:
    """One canon file, read and checked."""

    path: str  # as shown: canon/NAME.md
    tier: int
    title: str
    body: str  # the Markdown after the front matter (and after the title heading it came from)
    read_when: str | None = None
    globs: tuple[str, ...] = ()  # in the order Cursor's front matter needs (see cursor_globs)
    claude_only: bool = False

    @property
    def stem(self) -> str:
        return Path(self.path).stem


def read_canon(root: Path) -> list[CanonFile]:
    """Every `canon/*.md` under `root`, sorted by name; ProjectInvalid with every problem."""
    folder = root / CANON_DIR
    files = sorted(folder.glob("*.md")) if folder.is_dir() else []
    if not files:
        raise UsageError(f"no canon files in {folder}: write canon/*.md there; {HOW}")
    canon: list[CanonFile] = []
    problems: list[Problem] = []
    for file in files:
        item, found = read_canon_file(file, f"{CANON_DIR}/{file.name}")
        problems += found
        if item is not None:
            canon.append(item)
    if problems:
        raise ProjectInvalid(problems)
    return canon


def read_canon_file(file: Path, shown: str) -> tuple[CanonFile | None, list[Problem]]:
    source = read_front_matter(file, shown)
    if source.problems:
        return None, source.problems
    data = source.data
    if not isinstance(data, dict):
        return None, [Problem(shown, 2, 1, f"the front matter must be a mapping of keys; {HOW}")]
    if isinstance(data.get("tier"), bool):
        return None, [source.at(("tier",), f"'tier' is {str(data['tier']).lower()}; expected 1 or 2")]
    meta, problems = check_model(CanonFrontMatter, source)
    if meta is None:
        return None, problems
    problems += _check_rules(meta, source)
    globs, glob_problems = _globs(meta, source)
    problems += glob_problems
    if not source.body:
        problems.append(Problem(shown, source.body_line - 1, 1, "no text after the front matter; write the canon below the closing '---'"))
    if problems:
        return None, problems
    title, body = _title(meta.title, source.body, file.stem)
    return CanonFile(shown, meta.tier, title, body, meta.read_when, globs, bool(meta.tools)), []


def _check_rules(meta: CanonFrontMatter, source: Source) -> list[Problem]:
    problems = []
    if meta.tier == 2 and meta.read_when is None:
        problems.append(source.at(("tier",), "tier 2 needs 'read_when': the sentence that says when to read this file", key=True))
    if meta.tier == 1 and meta.read_when is not None:
        problems.append(source.at(("read_when",), "tier 1 is always loaded; remove 'read_when' or set tier: 2", key=True))
    if meta.globs is not None and meta.tier == 1:
        problems.append(source.at(("globs",), "tier 1 is always loaded; 'globs' attach a tier 2 file to matching files", key=True))
    if meta.globs is not None and meta.tools:
        problems.append(source.at(("globs",), "'globs' are for Cursor rules, and a Claude-only file has none; remove one of them", key=True))
    return problems


def _globs(meta: CanonFrontMatter, source: Source) -> tuple[tuple[str, ...], list[Problem]]:
    """Cursor reads `globs:` unquoted and splits it on commas (quotes would become part of the
    pattern), yet the front matter must stay valid YAML: so no commas, and the joined value must
    be a plain YAML scalar, which means the first pattern may not start with `*`, `[`, `!`, ...."""
    raw = [meta.globs] if isinstance(meta.globs, str) else list(meta.globs or [])
    globs = [g.strip() for g in raw]
    if meta.globs is not None and not any(globs):
        return (), [source.at(("globs",), "'globs' is empty; give at least one pattern, e.g. src/billing/**")]
    for glob in globs:
        if not glob or "," in glob:
            why = "an empty pattern" if not glob else f"{glob!r} holds a comma, and Cursor splits globs on commas"
            return (), [source.at(("globs",), f"{why}; list each pattern on its own")]
    ordered = cursor_globs(globs)
    if ordered is None:
        return (), [source.at(("globs",), (
            f"Cursor reads globs unquoted, and YAML cannot read {','.join(globs)} unquoted (a value may not start "
            "with '*', '[', '!', '&', ...); add a pattern that starts with a folder or file name, e.g. src/**/*.py"))]
    return ordered, []


def cursor_globs(globs: list[str]) -> tuple[str, ...] | None:
    """The patterns in an order whose comma-joined form is a plain YAML scalar, or None."""
    ordered = tuple(sorted(globs, key=lambda g: not is_plain_yaml(g)))  # stable: otherwise the author's order
    return ordered if not ordered or is_plain_yaml(",".join(ordered)) else None


def is_plain_yaml(text: str) -> bool:
    """Whether `key: TEXT` reads back as exactly TEXT, with no quotes."""
    try:
        return bool(YAML(typ="safe", pure=True).load(f"key: {text}\n") == {"key": text})
    except YAMLError:
        return False


def _title(given: str | None, body: str, stem: str) -> tuple[str, str]:
    """The title, and the body without the `# ` heading that gave it (the rendering heads each section itself)."""
    first, _, rest = body.partition("\n")
    heading = first[2:].strip() if first.startswith("# ") else None
    if heading is not None and given in (None, heading):
        return heading, rest.strip()
    return given or heading or stem.replace("-", " ").replace("_", " ").capitalize(), body
