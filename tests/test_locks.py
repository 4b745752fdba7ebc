"""Pre-build locks on real repositories: `lane lock new`, `check` and `sign`."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lane.cli import locks as cli
from lane.coding.locks import LockHasHoles, check_lock, sign_lock

runner = CliRunner()
TODAY = date(2026, 1, 1)
COMPLETE = """\
# Lock: dash

## Canonical alignment

Follows the routing rule in canon/ROUTING.md §2.

## Scope

### IN

- Serve /dashboard from the new route behind the new_dashboard flag

### OUT

- The old dashboard's templates stay as they are

### Single surgical change

Add the route and the flag check in web/routes.py.

## Invariants

- Users without the flag see the old dashboard, unchanged
- [x] covered by the route tests

## Blast radius

web/routes.py only; a mistake shows the old dashboard to flagged users.

## Interface contract

`def dashboard(request) -> list[Widget]`, with widgets as dict[str, Widget], and:

```python
WIDGETS = {"chart": [1, 2]}  # [not a placeholder]: code
```

## Sunset criterion

100% of users on the new route for 14 days, zero errors.

## Kill date

2027-01-31
"""


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    (tmp_path / "canon").mkdir()
    (tmp_path / "canon" / "ROUTING.md").write_text("---\ntier: 1\n---\nRoutes live in web/routes.py.\n")  # the lock cites it
    return tmp_path


def write_lock(repo: Path, text: str, feature: str = "dash") -> Path:
    path = repo / "features" / feature / "LOCK.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def line_of(text: str, needle: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), 1) if needle in line)


def test_a_new_lock_is_the_template_and_fails_check_on_every_gate(repo: Path) -> None:
    made = runner.invoke(cli.app, ["new", "dash", "-p", str(repo)])
    assert made.exit_code == 0, made.output
    text = (repo / "features/dash/LOCK.md").read_text()
    for heading in ("## Canonical alignment", "### IN", "### OUT", "### Single surgical change", "## Invariants",
                    "## Blast radius", "## Interface contract", "## Sunset criterion", "## Kill date"):  # fmt: skip
        assert heading in text

    checked = runner.invoke(cli.app, ["check", "dash", "-p", str(repo), "--today", "2026-01-01"])
    assert checked.exit_code == 1
    gates = [line.split("gate '")[1].split("'")[0] for line in checked.stdout.splitlines()]
    assert gates == ["Canonical alignment", "Scope / IN", "Scope / OUT", "Scope / Single surgical change", "Invariants",
                     "Blast radius", "Interface contract", "Sunset criterion", "Kill date"]  # fmt: skip
    assert f"features/dash/LOCK.md:{line_of(text, '[YYYY-MM-DD]')}: gate 'Kill date' is a placeholder [YYYY-MM-DD]" in checked.stdout
    assert "9 holes" in checked.stderr

    again = runner.invoke(cli.app, ["new", "dash", "-p", str(repo)])
    assert again.exit_code == 2 and "exists already" in again.stderr
    assert (repo / "features/dash/LOCK.md").read_text() == text


def test_a_complete_lock_passes_and_says_it_is_not_signed(repo: Path) -> None:
    write_lock(repo, COMPLETE)
    result = runner.invoke(cli.app, ["check", "dash", "-p", str(repo), "--today", "2026-01-01"])
    assert result.exit_code == 0, result.output
    assert "complete; not signed yet: lane lock sign dash --by NAME" in result.stdout


def _replace(old: str, new: str) -> Callable[[str], str]:
    def edit(text: str) -> str:
        assert old in text
        return text.replace(old, new, 1)

    return edit


HOLES = {  # edit of the complete lock -> (gate, what check says, the line it points at: a needle in the edited text)
    "blank gate": (_replace("- Users without the flag see the old dashboard, unchanged\n- [x] covered by the route tests\n", ""),
                   "Invariants", "is blank", "## Invariants"),
    "TBD": (_replace("web/routes.py only;", "TBD, probably web/routes.py;"), "Blast radius", "is TBD", "TBD, probably"),
    "bracketed": (_replace("100% of users", "[when can it go?] 100% of users"), "Sunset criterion",
                  "is a placeholder [when can it go?]", "[when can it go?]"),
    "empty OUT list": (_replace("- The old dashboard's templates stay as they are\n", ""), "Scope / OUT",
                       "is blank: an empty OUT list is an error", "### OUT"),
    "OUT says none": (_replace("- The old dashboard's templates stay as they are", "- none"), "Scope / OUT",
                      "is empty: an empty OUT list is an error", "- none"),
    "no citation": (_replace("canon/ROUTING.md §2", "the routing rule"), "Canonical alignment", "has no citation", "## Canonical alignment"),
    "past kill date": (_replace("2027-01-31", "2025-12-01"), "Kill date", "has passed: 2025-12-01 is 31 days ago", "2025-12-01"),
    "kill date not a date": (_replace("2027-01-31", "end of next quarter"), "Kill date", "is not a date: write it as YYYY-MM-DD", "end of next"),
    "missing gate": (_replace("## Blast radius\n", "## Reach\n"), "Blast radius", "is missing: add a heading '## Blast radius'", "# Lock"),
    "only an empty fence": (_replace("- Users without the flag see the old dashboard, unchanged\n- [x] covered by the route tests\n", "```\n```\n"),
                            "Invariants", "is blank", "## Invariants"),
    "only a comment": (_replace("- Users without the flag see the old dashboard, unchanged\n- [x] covered by the route tests\n",
                                "<!-- fill this in -->\n"), "Invariants", "is blank", "## Invariants"),
    "TBD in backticks": (_replace("web/routes.py only;", "`TBD` only;"), "Blast radius", "is TBD", "`TBD` only"),
    "TODO": (_replace("web/routes.py only;", "TODO: find out;"), "Blast radius", "is TODO", "TODO: find"),
    "XXX": (_replace("web/routes.py only;", "web/routes.py XXX;"), "Blast radius", "is XXX", "routes.py XXX"),
    "???": (_replace("web/routes.py only;", "web/routes.py and ???;"), "Blast radius", "is ???", "and ???"),
    "T.B.D.": (_replace("web/routes.py only;", "T.B.D. later;"), "Blast radius", "is T.B.D.", "T.B.D. later"),
    "only an ellipsis": (_replace("- The old dashboard's templates stay as they are", "- ..."), "Scope / OUT", "is only an ellipsis", "- ..."),
    "angle placeholder": (_replace("100% of users", "<when can it go> 100% of users"), "Sunset criterion",
                          "is a placeholder <when can it go>", "<when can it go>"),
    "cited canon missing": (_replace("canon/ROUTING.md §2", "canon/ROUTES.md §2"), "Canonical alignment",
                            "cites canon/ROUTES.md, which does not exist", "canon/ROUTES.md"),
    "a second past date": (_replace("2027-01-31", "2027-01-31, or 2025-11-30 at the latest"), "Kill date",
                           "has passed: 2025-11-30 is 32 days ago", "2025-11-30"),
    "two surgical changes": (_replace("Add the route and the flag check in web/routes.py.", "- Add the route\n- Rewrite the cache"),
                             "Scope / Single surgical change", "lists 2 changes", "### Single surgical change"),
}  # fmt: skip


@pytest.mark.parametrize("kind", list(HOLES))
def test_check_names_each_kind_of_hole_with_its_gate_and_line(repo: Path, kind: str) -> None:
    edit, gate, says, needle = HOLES[kind]
    text = edit(COMPLETE)
    write_lock(repo, text)

    result = runner.invoke(cli.app, ["check", "dash", "-p", str(repo), "--today", "2026-01-01"])
    assert result.exit_code == 1, result.output
    assert result.stdout.splitlines()[0].startswith(f"features/dash/LOCK.md:{line_of(text, needle)}: gate '{gate}' {says}")
    assert len(result.stdout.splitlines()) == 1  # the one hole, nothing else flagged

    report = check_lock(repo, "dash", today=TODAY)
    assert not report.ok and [(h.gate, h.line) for h in report.holes] == [(gate, line_of(text, needle))]


def test_a_signed_lock_edited_afterwards_loses_its_sign_off(repo: Path) -> None:
    path = write_lock(repo, COMPLETE)
    signed = runner.invoke(cli.app, ["sign", "dash", "--by", "Ana Lima", "-p", str(repo), "--today", "2026-01-01"])
    assert signed.exit_code == 0, signed.output
    record = json.loads((repo / "features/dash/LOCK.signoff.json").read_text())
    assert record["signed_by"] == "Ana Lima" and record["signed_at"].endswith("Z")
    assert len(record["sha256"]) == 64

    unchanged = runner.invoke(cli.app, ["check", "dash", "-p", str(repo), "--today", "2026-01-01"])
    assert unchanged.exit_code == 0
    assert f"signed by Ana Lima at {record['signed_at']}" in unchanged.stdout

    path.write_text(COMPLETE.replace("zero errors", "zero errors for a week"))  # still complete: only the edit is wrong
    edited = runner.invoke(cli.app, ["check", "dash", "-p", str(repo), "--today", "2026-01-01", "--json"])
    assert edited.exit_code == 1
    assert json.loads(edited.stdout) | {"holes": []} == {
        "feature": "dash", "path": "features/dash/LOCK.md", "holes": [], "signed_by": "Ana Lima",
        "signed_at": record["signed_at"], "void": True, "ok": False, "verified": None,
        "verification": "a record, not a proof: name locks.allowed_signers in lane.yaml to have sign-offs signed with SSH keys",
    }  # fmt: skip
    text = runner.invoke(cli.app, ["check", "dash", "-p", str(repo), "--today", "2026-01-01"])
    assert text.exit_code == 1
    assert "sign-off by Ana Lima" in text.stdout and "is void" in text.stdout
    assert "sign it again: lane lock sign dash --by NAME" in text.stdout

    resigned = sign_lock(repo, "dash", "Bo", today=TODAY, now=datetime(2026, 1, 2, 9, 30, tzinfo=UTC))
    assert resigned.signed_at == "2026-01-02T09:30:00Z"
    report = check_lock(repo, "dash", today=TODAY)
    assert report.ok and report.signed and report.signed_by == "Bo"


def test_sign_refuses_a_lock_with_holes(repo: Path) -> None:
    write_lock(repo, COMPLETE.replace("2027-01-31", "TBD"))
    result = runner.invoke(cli.app, ["sign", "dash", "--by", "Ana", "-p", str(repo), "--today", "2026-01-01"])
    assert result.exit_code == 1
    assert "gate 'Kill date' is TBD" in result.stdout and "fill them before signing" in result.stderr
    assert not (repo / "features/dash/LOCK.signoff.json").exists()
    with pytest.raises(LockHasHoles):
        sign_lock(repo, "dash", "Ana", today=TODAY)


def test_usage_errors_exit_2_and_say_how_to_fix_them(repo: Path) -> None:
    missing = runner.invoke(cli.app, ["check", "nope", "-p", str(repo)])
    assert missing.exit_code == 2 and "lane lock new nope" in missing.stderr
    bad_name = runner.invoke(cli.app, ["new", "../escape", "-p", str(repo)])
    assert bad_name.exit_code == 2 and "invalid feature name" in bad_name.stderr
    assert not (repo.parent / "escape").exists()
    write_lock(repo, COMPLETE)
    nobody = runner.invoke(cli.app, ["sign", "dash", "--by", " ", "-p", str(repo)])
    assert nobody.exit_code == 2 and "--by" in nobody.stderr


def ssh_key(folder: Path, name: str) -> tuple[Path, str]:
    key = folder / name
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(key)], check=True, capture_output=True)
    return key, (folder / f"{name}.pub").read_text().strip()


def test_an_ssh_signed_sign_off_cannot_be_forged_by_editing_a_file(repo: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    keys = tmp_path_factory.mktemp("keys")
    ann, ann_public = ssh_key(keys, "ann")
    eve, _ = ssh_key(keys, "eve")
    (repo / "allowed_signers").write_text(f'ann@example.com namespaces="lane-lock" {ann_public}\n')
    (repo / "lane.yaml").write_text("project: shop\nroles: {}\nlocks: {allowed_signers: allowed_signers}\n")
    path = write_lock(repo, COMPLETE)
    uncommitted = runner.invoke(cli.app, ["sign", "dash", "--by", "ann@example.com", "--key", str(ann), "-p", str(repo), "--today", "2026-01-01"])
    assert uncommitted.exit_code == 2 and "allowed_signers is not committed" in uncommitted.output
    for args in (["add", "-A"], ["-c", "user.email=t@example.com", "-c", "user.name=T", "commit", "-qm", "signers"]):
        subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)

    unsigned = runner.invoke(cli.app, ["sign", "dash", "--by", "ann@example.com", "-p", str(repo), "--today", "2026-01-01"])
    assert unsigned.exit_code == 2 and "sign with your SSH key, --key" in unsigned.output
    as_ann = runner.invoke(cli.app, ["sign", "dash", "--by", "ann@example.com", "--key", str(eve), "-p", str(repo), "--today", "2026-01-01"])
    assert as_ann.exit_code == 2 and "is not allowed to sign locks as ann@example.com" in as_ann.output  # eve's key, ann's name
    signed = runner.invoke(cli.app, ["sign", "dash", "--by", "ann@example.com", "--key", str(ann), "-p", str(repo), "--today", "2026-01-01"])
    assert signed.exit_code == 0 and "with an SSH signature" in signed.output
    checked = runner.invoke(cli.app, ["check", "dash", "-p", str(repo), "--today", "2026-01-01"])
    assert checked.exit_code == 0 and "SSH signature verified: ann@example.com is an allowed signer" in checked.output

    signoff = path.with_name("LOCK.signoff.json")
    record = json.loads(signoff.read_text())
    _, eve_public = ssh_key(keys, "eve2")
    signers = (repo / "allowed_signers").read_text()
    (repo / "allowed_signers").write_text(signers + f'ann@example.com namespaces="lane-lock" {eve_public}\n')  # eve adds her key
    tampered = check_lock(repo, "dash", today=TODAY)
    assert tampered.verified is False and "allowed_signers has uncommitted changes" in str(tampered.verification)
    (repo / "allowed_signers").write_text(signers)
    signoff.write_text(json.dumps({**record, "signed_at": "2020-01-01T00:00:00Z"}))  # the time is signed too
    assert check_lock(repo, "dash", today=TODAY).verified is False
    signoff.write_text(json.dumps({**record, "ssh_signature": "é"}))  # not a signature: a one-line answer, not a crash
    assert "not an armored SSH signature" in str(check_lock(repo, "dash", today=TODAY).verification)
    signoff.write_text(json.dumps({**record, "signed_by": "bob@example.com"}))  # sign as someone else by editing the file
    forged = check_lock(repo, "dash", today=TODAY)
    assert forged.verified is False and not forged.ok and "does not verify as bob@example.com" in str(forged.verification)

    path.write_text(COMPLETE.replace("zero errors", "zero errors for a week"))  # change the lock and re-hash it
    import hashlib

    signoff.write_text(json.dumps({**record, "sha256": hashlib.sha256(path.read_text().encode()).hexdigest()}))
    rehashed = check_lock(repo, "dash", today=TODAY)
    assert not rehashed.void and rehashed.verified is False and not rehashed.ok  # the hash matches; the signature does not
    signoff.write_text(json.dumps({k: v for k, v in record.items() if k != "ssh_signature"}))
    assert "has no SSH signature" in str(check_lock(repo, "dash", today=TODAY).verification)
