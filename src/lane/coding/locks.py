"""Pre-build locks: `features/FEATURE/LOCK.md`, its gates, and the sign-off that pins its text.

A lock is Markdown with one `## Gate` heading per gate (Scope holds `### IN`,
`### OUT` and `### Single surgical change`). A gate that is blank, says TBD, or
still holds a `[bracketed]` placeholder from the template is a hole; so is a
Canonical alignment without a citation, an empty OUT list, more than one
surgical change, and a kill date that is not an ISO date or has passed.

The sign-off lives beside the lock in `LOCK.signoff.json` rather than inside it:
the hash then covers LOCK.md byte for byte with nothing to carve out, and signing
never rewrites the file a person is reading.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

from lane.coding import markdown, signing
from lane.errors import LaneError, UsageError

LOCK_FILE = "LOCK.md"
SIGNOFF_FILE = "LOCK.signoff.json"
GATES = (  # (name shown, heading level, heading text)
    ("Canonical alignment", 2, "canonical alignment"),
    ("Scope", 2, "scope"),
    ("Scope / IN", 3, "in"),
    ("Scope / OUT", 3, "out"),
    ("Scope / Single surgical change", 3, "single surgical change"),
    ("Invariants", 2, "invariants"),
    ("Blast radius", 2, "blast radius"),
    ("Interface contract", 2, "interface contract"),
    ("Sunset criterion", 2, "sunset criterion"),
    ("Kill date", 2, "kill date"),
)
TEMPLATE = """\
# Lock: {feature}

Fill every gate before building: replace each [bracketed] hint with the real thing.
`lane lock check {feature}` names what is still open; `lane lock sign {feature} --by NAME` records the sign-off.

## Canonical alignment

[Which canon rule or decision this feature follows, with a citation: canon/FILE.md, a Markdown link, or §section]

## Scope

### IN

- [What this change does, one item a line]

### OUT

- [What it deliberately leaves alone; at least one item]

### Single surgical change

[The one change this lock permits, in one sentence]

## Invariants

- [What must stay true before and after the change]

## Blast radius

[What else this touches (modules, data, users) and how bad a mistake would be]

## Interface contract

[The signatures, commands, payloads or files others rely on, exactly as they will be]

## Sunset criterion

[The observable condition under which this, or what it replaces, can be removed]

## Kill date

