"""Leases on runs in a PostgreSQL store: one advisory lock per run a process executes.

A run's `owner` column says who executes it; the lease says whether that owner
is still there. Each PostgresStore keeps one session of its own that holds an
advisory lock for every run it claimed. PostgreSQL ends a session whose process
died, on whatever machine, and its locks go with it: so a worker tells a live
owner from a dead one by trying the lock, without asking the owner's host.

The lease only tells liveness. What keeps two processes from both executing a
run is the `owner` column, changed and checked under a row lock (postgres.py):
an owner whose session was lost (the server restarted) and whose run was taken
over finds out at its next commit, before its next effect.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import psycopg

PING_EVERY = 1.0  # seconds between checks that the session still holds what it held


def lock_key(name: str) -> int:
    """A signed 64-bit advisory lock key for `name` (a run id, or lane's own names)."""
    return int.from_bytes(hashlib.sha256(f"lane:{name}".encode()).digest()[:8], "big", signed=True)


class Leases:
    def __init__(self, connect: Callable[[], psycopg.Connection[tuple[object, ...]]]) -> None:
        self._connect = connect
        self._session: psycopg.Connection[tuple[object, ...]] | None = None
        self._held: dict[str, str] = {}  # run id -> the owner this store executes it as
        self._pinged = 0.0
        self._lock = threading.Lock()  # one session, used by every thread of the process

    def holder(self, run_id: str) -> str | None:
        """The owner this store holds `run_id` for, if it holds it."""
        return self._held.get(run_id)

    def take(self, run_id: str, owner: str, *, wait: float = 0.0) -> bool:
        """Take the lease on `run_id` for `owner`; False when another session holds it (after `wait` seconds)."""
        with self._lock:
            if run_id in self._held:
                self._held[run_id] = owner
                return True
            deadline = time.monotonic() + wait
            while not self._try(run_id):
                if time.monotonic() >= deadline:
                    return False
                time.sleep(0.05)
            self._held[run_id] = owner
            return True

    def drop(self, run_id: str) -> None:
        """Give the lease on `run_id` back (the run was released, or the claim refused)."""
        with self._lock:
            if self._held.pop(run_id, None) is None or self._session is None or self._session.broken:
                return
            try:
                self._session.execute("SELECT pg_advisory_unlock(%s)", (lock_key(run_id),))
            except Exception:  # noqa: BLE001 - a lost session holds nothing any more
                self._close()

    def renew(self) -> None:
        """At most every PING_EVERY seconds: check the session is alive; if it was lost (the server restarted),
        open another and take again what was held, so other workers do not take this process for dead.
        A lease another session took meanwhile is left: the row's owner tells the next commit (postgres.py)."""
        if not self._held or time.monotonic() - self._pinged < PING_EVERY:
            return
        with self._lock:
            try:
                if self._session is not None and not self._session.broken:
                    self._session.execute("SELECT 1")
                    self._pinged = time.monotonic()
                    return
            except Exception:  # noqa: BLE001 - lost: open another below
                self._close()
            for run_id in list(self._held):
                if not self._try(run_id):
                    del self._held[run_id]

    def close(self) -> None:
        with self._lock:
            self._held.clear()
            self._close()

    def _try(self, run_id: str) -> bool:
        if self._session is None or self._session.broken:
            self._close()
            self._session = self._connect()
        row = self._session.execute("SELECT pg_try_advisory_lock(%s)", (lock_key(run_id),)).fetchone()
        self._pinged = time.monotonic()
        return bool(row and row[0])

    def _close(self) -> None:
        if self._session is not None:
            try:
                self._session.close()
            finally:
                self._session = None
