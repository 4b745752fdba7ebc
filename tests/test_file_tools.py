"""lane's own file tools (`builtin: files`), on real files in a temporary project.

What an agent can do with them (read, write, list, search, with their caps), and
what it can never do: leave the toolset root by `..`, an absolute path or a
symlink, touch the project's run store or its own definition, or step outside
its lane's globs. Every refusal is checked twice, by `out_of_lane` and by
`invoke` called directly, and after a refused write nothing outside has changed.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from lane.errors import ToolError
from lane.tools import files
from lane.tools.base import Lane, Tool, ToolArgsInvalid, ToolContext
from lane.tools.files import file_tools


@dataclass(frozen=True)
class LanedContext(ToolContext):
    """A context that carries the agent's lane, as the engine's may one day."""

    lane: Lane = Lane()


def tools(project: Path, root: str = "data", **kw: Any) -> dict[str, Tool]:
    return {t.name.removeprefix("files."): t for t in file_tools("files", Path(root), project, **kw)}


def call(tool: Tool, args: dict[str, Any], project: Path, lane: Lane | None = None) -> Any:
    ctx = LanedContext("run", "step", "call", "key", project, lane or Lane())
    return asyncio.run(tool.invoke(args, ctx))


def snapshot(top: Path) -> dict[str, bytes | str]:
    """Every path under top (symlinks not followed) with its content or link target."""
    shot: dict[str, bytes | str] = {}
    for folder, dirs, names, _ in os.fwalk(top):
        for name in dirs + names:
            path = Path(folder, name)
            shot[str(path)] = os.readlink(path) if path.is_symlink() else path.read_bytes() if path.is_file() else "dir"
    return shot


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """proj/ with a data/ root; secrets beside the root and outside the project, and symlinks out."""
    proj, outside = tmp_path / "proj", tmp_path / "outside"
    (proj / "data" / "notes").mkdir(parents=True)
    (proj / ".lane").mkdir()
    (proj / ".lane" / "lane.db").write_text("the run store, with a needle")
    (proj / "lane.yaml").write_text("project: p\n")
    (proj / "secret.txt").write_text("beside the root")
    outside.mkdir()
    (outside / "secret.txt").write_text("outside, a needle")
    (proj / "data" / "notes" / "a.md").write_text("# A\nfirst Needle\nsecond\n")
    (proj / "data" / "leak.txt").symlink_to(outside / "secret.txt")
    (proj / "data" / "out").symlink_to(outside, target_is_directory=True)
    (proj / "store").symlink_to(proj / ".lane", target_is_directory=True)
    return proj


def test_four_tools_with_their_effects_and_closed_schemas(project: Path) -> None:
    found = tools(project)
    assert sorted(found) == ["list", "read", "search", "write"]
    assert {n: (t.effect, t.idempotent) for n, t in found.items()} == {
        "read": ("read", True), "write": ("write", True), "list": ("read", True), "search": ("read", True),
    }
    write = found["write"].parameters
    assert write["required"] == ["path", "content"] and write["additionalProperties"] is False
    assert "data/" in found["read"].description


def test_read_returns_text_and_honours_offset_limit_and_the_byte_cap(project: Path) -> None:
    read = tools(project)["read"]
    assert call(read, {"path": "notes/a.md"}, project) == {"path": "notes/a.md", "text": "# A\nfirst Needle\nsecond\n", "truncated": False}
    assert call(read, {"path": "./notes//a.md", "offset": 1, "limit": 1}, project)["text"] == "first Needle\n"
    assert call(read, {"path": "notes/a.md", "offset": 1, "limit": 1}, project)["truncated"] is True
    assert call(read, {"path": "notes/a.md", "offset": 9}, project) == {"path": "notes/a.md", "text": "", "truncated": False}
    capped = call(tools(project, max_bytes=6)["read"], {"path": "notes/a.md"}, project)
    assert capped == {"path": "notes/a.md", "text": "# A\n", "truncated": True}


def test_read_of_a_binary_file_a_folder_or_nothing_is_a_clear_error(project: Path) -> None:
    read = tools(project)["read"]
    (project / "data" / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    (project / "data" / "zeros.txt").write_bytes(b"text\x00more")
    for path in ("logo.png", "zeros.txt"):
        with pytest.raises(ToolError, match=f"'{path}' is not UTF-8 text"):
            call(read, {"path": path}, project)
    with pytest.raises(ToolError, match="'notes': not a file"):
        call(read, {"path": "notes"}, project)
    with pytest.raises(ToolError, match="'nope.md' does not exist in data/"):
        call(read, {"path": "nope.md"}, project)


def test_write_creates_folders_and_replaces_the_file_whole(project: Path) -> None:
    write = tools(project)["write"]
    assert call(write, {"path": "new/deep/b.md", "content": "héllo"}, project) == {"path": "new/deep/b.md", "bytes": 6}
    assert (project / "data" / "new" / "deep" / "b.md").read_text() == "héllo"
    # A hard link keeps the old content: the new text went to a new file renamed over the name, never written in place.
    target, twin = project / "data" / "notes" / "a.md", project / "data" / "twin.md"
    os.link(target, twin)
    call(write, {"path": "notes/a.md", "content": "new"}, project)
    assert (target.read_text(), twin.read_text()) == ("new", "# A\nfirst Needle\nsecond\n")
    assert sorted(os.listdir(target.parent)) == ["a.md"]  # no temporary file left behind


def test_a_failed_write_leaves_no_temporary_file(project: Path) -> None:
    with pytest.raises(ToolError, match="'notes'"):
        call(tools(project)["write"], {"path": "notes", "content": "x"}, project)
    (project / "data" / "notes" / "sub").mkdir()
    with pytest.raises(ToolError, match="'notes/sub'"):
        call(tools(project)["write"], {"path": "notes/sub", "content": "x"}, project)
    assert sorted(os.listdir(project / "data" / "notes")) == ["a.md", "sub"]


def test_list_is_sorted_with_kinds_and_sizes_and_hides_what_leaves_the_root(project: Path) -> None:
    listing = tools(project)["list"]
    (project / "data" / "inner").symlink_to(project / "data" / "notes")  # a symlink inside the root is fine
    assert call(listing, {}, project) == {
        "path": ".",
        "entries": [
            {"name": "inner", "kind": "dir", "bytes": None},
            {"name": "notes", "kind": "dir", "bytes": None},
        ],
        "truncated": False,
    }
    assert call(listing, {"path": "notes", "pattern": "*.md"}, project)["entries"] == [{"name": "a.md", "kind": "file", "bytes": 24}]
    assert call(listing, {"path": "notes", "pattern": "*.txt"}, project)["entries"] == []


def test_list_is_capped(project: Path) -> None:
    many = project / "data" / "many"
    many.mkdir()
    for i in range(files.MAX_ENTRIES + 5):
        (many / f"{i:04}.txt").touch()
    result = call(tools(project)["list"], {"path": "many"}, project)
    assert result["truncated"] is True and len(result["entries"]) == files.MAX_ENTRIES
    assert result["entries"][0]["name"] == "0000.txt"


def test_search_finds_lines_in_any_case_and_skips_binaries_and_symlinks_out(project: Path) -> None:
    search = tools(project)["search"]
    (project / "data" / "notes" / "b.txt").write_text("no\nNEEDLE twice needle\n")
    (project / "data" / "blob.bin").write_bytes(b"needle\x00\xff")
    assert call(search, {"query": "needle"}, project) == {
        "matches": [
            {"path": "notes/a.md", "line": 2, "text": "first Needle"},
            {"path": "notes/b.txt", "line": 2, "text": "NEEDLE twice needle"},
        ],
        "truncated": False,
    }
    assert call(search, {"query": "needle", "path": "notes", "glob": "*.md"}, project)["matches"] == [
        {"path": "notes/a.md", "line": 2, "text": "first Needle"},
    ]


def test_search_is_capped(project: Path) -> None:
    (project / "data" / "hay.txt").write_text("needle\n" * (files.MAX_MATCHES + 50))
    result = call(tools(project)["search"], {"query": "NEEDLE", "glob": "hay.*"}, project)
    assert result["truncated"] is True and len(result["matches"]) == files.MAX_MATCHES


def test_search_and_list_of_the_project_skip_the_run_store(project: Path) -> None:
    found = tools(project, root=".")
    assert call(found["search"], {"query": "needle"}, project)["matches"] == [
        {"path": "data/notes/a.md", "line": 2, "text": "first Needle"},
    ]
    names = [e["name"] for e in call(found["list"], {}, project)["entries"]]
    assert names == ["data", "lane.yaml", "secret.txt"]  # not .lane, nor store/ (a symlink to it)


REFUSED = [
    # root, tool, path, what the reason says
    ("data", "read", "../secret.txt", "leaves the toolset root data/"),
    ("data", "write", "../secret.txt", "leaves the toolset root data/"),
    ("data", "write", "a/../../secret.txt", "leaves the toolset root data/"),
    ("data", "read", "/etc/passwd", "is absolute"),
    ("data", "write", "{outside}/new.txt", "is absolute"),
    ("data", "read", "leak.txt", "through a symlink"),
    ("data", "write", "leak.txt", "through a symlink"),
    ("data", "read", "out/secret.txt", "through a symlink"),
    ("data", "write", "out/new.txt", "through a symlink"),
    ("data", "write", "out/sub/new.txt", "through a symlink"),
    ("data", "list", "out", "through a symlink"),
    ("data", "search", "out", "through a symlink"),
    ("data", "write", "ok\x00.txt", "NUL byte"),
    (".", "read", ".lane/lane.db", ".lane/ folder"),
    (".", "write", ".lane/lane.db", ".lane/ folder"),
    (".", "write", "./.LANE/lane.db", ".lane/ folder"),
    (".", "read", "store/lane.db", ".lane/ folder"),
    (".", "list", ".lane", ".lane/ folder"),
    (".", "write", "lane.yaml", "project's own definition"),
    (".", "write", "agents/x.md", "project's own definition"),
    (".", "write", "runbooks/y.yaml", "project's own definition"),
]


@pytest.mark.parametrize(("root", "verb", "path", "reason"), REFUSED)
def test_refused_by_out_of_lane_and_by_invoke(project: Path, root: str, verb: str, path: str, reason: str) -> None:
    path = path.format(outside=project.parent / "outside")
    tool = tools(project, root=root)[verb]
    args = {"path": path, **({"content": "pwned"} if verb == "write" else {"query": "x"} if verb == "search" else {})}
    before = snapshot(project.parent)
    refusal = tool.out_of_lane(args, Lane(), project)
    assert refusal is not None and reason in refusal
    with pytest.raises(PermissionError, match=reason.replace(".", r"\.")):
        call(tool, args, project)
    assert snapshot(project.parent) == before


def test_control_files_may_be_read_but_not_written(project: Path) -> None:
    found = tools(project, root=".")
    assert found["read"].out_of_lane({"path": "lane.yaml"}, Lane(), project) is None
    assert call(found["read"], {"path": "lane.yaml"}, project)["text"] == "project: p\n"
    assert found["write"].out_of_lane({"path": "agentsx/ok.md", "content": ""}, Lane(), project) is None


def test_a_lane_of_globs_admits_only_matching_paths(project: Path) -> None:
    inbox = Lane(agent="triager", paths=("data/inbox/**",))
    (project / "data" / "inbox").mkdir()
    (project / "data" / "inbox" / "1.eml").write_text("Subject: hi\n")
    for root, prefix in ((".", "data/"), ("data", "")):
        found = tools(project, root=root)
        refusal = found["read"].out_of_lane({"path": f"{prefix}kb/a.md"}, inbox, project)
        assert refusal == f"path '{prefix}kb/a.md' is outside this agent's lane (data/inbox/**); use a path matching one of them"
        with pytest.raises(PermissionError, match="outside this agent's lane"):
            call(found["write"], {"path": f"{prefix}kb/a.md", "content": "x"}, project, inbox)
        assert not (project / "data" / "kb").exists()
        assert found["read"].out_of_lane({"path": f"{prefix}inbox/1.eml"}, inbox, project) is None
        assert call(found["read"], {"path": f"{prefix}inbox/1.eml"}, project, inbox)["text"] == "Subject: hi\n"
        assert call(found["list"], {"path": f"{prefix}inbox"}, project, inbox)["entries"][0]["name"] == "1.eml"


def test_a_symlink_inside_the_lane_cannot_reach_past_its_globs(project: Path) -> None:
    (project / "data" / "inbox").mkdir()
    (project / "data" / "inbox" / "kb").symlink_to(project / "data" / "notes", target_is_directory=True)
    refusal = tools(project)["read"].out_of_lane({"path": "inbox/kb/a.md"}, Lane(paths=("data/inbox/**",)), project)
    assert refusal is not None and "outside this agent's lane" in refusal


def test_a_symlink_swapped_in_after_the_check_is_not_followed(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # As if each symlink had been a plain file or folder when the path was checked.
    monkeypatch.setattr(files, "_real", lambda path: Path(os.path.normpath(path)))
    found = tools(project)
    before = snapshot(project.parent / "outside")
    with pytest.raises(ToolError, match="'leak.txt'"):
        call(found["read"], {"path": "leak.txt"}, project)
    with pytest.raises(ToolError, match="'out/new.txt'"):
        call(found["write"], {"path": "out/new.txt", "content": "pwned"}, project)
    with pytest.raises(ToolError, match="'out'"):
        call(found["list"], {"path": "out"}, project)
    call(found["write"], {"path": "leak.txt", "content": "mine"}, project)  # replaces the link, not what it points to
    assert snapshot(project.parent / "outside") == before
    assert not (project / "data" / "leak.txt").is_symlink()


def test_subjects_are_normalised_paths_relative_to_the_root(project: Path) -> None:
    found = tools(project)
    assert found["read"].subjects({"path": "./notes//x/../a.md"}) == ["notes/a.md"]
    assert found["write"].subjects({"path": "b.md", "content": "x"}) == ["b.md"]
    assert found["list"].subjects({}) == ["."]
    assert found["search"].subjects({"query": "q", "path": "notes/"}) == ["notes"]


@pytest.mark.parametrize(("verb", "args", "message"), [
    ("read", {}, "arguments: 'path' is a required property"),
    ("read", {"path": "a", "mode": "r"}, "arguments: Additional properties are not allowed ('mode' was unexpected)"),
    ("read", {"path": 3}, "path: 3 is not of type 'string'"),
    ("read", {"path": ""}, "path: '' should be non-empty"),
    ("read", {"path": "a", "offset": -1}, "offset: -1 is less than the minimum of 0"),
    ("read", {"path": "a", "limit": True}, "limit: True is not of type 'integer'"),
    ("write", {"path": "a"}, "arguments: 'content' is a required property"),
    ("search", {"query": ""}, "query: '' should be non-empty"),
])
def test_check_args_names_what_is_wrong(project: Path, verb: str, args: dict[str, Any], message: str) -> None:
    tool = tools(project)[verb]
    with pytest.raises(ToolArgsInvalid) as caught:
        tool.check_args(args)
    assert str(caught.value) == message
    with pytest.raises(ToolArgsInvalid):
        call(tool, args, project)


def test_optional_nulls_are_accepted(project: Path) -> None:
    assert tools(project)["read"].check_args({"path": "a", "offset": None, "limit": None}) == {"path": "a"}