[YYYY-MM-DD]
"""
FEATURE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
BULLET = re.compile(r"^\s*(?:[-*+]|\d+[.)])(?:\s+|$)")
TBD = re.compile(r"\bTBD\b|\bT\.B\.D\.?|\bTODO\b|\bFIXME\b|\bXXX\b|\?\?\?", re.IGNORECASE)  # undecided, in any spelling
ELLIPSIS = {"...", "…", ". . ."}  # an item that is only an ellipsis says nothing
# `<name>` left from a template; not an autolink <https://...>, a comment, or inline HTML such as <br> or <code>
ANGLE = re.compile(r"<(?!!--)(?![a-z][a-z0-9+.-]*:)(?!/?(?:br|b|i|em|strong|code|kbd|sub|sup|p|a|details|summary|span)\b)"
                   r"([^<>\n]{1,60})>", re.IGNORECASE)
CANON_CITED = re.compile(r"\bcanon/[^\s)`'\"]+\.md\b")
EMPTY_LINE = re.compile(r"(```|~~~).*|<!--.*?-->")  # a fence's delimiter or a lone comment says nothing
# `[hint]`, but not a link [t](u), a reference [t][r], a checkbox [ ]/[x], a footnote [^1], or an index like list[str]
PLACEHOLDER = re.compile(r"(?<![\w\]`])\[(?![xX ]?\])(?!\^)([^\[\]\n]+)\](?![(\[:])")
CODE_SPAN = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"\[([^\[\]\n]*)\]\([^)\n]*\)")
CITATION = re.compile(r"canon/\S+\.md|\[[^\]\n]+\]\([^)\n]+\)|§|https?://\S+")
ISO_DATE = re.compile(r"\b(\d{4})-(\d{2})-(\d{2})\b")
EMPTY_ITEM = {"", "none", "nothing", "n/a", "na", "-", "—", "nil"}


@dataclass(frozen=True)
class Hole:
    """One open gate, at the 1-based line of its heading or of the offending line."""

    path: str
    line: int
    gate: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: gate '{self.gate}' {self.message}"

    def to_json(self) -> dict[str, object]:
        return {"path": self.path, "line": self.line, "gate": self.gate, "message": self.message}


@dataclass(frozen=True)
class LockReport:
    """What `lane lock check` found: the holes, and the sign-off if any (void when the lock changed since)."""

    feature: str
    path: str
    holes: tuple[Hole, ...]
    signed_by: str | None = None
    signed_at: str | None = None
    void: bool = False
    verified: bool | None = None  # the SSH signature checked against allowed_signers; None: lane.yaml names none
    verification: str | None = None  # why it did not verify, or how it did

    @property
    def signed(self) -> bool:
        return self.signed_by is not None and not self.void and self.verified is not False

    @property
    def ok(self) -> bool:
        return not self.holes and not self.void and self.verified is not False

    def to_json(self) -> dict[str, object]:
        return {
            "feature": self.feature, "path": self.path, "holes": [h.to_json() for h in self.holes],
            "signed_by": self.signed_by, "signed_at": self.signed_at, "void": self.void, "verified": self.verified,
            "verification": self.verification, "ok": self.ok,
        }  # fmt: skip


@dataclass(frozen=True)
class SignOff:
    feature: str
    signed_by: str
    signed_at: str
    sha256: str
    ssh_signature: str | None = None  # armored `ssh-keygen -Y sign` of the lock's text (signing.py)


class LockHasHoles(LaneError):
    """A lock with holes cannot be signed; carries the report."""

    def __init__(self, report: LockReport) -> None:
        self.report = report
        count = len(report.holes)
        super().__init__(f"{report.path} has {count} hole{'s' if count != 1 else ''}; fill them before signing")


def lock_path(root: Path, feature: str) -> Path:
    if not FEATURE_NAME.fullmatch(feature):
        raise UsageError(f"invalid feature name {feature!r}: use letters, digits, '.', '_' and '-' (it names the folder features/FEATURE)")
    return root / "features" / feature / LOCK_FILE


def new_lock(root: Path, feature: str) -> Path:
    """Write the lock template for FEATURE; refuse to overwrite one."""
    path = lock_path(root, feature)
    if path.exists():
        raise UsageError(f"{_shown(root, path)} exists already: edit it, then `lane lock check {feature}`")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(TEMPLATE.format(feature=feature), encoding="utf-8")
    return path


def check_lock(root: Path, feature: str, *, today: date | None = None) -> LockReport:
    """Every hole in FEATURE's lock, and whether its sign-off still matches the text."""
    path = lock_path(root, feature)
    text = _read(root, path, feature)
    shown = _shown(root, path)
    holes = tuple(find_holes(text, shown, today or datetime.now(UTC).date(), _repo_of(root)))
    signoff = _read_signoff(root, path.with_name(SIGNOFF_FILE))
    if signoff is None:
        return LockReport(feature, shown, holes)
    void = signoff.sha256 != _hash(text)
    verified, how = _verification(root, text, signoff)
    return LockReport(feature, shown, holes, signoff.signed_by, signoff.signed_at, void, verified, how)


def _verification(root: Path, text: str, signoff: SignOff) -> tuple[bool | None, str]:
    """Whether the sign-off's SSH signature verifies against lane.yaml's allowed signers, and what was found."""
    repo = _repo_of(root) or root
    signers = signing.allowed_signers(repo)
    if signers is None:
        return None, "a record, not a proof: name locks.allowed_signers in lane.yaml to have sign-offs signed with SSH keys"
    if not signoff.ssh_signature:
        return False, f"it has no SSH signature, and lane.yaml names allowed signers ({signers.name}): sign it with --key"
    trusted, why = signing.committed_signers(repo, signers)
    if trusted is None:
        return False, str(why)
    try:
        why = signing.verify(signing.message(text, signoff.feature, signoff.signed_by, signoff.signed_at), signoff.ssh_signature,
                             signoff.signed_by, trusted)
    finally:
        trusted.unlink(missing_ok=True)
    if why is not None:
        return False, f"the SSH signature does not verify as {signoff.signed_by} against {signers.name}: {why}"
    return True, f"SSH signature verified: {signoff.signed_by} is an allowed signer ({signers.name} as committed)"


