"""Canon skills (issue 20, part 4): canon/skills/NAME/ placed where Claude Code, Codex, Copilot, Cursor and Gemini
CLI read project skills, with drift caught by `lane context check` as for AGENTS.md."""

from __future__ import annotations

import json
from pathlib import Path

from test_context_files import lane, repo, write  # noqa: F401 - the fixture

PLACES = (".claude/skills", ".agents/skills", ".github/skills", ".cursor/skills", ".gemini/skills")
SKILL = """\
    ---
    name: release-notes
    description: Write release notes from the git log. Use when asked for release notes or a changelog.
    allowed-tools: Bash(git log:*) Read
    ---
    # Release notes

    Group the commits by area; see references/format.md.
"""


def with_skill(root: Path) -> Path:
    write(root, "canon/skills/release-notes/SKILL.md", SKILL)
    write(root, "canon/skills/release-notes/references/format.md", "## Added\n## Fixed\n")
    return root


def test_build_places_each_canon_skill_for_every_coding_tool_and_check_passes(repo: Path) -> None:  # noqa: F811
    root = with_skill(repo)
    built = lane(root, "build", "--json")
    assert built.exit_code == 0, built.output
    placed = [f["path"] for f in json.loads(built.output)["files"] if "skills" in f["path"]]
    assert placed == [f"{place}/release-notes" for place in PLACES]
    for place in PLACES:
        folder = root / place / "release-notes"
        assert (folder / "SKILL.md").read_text() == (root / "canon/skills/release-notes/SKILL.md").read_text()
        assert (folder / "references" / "format.md").read_text() == "## Added\n## Fixed\n"
        assert json.loads((folder / ".lane-generated").read_text())["source"] == "canon/skills/release-notes"
    assert lane(root, "check").exit_code == 0
    again = json.loads(lane(root, "build", "--json").output)["files"]
    assert {f["action"] for f in again if "skills" in f["path"]} == {"unchanged"}


def test_check_tells_a_hand_edit_from_a_stale_copy_and_a_missing_one(repo: Path) -> None:  # noqa: F811
    root = with_skill(repo)
    lane(root, "build")
    (root / ".claude/skills/release-notes/SKILL.md").write_text("edited\n")
    (root / "canon/skills/release-notes/references/format.md").write_text("## Added\n## Changed\n## Fixed\n")
    import shutil

    shutil.rmtree(root / ".gemini/skills/release-notes")
    checked = lane(root, "check", "--json")
    assert checked.exit_code == 1
    found = {(f["path"], f["kind"]) for f in json.loads(checked.output)["findings"]}
    assert (".claude/skills/release-notes", "edited") in found
    assert (".agents/skills/release-notes", "stale") in found and (".gemini/skills/release-notes", "missing") in found
    refused = lane(root, "build")
    assert refused.exit_code == 2 and ".claude/skills/release-notes: edited by hand (SKILL.md)" in refused.output
    assert (root / ".claude/skills/release-notes/SKILL.md").read_text() == "edited\n"  # nothing was written
    assert lane(root, "build", "--force").exit_code == 0 and lane(root, "check").exit_code == 0


def test_a_removed_canon_skill_is_removed_and_a_folder_lane_did_not_write_is_left_alone(repo: Path) -> None:  # noqa: F811
    root = with_skill(repo)
    lane(root, "build")
    write(root, ".claude/skills/mine/SKILL.md", "---\nname: mine\ndescription: Mine.\n---\nx\n")
    import shutil

    shutil.rmtree(root / "canon/skills/release-notes")
    assert lane(root, "check").exit_code == 1
    built = lane(root, "build", "--json")
    removed = [f["path"] for f in json.loads(built.output)["files"] if f["action"] == "removed"]
    assert removed == [f"{place}/release-notes" for place in PLACES]
    assert (root / ".claude/skills/mine/SKILL.md").exists() and lane(root, "check").exit_code == 0


def test_a_canon_skill_that_breaks_the_format_is_a_problem_at_its_line(repo: Path) -> None:  # noqa: F811
    write(repo, "canon/skills/Notes/SKILL.md", "---\nname: Notes\ndescription: x\n---\nx\n")
    result = lane(repo, "build")
    assert result.exit_code == 2 and "canon/skills/Notes/SKILL.md:2:7: name 'Notes': only lower-case letters" in result.output
