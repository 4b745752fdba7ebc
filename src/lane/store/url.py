"""Store URLs from lane.yaml's `store:` key."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias
from urllib.parse import parse_qs, parse_qsl, urlencode, urlsplit

from lane.errors import UsageError
from lane.store.memory import MemoryStore
from lane.store.sqlite import SQLiteStore

if TYPE_CHECKING:
    from lane.store.postgres import PostgresStore

Store: TypeAlias = "SQLiteStore | MemoryStore | PostgresStore"
INSTALL = "pip install 'lane[postgres]'"


@dataclass(frozen=True)
class SQLiteURL:
    path: Path  # as written: relative to the project unless absolute
    synchronous: str


@dataclass(frozen=True)
class PostgresURL:
    conninfo: str  # as written, for libpq
    shown: str  # without the password: the only form lane prints
    secret: str | None = None  # the password, if the URL holds one (better: ~/.pgpass or PGPASSWORD)
    pool_size: int = 8  # ?pool_size=N: connections this process keeps open at most
    wait: float = 10.0  # ?pool_wait=S: seconds a call waits for a connection (the database restarting) before it gives up


def open_store(url: str, root: Path) -> Store:
    """`memory` keeps runs in this process only; `sqlite:///REL/PATH.db` (relative to the project), `sqlite:////ABS/PATH.db`;
    `?synchronous=full` for power-loss durability; `postgresql://USER@HOST[:PORT]/DB` for several processes or machines."""
    parsed = parse_store_url(url)
    if parsed is None:
        return MemoryStore()
    if isinstance(parsed, PostgresURL):
        from lane.store.postgres import PostgresStore  # psycopg is imported only here

        return PostgresStore(parsed.conninfo, shown=parsed.shown, secret=parsed.secret, pool_size=parsed.pool_size, wait=parsed.wait)
    path = parsed.path
    return SQLiteStore(path if path.is_absolute() else root / path, synchronous=parsed.synchronous)


def parse_store_url(url: str) -> SQLiteURL | PostgresURL | None:
    """What `store:` names, or None for `memory`; raises UsageError saying what to write."""
    if url == "memory":
        return None
    parts = urlsplit(url)
    if parts.scheme in ("postgresql", "postgres"):
        return _postgres(url)
    if parts.scheme != "sqlite":
        raise UsageError(f"store {url!r}: write sqlite:///PATH, postgresql://USER@HOST/DB or memory (lane.yaml: store)")
    raw = parts.path[1:] if parts.path.startswith("/") else parts.path
    if not raw:
        raise UsageError(f"store {url!r} names no file; write sqlite:///.lane/lane.db")
    sync = parse_qs(parts.query).get("synchronous", ["normal"])[0].lower()
    if sync not in ("normal", "full"):
        raise UsageError(f"store {url!r}: synchronous must be normal or full")
    return SQLiteURL(Path(raw), sync)


AMBIGUOUS = ("store: the user or password of the postgresql:// URL holds a character that must be percent-encoded; "
             "percent-encode the password in store: (/ as %2F, @ as %40, ? as %3F, # as %23), or keep it in ~/.pgpass")


def _postgres(url: str) -> PostgresURL:
    if "://" not in url:  # not echoed: what is a password in it is anyone's guess
        raise UsageError("store: write postgresql://USER@HOST[:PORT]/DB (lane.yaml: store)")
    if _ambiguous(url):
        raise UsageError(AMBIGUOUS)  # the URL is not echoed: where its password ends is just what is unclear
    parts = urlsplit(url)
    shown = f"{parts.scheme}://{parts.username + '@' if parts.username else ''}{parts.hostname or ''}"
    try:
        shown += f":{parts.port}" if parts.port else ""
    except ValueError:
        raise UsageError(f"store {shown + parts.path!r}: the port is not a number (lane.yaml: store)") from None
    shown += parts.path
    url, pool_size, wait = _lanes_own(url, parts.query, shown)
    try:
        import psycopg  # noqa: F401 - only to say what to install
        from psycopg.conninfo import conninfo_to_dict
    except ImportError:
        raise UsageError(f"store {shown!r}: a PostgreSQL store needs psycopg; {INSTALL}") from None
    try:
        options = conninfo_to_dict(url)
    except Exception as exc:  # noqa: BLE001 - psycopg's ProgrammingError for a malformed URL or an unknown parameter
        said = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        password = parts.password or ""
        said = said.replace(password, "***") if len(password) >= 4 else said  # a shorter one would garble every word
        raise UsageError(f"store {shown!r}: {said} (lane.yaml: store)") from None
    secret = options.get("password")
    return PostgresURL(url, shown, str(secret) if secret else None, pool_size, wait)


POOL_LIMITS = {"pool_size": (1, 1000), "pool_wait": (0.1, 3600)}


def _lanes_own(url: str, query: str, shown: str) -> tuple[str, int, float]:
    """lane's own options of a postgresql:// URL (pool_size, pool_wait), taken out before the URL goes to libpq."""
    pairs = parse_qsl(query, keep_blank_values=True)
    found = {key: value for key, value in pairs if key in POOL_LIMITS}
    if not found:
        return url, 8, 10.0
    values: dict[str, float] = {}
    for key, text in found.items():
        low, high = POOL_LIMITS[key]
        try:
            value = int(text) if key == "pool_size" else float(text)
        except ValueError:
            value = None
        if value is None or not low <= value <= high:
            kind = "a whole number" if key == "pool_size" else "seconds"
            raise UsageError(f"store {shown!r}: {key} must be {kind} from {low:g} to {high:g} (lane.yaml: store)")
        values[key] = value
    kept = urlencode([(key, value) for key, value in pairs if key not in POOL_LIMITS])
    base = url.split("?", 1)[0].split("#", 1)[0]
    return (f"{base}?{kept}" if kept else base), int(values.get("pool_size", 8)), float(values.get("pool_wait", 10.0))


def _ambiguous(url: str) -> bool:
    """Whether libpq and lane would read the user and password of `url` differently, so that part of a password
    could be shown as a host or a database: an `@`, `/`, `?` or `#` in them that is not percent-encoded.

    libpq takes what comes before the first `@` met before any `/` as user:password; urlsplit takes the host part
    up to the first `/`, `?` or `#`, and the user:password before its last `@`."""
    rest = url.split("://", 1)[1]
    stop = re.search(r"[@/]", rest)
    libpq = rest[:stop.start()] if stop and stop.group() == "@" else None
    netloc = re.split(r"[/?#]", rest, maxsplit=1)[0]
    python = netloc.rpartition("@")[0] if "@" in netloc else None
    if libpq != python:
        return True
    path = rest[len(netloc):].split("?", 1)[0]
    return libpq is None and "@" in path  # `user:pa/ss@host/db`: both read a host `user`, the password is in the path

