"""Canon skills: `canon/skills/NAME/` (Agent Skills format) copied where each coding tool reads project skills.

    .claude/skills/NAME/    Claude Code
    .agents/skills/NAME/    Codex
    .github/skills/NAME/    GitHub Copilot
    .cursor/skills/NAME/    Cursor
    .gemini/skills/NAME/    Gemini CLI

A skill's files must stay as the format has them (SKILL.md starts with its front matter), so there are no markers
inside them: each placed folder gets a `.lane-generated` file listing the SHA-256 of every file as lane wrote it.
A check then tells a hand edit (a file no longer matches the hash lane wrote) from a stale copy (the hashes lane
wrote no longer match the canon). A folder there without `.lane-generated` is not lane's and is never touched.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

from lane.coding.canon import CANON_DIR
from lane.errors import Problem, ProjectInvalid

SKILLS_DIR = f"{CANON_DIR}/skills"
PLACES = (".claude/skills", ".agents/skills", ".github/skills", ".cursor/skills", ".gemini/skills")
MANIFEST = ".lane-generated"


def canon_skills(root: Path) -> dict[str, dict[str, bytes]]:
    """Each canon skill's files (relative path -> bytes), checked against the format; ProjectInvalid if one is not."""
    from lane.spec.skills import MAX_SKILL_BYTES, parse_skill

    base = root / SKILLS_DIR
    if not base.is_dir():
        return {}
    found: dict[str, dict[str, bytes]] = {}
    problems: list[Problem] = []
    for folder in sorted(p for p in base.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files = {f.relative_to(folder).as_posix(): f.read_bytes() for f in sorted(folder.rglob("*"))
                 if f.is_file() and not f.is_symlink() and not any(part.startswith(".") for part in f.relative_to(folder).parts)}
        shown = f"{SKILLS_DIR}/{folder.name}/SKILL.md"
        text = files.get("SKILL.md")
        if text is None or len(text) > MAX_SKILL_BYTES:
            problems.append(Problem(f"{SKILLS_DIR}/{folder.name}", 1, 1, "a skill folder needs a SKILL.md (at most 256 KiB)"))
            continue
        _, found_problems = parse_skill(text.decode("utf-8", "replace"), shown, folder.name)
        problems += found_problems
        if not found_problems:
            found[folder.name] = files
    if problems:
        raise ProjectInvalid(problems)
    return found


def _hashes(files: dict[str, bytes]) -> dict[str, str]:
    return {path: hashlib.sha256(data).hexdigest() for path, data in sorted(files.items())}


def _read_manifest(folder: Path) -> dict[str, str] | None:
    try:
        data = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    files = data.get("files") if isinstance(data, dict) else None
    return {str(k): str(v) for k, v in files.items()} if isinstance(files, dict) else None


def _on_disk(folder: Path) -> dict[str, str]:
    return {f.relative_to(folder).as_posix(): hashlib.sha256(f.read_bytes()).hexdigest()
            for f in sorted(folder.rglob("*")) if f.is_file() and f.name != MANIFEST and not f.is_symlink()}


def state(root: Path, skills: dict[str, dict[str, bytes]]) -> list[tuple[str, str, str]]:
    """(placed folder, kind, message) for every placed skill that differs from the canon: missing, foreign,
    edited or stale; and lane's placed skills no canon skill renders any more (stale)."""
    found = []
    for place in PLACES:
        for name, files in skills.items():
            path = f"{place}/{name}"
            folder = root / path
            if not folder.exists():
                found.append((path, "missing", "missing; run lane context build"))
                continue
            written = _read_manifest(folder)
            if written is None:
                found.append((path, "foreign", f"exists but lane did not write it (no {MANIFEST}); rename it or delete it, then run lane context build"))
                continue
            now = _on_disk(folder)
            edited = sorted(p for p in set(now) | set(written) if now.get(p) != written.get(p))
            if edited:
                found.append((path, "edited", f"edited by hand ({', '.join(edited)}); change {SKILLS_DIR}/{name} instead, then run "
                                              "lane context build (--force drops the edit)"))
                continue
            wanted = _hashes(files)
            if wanted != written:
                changed = sorted(p for p in set(wanted) | set(written) if wanted.get(p) != written.get(p))
                found.append((path, "stale", f"stale: {', '.join(f'{SKILLS_DIR}/{name}/{p}' for p in changed)} changed; run lane context build"))
        for folder in sorted((root / place).glob("*")) if (root / place).is_dir() else []:
            if folder.name not in skills and (folder / MANIFEST).exists():
                found.append((f"{place}/{folder.name}", "stale", f"stale: no skill in {SKILLS_DIR} renders it now; run lane context build"))
    return found


def refusals(problems: list[tuple[str, str, str]], *, force: bool) -> list[str]:
    """What a build must not overwrite: a folder lane did not write, and (without --force) a hand edit."""
    return [f"{path}: {message}" for path, kind, message in problems if kind == "foreign" or (kind == "edited" and not force)]


def place(root: Path, skills: dict[str, dict[str, bytes]], problems: list[tuple[str, str, str]]) -> list[tuple[str, str, str]]:
    """Copy every canon skill to every place where `problems` (from `state`, with nothing refused) says it differs:
    (folder, action, note); and remove lane's copies no canon skill renders any more."""
    done = []
    kinds = {path: kind for path, kind, _ in problems}
    for place_dir in PLACES:
        for name, files in skills.items():
            path = f"{place_dir}/{name}"
            if path not in kinds:
                done.append((path, "unchanged", ""))
                continue
            folder = root / path
            if folder.exists():
                shutil.rmtree(folder)
            for relative, data in files.items():
                target = folder / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
            (folder / MANIFEST).write_text(json.dumps({"source": f"{SKILLS_DIR}/{name}", "files": _hashes(files)}, indent=1) + "\n",
                                           encoding="utf-8")
            done.append((path, "created" if kinds[path] == "missing" else "updated", f"skill from {SKILLS_DIR}/{name}"))
    for path, kind, _ in problems:
        if kind == "stale" and path.rsplit("/", 1)[1] not in skills:
            shutil.rmtree(root / path)
            done.append((path, "removed", "no canon skill renders it now"))
    return done
