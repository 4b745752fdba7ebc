"""Store URLs from lane.yaml's `store:` key."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from lane.errors import UsageError
from lane.store.memory import MemoryStore
from lane.store.sqlite import SQLiteStore

Store = SQLiteStore | MemoryStore


def open_store(url: str, root: Path) -> Store:
    """`memory` keeps runs in this process only; `sqlite:///REL/PATH.db` (relative to the project), `sqlite:////ABS/PATH.db`; `?synchronous=full` for power-loss durability."""
    parsed = parse_store_url(url)
    if parsed is None:
        return MemoryStore()
    path, sync = parsed
    return SQLiteStore(path if path.is_absolute() else root / path, synchronous=sync)


def parse_store_url(url: str) -> tuple[Path, str] | None:
    """The SQLite file and synchronous mode, or None for `memory`; raises UsageError saying what to write."""
    if url == "memory":
        return None
    parts = urlsplit(url)
    if parts.scheme != "sqlite":
        raise UsageError(f"store {url!r}: only sqlite:///PATH and memory stores are available in this version of lane (lane.yaml: store)")
    raw = parts.path[1:] if parts.path.startswith("/") else parts.path
    if not raw:
        raise UsageError(f"store {url!r} names no file; write sqlite:///.lane/lane.db")
    path = Path(raw)
    sync = parse_qs(parts.query).get("synchronous", ["normal"])[0].lower()
    if sync not in ("normal", "full"):
        raise UsageError(f"store {url!r}: synchronous must be normal or full")
    return path, sync
