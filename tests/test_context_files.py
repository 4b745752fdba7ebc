"""`lane context build` and `lane context check`: canon/*.md rendered into AGENTS.md, CLAUDE.md, Cursor rules
and Copilot instructions, with hand-written text kept and hand edits, stale files and oversize files caught."""

from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path

import pytest
from ruamel.yaml import YAML
from typer.testing import CliRunner, Result

from lane.cli import context

VOICE = """\
    ---
    tier: 1
    ---
    # Voice

    Write plainly. Short sentences.
"""
REFUNDS = """\
    ---
    tier: 2
    read_when: When a customer asks for a refund.
    globs: ["**/*.py", src/billing/**]
    ---
    Refunds over 100 EUR need a person's approval.
"""
CLAUDE_ONLY = """\
    ---
    tier: 1
    title: Claude notes
    tools: [claude]
    ---
    Use sub-agents only for searches.
"""
GENERATED = [
    "AGENTS.md", "CLAUDE.md", ".github/copilot-instructions.md",
    ".cursor/rules/lane-canon.mdc", ".cursor/rules/lane-canon-refunds.mdc",
]


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A real git repository (no lane.yaml) with three canon files."""
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    subprocess.run(["git", "-C", str(tmp_path), "config", "user.email", "dev@example.com"], check=True)
    subprocess.run(["git", "-C", str(tmp_path), "config", "user.name", "Dev"], check=True)
    write(tmp_path, "canon/voice.md", VOICE)
    write(tmp_path, "canon/refunds.md", REFUNDS)
    write(tmp_path, "canon/claude-notes.md", CLAUDE_ONLY)
    return tmp_path


def write(root: Path, name: str, text: str) -> None:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))


def lane(repo: Path, *args: str) -> Result:
    return CliRunner().invoke(context.app, [*args, "--project", str(repo)])


def snapshot(repo: Path) -> dict[str, str]:
    return {name: (repo / name).read_text() for name in GENERATED}


def front_matter(text: str) -> dict[str, object]:
    assert text.startswith("---\n")
    return dict(YAML(typ="safe", pure=True).load(text[4: text.index("\n---\n", 3)]))


def test_build_then_check_passes_and_a_second_build_changes_nothing(repo: Path) -> None:
    built = lane(repo, "build")
    assert built.exit_code == 0, built.output
    assert all(f"created   {name}" in built.output for name in GENERATED)
    assert lane(repo, "check").exit_code == 0
    first = snapshot(repo)
    again = lane(repo, "build")
    assert again.exit_code == 0 and "created" not in again.output and "updated" not in again.output
    assert all(f"unchanged {name}" in again.output for name in GENERATED)
    assert snapshot(repo) == first


def test_agents_md_holds_tier_1_inline_and_tier_2_as_an_index_and_claude_md_imports_it(repo: Path) -> None:
    lane(repo, "build")
    agents = (repo / "AGENTS.md").read_text()
    assert "## Voice\n<!-- canon/voice.md -->\n\nWrite plainly. Short sentences." in agents
    assert "- Read `canon/refunds.md` (Refunds) when a customer asks for a refund." in agents
    assert "Refunds over 100 EUR" not in agents  # tier 2 is read on its trigger, not loaded up front
    assert "sub-agents" not in agents  # Claude-only canon goes to CLAUDE.md alone
    claude = (repo / "CLAUDE.md").read_text()
    assert "\n@AGENTS.md\n" in claude and "Use sub-agents only for searches." in claude
    assert "Write plainly" not in claude  # imported, not copied
    copilot = (repo / ".github/copilot-instructions.md").read_text()
    assert "Write plainly. Short sentences." in copilot and "canon/refunds.md" in copilot


def test_cursor_rules_have_valid_front_matter_with_exactly_cursors_keys(repo: Path) -> None:
    lane(repo, "build")
    always = (repo / ".cursor/rules/lane-canon.mdc").read_text()
    assert front_matter(always) == {
        "description": "Project canon, always applied (rendered by lane from canon/*.md)", "globs": None, "alwaysApply": True}
    assert "Write plainly" in always and "sub-agents" not in always
    refunds = (repo / ".cursor/rules/lane-canon-refunds.mdc").read_text()
    # Cursor splits globs on commas and keeps quotes as part of a pattern: bare, and a pattern YAML can read unquoted first
    assert "\nglobs: src/billing/**,**/*.py\n" in refunds
    assert front_matter(refunds) == {
        "description": "When a customer asks for a refund.", "globs": "src/billing/**,**/*.py", "alwaysApply": False}
    assert "Refunds over 100 EUR need a person's approval." in refunds


def test_a_hand_edit_inside_the_generated_part_fails_check_and_build_keeps_it_unless_forced(repo: Path) -> None:
    lane(repo, "build")
    agents = repo / "AGENTS.md"
    lines = agents.read_text().splitlines(keepends=True)
    edited_line = next(i for i, line in enumerate(lines) if line.startswith("Write plainly")) + 1
    lines[edited_line - 1] = "Write however you like.\n"
    agents.write_text("".join(lines))
    checked = lane(repo, "check")
    assert checked.exit_code == 1
    assert f"AGENTS.md:{edited_line}: edited inside the generated part" in checked.stdout
    refused = lane(repo, "build")
    assert refused.exit_code == 2 and "nothing was written" in refused.output
    assert "Write however you like." in agents.read_text()
    forced = lane(repo, "build", "--force")
    assert forced.exit_code == 0 and "updated   AGENTS.md" in forced.output
    assert "Write however you like." not in agents.read_text()
    assert lane(repo, "check").exit_code == 0


def test_an_edit_to_a_generated_cursor_front_matter_counts_as_a_hand_edit(repo: Path) -> None:
    lane(repo, "build")
    rule = repo / ".cursor/rules/lane-canon-refunds.mdc"
    rule.write_text(rule.read_text().replace("alwaysApply: false", "alwaysApply: true"))
    checked = lane(repo, "check")
    assert checked.exit_code == 1
    assert ".cursor/rules/lane-canon-refunds.mdc:4: edited inside the generated part" in checked.stdout


def test_a_changed_canon_file_makes_check_fail_until_rebuilt(repo: Path) -> None:
    lane(repo, "build")
    with (repo / "canon/voice.md").open("a") as f:
        f.write("No jargon.\n")
    checked = lane(repo, "check")
    assert checked.exit_code == 1
    assert "AGENTS.md: stale: canon/voice.md changed; run lane context build" in checked.stdout
    assert ".cursor/rules/lane-canon.mdc: stale: canon/voice.md changed" in checked.stdout
    assert "CLAUDE.md" not in checked.stdout  # it imports AGENTS.md: nothing of voice.md is in it
    rebuilt = lane(repo, "build")
    assert "updated   AGENTS.md" in rebuilt.output and "unchanged CLAUDE.md" in rebuilt.output
    assert "No jargon." in (repo / "AGENTS.md").read_text()
    assert lane(repo, "check").exit_code == 0


def test_check_names_new_and_removed_canon_files(repo: Path) -> None:
    lane(repo, "build")
    (repo / "canon/refunds.md").unlink()
    write(repo, "canon/api.md", "---\ntier: 2\nread_when: you change the public API\n---\nKeep it stable.\n")
    checked = lane(repo, "check", "--json")
    assert checked.exit_code == 1
    report = json.loads(checked.stdout)
    found = {(f["path"], f["kind"]): f["message"] for f in report["findings"]}
    assert report["ok"] is False
    assert found["AGENTS.md", "stale"] == (
        "stale: canon/api.md is new, canon/refunds.md was removed; run lane context build")
    assert found[".cursor/rules/lane-canon-api.mdc", "missing"] == "missing; run lane context build"
    assert (".cursor/rules/lane-canon-refunds.mdc", "stale") in found


def test_hand_written_sections_outside_the_markers_survive_a_rebuild(repo: Path) -> None:
    lane(repo, "build")
    agents = repo / "AGENTS.md"
    agents.write_text("# Our agents guide\n\nAsk Dana before touching billing.\n\n" + agents.read_text()
                      + "\n## Release notes\n\nShip on Tuesdays.\n")
    assert lane(repo, "check").exit_code == 0  # text outside the markers is the person's
    write(repo, "canon/voice.md", VOICE.replace("Short sentences.", "Short sentences, active verbs."))
    assert lane(repo, "build").exit_code == 0
    text = agents.read_text()
    assert text.startswith("# Our agents guide\n\nAsk Dana before touching billing.\n\n<!-- lane:generated:begin")
    assert text.endswith("<!-- lane:generated:end -->\n\n## Release notes\n\nShip on Tuesdays.\n")
    assert "Short sentences, active verbs." in text
    assert lane(repo, "check").exit_code == 0


def test_an_existing_file_without_markers_gets_a_block_appended_after_its_text(repo: Path) -> None:
    (repo / "CLAUDE.md").write_text("# Notes for Claude\n\nRun make test.\n")
    checked = lane(repo, "check")
    assert "CLAUDE.md: has no lane:generated block" in checked.stdout
    built = lane(repo, "build")
    assert built.exit_code == 0
    assert "appended  CLAUDE.md: a generated block after your text" in built.output
    text = (repo / "CLAUDE.md").read_text()
    assert text.startswith("# Notes for Claude\n\nRun make test.\n\n<!-- lane:generated:begin sha256=")
    assert "@AGENTS.md" in text
    assert lane(repo, "check").exit_code == 0


def test_a_cursor_rule_lane_did_not_write_is_never_overwritten(repo: Path) -> None:
    mine = "---\ndescription: my own\nglobs:\nalwaysApply: true\n---\nMine.\n"
    write(repo, ".cursor/rules/lane-canon-refunds.mdc", mine)
    built = lane(repo, "build")
    assert built.exit_code == 2
    assert "lane-canon-refunds.mdc: exists but lane did not write it" in built.output
    assert (repo / ".cursor/rules/lane-canon-refunds.mdc").read_text() == mine
    assert not (repo / "AGENTS.md").exists()  # nothing was written


def test_a_rule_whose_canon_file_is_gone_is_removed_and_the_persons_rules_are_not(repo: Path) -> None:
    write(repo, ".cursor/rules/team.mdc", "---\ndescription: team\nglobs:\nalwaysApply: true\n---\nOurs.\n")
    lane(repo, "build")
    (repo / "canon/refunds.md").unlink()
    built = lane(repo, "build")
    assert "removed   .cursor/rules/lane-canon-refunds.mdc" in built.output
    assert not (repo / ".cursor/rules/lane-canon-refunds.mdc").exists()
    assert (repo / ".cursor/rules/team.mdc").read_text().endswith("Ours.\n")
    assert lane(repo, "check").exit_code == 0


def test_broken_markers_fail_check_and_build(repo: Path) -> None:
    lane(repo, "build")
    agents = repo / "AGENTS.md"
    agents.write_text(agents.read_text().replace("<!-- lane:generated:end -->", ""))
    checked = lane(repo, "check")
    assert checked.exit_code == 1 and "AGENTS.md:1: the lane:generated markers are broken" in checked.stdout
    assert lane(repo, "build").exit_code == 2


def test_files_over_what_a_tool_loads_are_warned_about_with_figures(repo: Path) -> None:
    write(repo, "canon/voice.md", VOICE + "Say it once.\n" * 2600)  # 13 bytes a line: over 32 KiB
    write(repo, "canon/refunds.md", REFUNDS + "- a rule\n" * 520)
    built = lane(repo, "build")
    assert built.exit_code == 0
    size = len((repo / "AGENTS.md").read_bytes())
    expected = f"AGENTS.md: warning: {size:,} bytes; Codex reads at most 32,768 (its project_doc_max_bytes default) and drops the last {size - 32768:,}"
    assert expected in built.output
    checked = lane(repo, "check")
    assert checked.exit_code == 0  # a warning, not a failure
    assert expected in checked.stdout
    lines = len((repo / ".cursor/rules/lane-canon-refunds.mdc").read_text().splitlines())
    assert f".cursor/rules/lane-canon-refunds.mdc: warning: {lines:,} lines; Cursor advises keeping a rule under 500" in checked.stdout
    assert "CLAUDE.md: warning" not in checked.stdout


def test_canon_problems_are_reported_at_their_place_with_exit_2(repo: Path) -> None:
    write(repo, "canon/api.md", "---\ntier: 2\nglobs: [\"**/*.py\"]\n---\nKeep it stable.\n")
    write(repo, "canon/style.md", "---\ntier: 1\ntitel: Style\n---\nBe brief.\n")
    for command in ("build", "check"):
        result = lane(repo, command)
        assert result.exit_code == 2
        assert "canon/api.md:2:1: tier 2 needs 'read_when'" in result.stdout
        assert "canon/api.md:3:8: Cursor reads globs unquoted" in result.stdout
        assert "canon/style.md:3:1: unknown key 'titel' (did you mean 'title'?)" in result.stdout
    assert not (repo / "AGENTS.md").exists()


def test_a_folder_without_canon_is_a_usage_error(tmp_path: Path) -> None:
    result = lane(tmp_path, "check")
    assert result.exit_code == 2
    assert "no canon files in" in result.output and "tier: 1" in result.output


def test_build_json_lists_each_file_and_what_was_done(repo: Path) -> None:
    result = lane(repo, "build", "--json")
    assert result.exit_code == 0
    report = json.loads(result.stdout)
    assert [(f["path"], f["action"]) for f in report["files"]] == [(name, "created") for name in GENERATED]
    assert report["warnings"] == []


def test_claude_md_as_a_link_to_agents_md_is_left_alone(repo: Path) -> None:
    assert lane(repo, "build").exit_code == 0
    (repo / "CLAUDE.md").unlink()
    (repo / "CLAUDE.md").symlink_to("AGENTS.md")
    built = lane(repo, "build", "--json")
    assert built.exit_code == 0
    claude = next(f for f in json.loads(built.output)["files"] if f["path"] == "CLAUDE.md")
    assert claude["action"] == "kept" and (repo / "CLAUDE.md").is_symlink()
    assert lane(repo, "check").exit_code == 0
    again = json.loads(lane(repo, "build", "--json").output)["files"]
    assert next(f for f in again if f["path"] == "AGENTS.md")["action"] == "unchanged"  # no flip-flop
