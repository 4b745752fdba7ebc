"""Lock sign-offs that cannot be forged by editing a file: SSH signatures, checked the way git checks them.

lane.yaml names the repository's allowed signers, in the format git uses for `gpg.ssh.allowedSignersFile`:

    locks:
      allowed_signers: .github/allowed_signers     # ann@example.com namespaces="lane-lock" ssh-ed25519 AAAA...

`lane lock sign FEATURE --by ann@example.com --key ~/.ssh/id_ed25519` signs the lock's text with `ssh-keygen -Y
sign` (namespace `lane-lock`) and keeps the armored signature in the sign-off. `lane lock check` verifies it with
`ssh-keygen -Y verify` against the allowed signers: a sign-off whose text, name or signature was edited, or that was
signed by a key not listed for that name, does not verify. Without `allowed_signers`, a sign-off is a record (who,
when, the sha256), not a proof, and `lane lock check` says so.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

from lane.errors import UsageError

NAMESPACE = "lane-lock"


def allowed_signers(root: Path) -> Path | None:
    """The allowed signers file lane.yaml names (`locks.allowed_signers`), or None."""
    config = root / "lane.yaml"
    if not config.is_file():
        return None
    from lane.spec.source import read_yaml

    source = read_yaml(config, "lane.yaml")
    data = source.data if isinstance(source.data, dict) else {}
    locks = data.get("locks")
    named = locks.get("allowed_signers") if isinstance(locks, dict) else None
    if not named:
        return None
    path = (root / str(named)).resolve()
    if not path.is_relative_to(root.resolve()):
        raise UsageError(f"lane.yaml: locks.allowed_signers names {named}, outside the repository; keep it in the repository, "
                         "where changing it is a reviewed commit")
    if not path.is_file():
        raise UsageError(f"lane.yaml: locks.allowed_signers names {named}, which does not exist; write it in git's allowed_signers format")
    return path


def committed_signers(root: Path, path: Path) -> tuple[Path | None, str | None]:
    """The allowed signers as HEAD has them, written to a private temporary file, or why they cannot be trusted: an
    uncommitted change to the file would let anyone add a key under someone's name."""
    from lane.coding.repo import git

    relative = path.resolve().relative_to(root.resolve()).as_posix()
    try:
        committed = git(root, "show", f"HEAD:{relative}")
    except UsageError:
        return None, f"{relative} is not committed: commit it (a reviewed change) before sign-offs are checked against it"
    if committed != path.read_text(encoding="utf-8"):
        return None, f"{relative} has uncommitted changes: who may sign is what HEAD says; commit the change (reviewed) or undo it"
    handle, name = tempfile.mkstemp(prefix="lane-signers-")
    os.write(handle, committed.encode("utf-8"))
    os.close(handle)
    return Path(name), None


def message(text: str, feature: str, by: str, at: str) -> str:
    """What is signed: the lock's text, and who signs which feature when (so none of them can be edited alone)."""
    return f"{text}\n--- lane-lock-signoff feature={feature} by={by} at={at}\n"


def sign(text: str, key: Path) -> str:
    """The armored SSH signature of `text` (its line endings made LF) by the private `key`."""
    if not key.is_file():
        raise UsageError(f"--key {key}: no such key file; give the private key of an SSH key listed in allowed_signers")
    with tempfile.TemporaryDirectory() as folder:
        message = Path(folder) / "LOCK.md"
        message.write_bytes(_normal(text))
        done = subprocess.run(["ssh-keygen", "-Y", "sign", "-f", str(key), "-n", NAMESPACE, "-q", str(message)],
                              capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60)
        if done.returncode != 0:
            raise UsageError(f"ssh-keygen could not sign with {key}: {done.stderr.strip() or done.stdout.strip()}")
        return (Path(folder) / "LOCK.md.sig").read_text(encoding="ascii")


def verify(text: str, signature: str, principal: str, signers: Path) -> str | None:
    """Why the signature of `text` by `principal` does not verify against `signers`, or None when it does."""
    if not signature.isascii():
        return "the signature is not an armored SSH signature"
    with tempfile.TemporaryDirectory() as folder:
        sig = Path(folder) / "LOCK.md.sig"
        sig.write_text(signature, encoding="ascii")
        done = subprocess.run(["ssh-keygen", "-Y", "verify", "-f", str(signers), "-I", principal, "-n", NAMESPACE, "-s", str(sig)],
                              input=_normal(text), capture_output=True, timeout=60, env={**os.environ, "LC_ALL": "C"})
    if done.returncode == 0:
        return None
    said = (done.stderr or done.stdout).decode(errors="replace").strip().splitlines()
    return said[-1] if said else "the signature does not verify"


def _normal(text: str) -> bytes:
    return text.replace("\r\n", "\n").encode("utf-8")