def _ssh_sign(root: Path, text: str, by: str, key: Path | None) -> str | None:
    """The SSH signature of the lock by `by`'s `key` when lane.yaml names allowed signers (checked at once: a key not
    allowed for that name is refused, not written), else None."""
    repo = _repo_of(root) or root
    signers = signing.allowed_signers(repo)
    if signers is None:
        return None
    if key is None:
        raise UsageError(f"lane.yaml names allowed signers ({signers.name}): sign with your SSH key, --key ~/.ssh/id_ed25519")
    trusted, untrusted = signing.committed_signers(repo, signers)
    if trusted is None:
        raise UsageError(str(untrusted))
    signature = signing.sign(text, key.expanduser())
    try:
        why = signing.verify(text, signature, by, trusted)
    finally:
        trusted.unlink(missing_ok=True)
    if why is not None:
        raise UsageError(f"{key} is not allowed to sign locks as {by} ({signers.name}: {why}); sign as the name its key is listed under")
    return signature


def _repo_of(root: Path) -> Path | None:
    """The repository a lock's canon citations are read from (the folder given, when it is not a git repository)."""
    from lane.coding.repo import repo_root

    try:
        return repo_root(root)
    except UsageError:
        return root


def sign_lock(root: Path, feature: str, by: str, *, today: date | None = None, now: datetime | None = None,
              key: Path | None = None) -> SignOff:
    """Record who signed FEATURE's lock, when, and the sha256 of its text; raise LockHasHoles if it has any."""
    if not by.strip():
        raise UsageError("--by needs the name of the person signing")
    report = check_lock(root, feature, today=today)
    if report.holes:
        raise LockHasHoles(report)
    path = lock_path(root, feature)
    when = (now or datetime.now(UTC)).astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    text = path.read_text(encoding="utf-8")
    signature = _ssh_sign(root, signing.message(text, feature, by.strip(), when), by.strip(), key)
    signoff = SignOff(feature, by.strip(), when, _hash(text), signature)
    record = {"feature": feature, "lock": LOCK_FILE, "signed_by": signoff.signed_by, "signed_at": when, "sha256": signoff.sha256,
              **({"ssh_signature": signature} if signature else {})}
    path.with_name(SIGNOFF_FILE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return signoff


def find_holes(text: str, shown: str, today: date, root: Path | None = None) -> list[Hole]:
    """The holes in a lock's text, in gate order; `root` (the repository) to check that cited canon files exist."""
    sections = _sections(text)
    holes: list[Hole] = []
    for gate, level, title in GATES:
        found = sections.get((level, title))
        if found is None:
            holes.append(Hole(shown, 1, gate, f"is missing: add a heading '{'#' * level} {gate.split(' / ')[-1]}'"))
        elif gate != "Scope":
            holes.extend(_gate_holes(shown, gate, *found, today, root))
    return holes


Section = tuple[int, list[tuple[int, str, bool]], int]  # heading line, [(line, text, is code)], top-level list items


def _sections(text: str) -> dict[tuple[int, str], Section]:
    """Each heading (level, normalized title) with the lines under it, up to the next heading of its level or above,
    read as a Markdown renderer reads them (markdown-it): a heading in a code fence is code, a setext heading
    is a heading, and a list nested in an item is part of that item."""
    doc = markdown.parse(text)
    heads = doc.headings()
    taken = {n for head in heads for n in range(head.line, head.after)}
    code = doc.code_lines()
    body = [(n, line, n in code) for n, line in enumerate(doc.lines, 1) if n not in taken]
    sections: dict[tuple[int, str], Section] = {}
    for i, head in enumerate(heads):
        end = next((h.line for h in heads[i + 1 :] if h.level <= head.level), len(doc.lines) + 1)
        items = sum(1 for item in doc.items(head.after, end) if item.depth == 0 and item.text.strip())
        sections.setdefault((head.level, _normal(head.title)), (head.line, [b for b in body if head.line < b[0] < end], items))
    return sections


def _normal(title: str) -> str:
    return " ".join(title.replace("-", " ").rstrip(":").lower().split())


def _gate_holes(shown: str, gate: str, heading: int, body: list[tuple[int, str, bool]], bullets: int, today: date,
                root: Path | None = None) -> list[Hole]:
    items = [(n, BULLET.sub("", t, count=1).strip(), code) for n, t, code in body]
    filled = [(n, t, code) for n, t, code in items if t and not EMPTY_LINE.fullmatch(t)]
    if not filled:
        why = ": an empty OUT list is an error; name at least one thing this change leaves alone" if gate == "Scope / OUT" else ""
        return [Hole(shown, heading, gate, f"is blank{why}")]
    holes: list[Hole] = []
    for number, line, code in filled:
        prose = "" if code else CODE_SPAN.sub("", line)
        undecided = TBD.search(line)
        if undecided:  # in backticks or a fence too: `TBD` is still undecided
            holes.append(Hole(shown, number, gate, f"is {undecided.group(0)}: decide it and write it down"))
        if line.strip() in ELLIPSIS:
            holes.append(Hole(shown, number, gate, "is only an ellipsis: write what it stands for"))
        for match in PLACEHOLDER.finditer(LINK.sub(r"\1", prose)):  # a link inside a hint leaves the hint a hint
            hint = match.group(1) if len(match.group(1)) <= 40 else match.group(1)[:39].rstrip() + "…"
            holes.append(Hole(shown, number, gate, f"is a placeholder [{hint}]: replace it with the real thing"))
        for match in ANGLE.finditer(prose):
            holes.append(Hole(shown, number, gate, f"is a placeholder <{match.group(1)}>: replace it with the real thing"))
    return holes or _specific_holes(shown, gate, heading, filled, bullets, today, root)


def _specific_holes(shown: str, gate: str, heading: int, filled: list[tuple[int, str, bool]], bullets: int, today: date,
                    root: Path | None = None) -> list[Hole]:
    """Holes particular to one gate, looked for once its text is otherwise filled in."""
    texts = [t for _, t, _ in filled]
    if gate == "Canonical alignment" and not any(CITATION.search(t) for t in texts):
        return [Hole(shown, heading, gate, "has no citation: cite the canon (canon/FILE.md, a link [title](url), or §section)")]
    if gate == "Canonical alignment" and root is not None:
        missing = [(n, m.group(0)) for n, t, _ in filled for m in CANON_CITED.finditer(t) if not (root / m.group(0)).is_file()]
        if missing:
            return [Hole(shown, n, gate, f"cites {cited}, which does not exist: cite a canon file that does") for n, cited in missing]
    if gate == "Scope / OUT" and all(t.lower().rstrip(".") in EMPTY_ITEM for t in texts):
        return [Hole(shown, filled[0][0], gate, "is empty: an empty OUT list is an error; name at least one thing this change leaves alone")]
    if gate == "Scope / Single surgical change" and bullets > 1:
        return [Hole(shown, heading, gate, f"lists {bullets} changes: a lock permits one; split the rest into their own locks")]
    if gate == "Kill date":
        return _kill_date_holes(shown, gate, filled, today)
    return []


def _kill_date_holes(shown: str, gate: str, filled: list[tuple[int, str, bool]], today: date) -> list[Hole]:
    """Every date of the gate must be real and still ahead (dates are compared in UTC: `today` is UTC's)."""
    holes, dates = [], 0
    for number, text, _ in filled:
        for match in ISO_DATE.finditer(text):
            dates += 1
            try:
                when = date(int(match.group(1)), int(match.group(2)), int(match.group(3)))
            except ValueError:
                holes.append(Hole(shown, number, gate, f"is not a real date: {match.group(0)}"))
                continue
            if when < today:
                holes.append(Hole(shown, number, gate, f"has passed: {when.isoformat()} is {(today - when).days} days ago; choose a later date"))
    if not dates:
        return [Hole(shown, filled[0][0], gate, "is not a date: write it as YYYY-MM-DD")]
    return holes


def _hash(text: str) -> str:
    # line endings are not an edit: a checkout that turns LF into CRLF must not void a sign-off
    return hashlib.sha256(text.replace("\r\n", "\n").encode("utf-8")).hexdigest()


def _read(root: Path, path: Path, feature: str) -> str:
    if not path.is_file():
        raise UsageError(f"no lock at {_shown(root, path)}: `lane lock new {feature}` writes one")
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {_shown(root, path)}: {exc}") from exc


def _read_signoff(root: Path, path: Path) -> SignOff | None:
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        signature = data.get("ssh_signature")
        return SignOff(str(data["feature"]), str(data["signed_by"]), str(data["signed_at"]), str(data["sha256"]),
                       str(signature) if signature else None)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"{_shown(root, path)} is not a sign-off lane wrote ({exc}): delete it and sign again with `lane lock sign`") from exc


def _shown(root: Path, path: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)
