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

A lost session is opened again in one place (_now), which first takes back
every lease held; a run whose lease another session took meanwhile, or whose
owner changed (postgres.py), is kept as lost: this store refuses every later
commit for it, until it claims the run afresh.
"""

from __future__ import annotations

import hashlib
import select
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import psycopg

_INT8 = 20  # PostgreSQL's type oid of bigint
PING_EVERY = 1.0  # seconds between checks that the session still holds what it held


def lock_key(name: str) -> int:
    """A signed 64-bit advisory lock key for `name` (a run id, or lane's own names)."""
    return int.from_bytes(hashlib.sha256(f"lane:{name}".encode()).digest()[:8], "big", signed=True)


class Leases:
    def __init__(self, connect: Callable[[], psycopg.Connection[tuple[object, ...]]]) -> None:
        self._connect = connect
        self._session: psycopg.Connection[tuple[object, ...]] | None = None
        self._held: dict[str, str] = {}  # run id -> the owner this store executes it as
        self._lost: dict[str, str] = {}  # run id -> the owner this store held it as and lost it: it commits nothing more for it
        self._pinged = 0.0
        self._unanswered = 0  # unlocks sent whose answers are not read yet (_unlock)
        self._lock = threading.Lock()  # one session, used by every thread of the process

    def holder(self, run_id: str) -> str | None:
        """The owner this store holds `run_id` for, if it holds it."""
        return self._held.get(run_id)

    def lost(self, run_id: str) -> str | None:
        """The owner this store held `run_id` as, if it lost it (another session took it, its owner changed,
        or the store could not be reached): nothing more is committed for it until it is claimed again."""
        return self._lost.get(run_id)

    def take(self, run_id: str, owner: str) -> bool:
        """Take the lease on `run_id` for `owner`; False when another session holds it. Never waits:
        a caller that wants to wait does so without this lock (and without its row lock), see PostgresStore.claim."""
        with self._lock:
            if run_id in self._held:
                self._held[run_id] = owner
                return True
            if not self._ask("SELECT pg_try_advisory_lock(%s)", run_id):
                return False
            self._held[run_id] = owner
            self._lost.pop(run_id, None)  # claimed afresh: the row's owner says this store's again
            return True

    def drop(self, run_id: str) -> None:
        """Give the lease on `run_id` back (the run was released, or the claim refused)."""
        with self._lock:
            if self._held.pop(run_id, None) is None:
                return
            self._unlock(run_id)

    def lose(self, run_id: str) -> None:
        """This store no longer executes `run_id` (another process took it over): give the lease back
        if it is still held, and refuse every later commit for it (the owner check is never switched off)."""
        with self._lock:
            owner = self._held.pop(run_id, None)
            if owner is not None:
                self._lost[run_id] = owner
                self._unlock(run_id)

    def forget(self, run_ids: list[str]) -> None:
        """The store could not be reached: give up the leases of these runs, so that once it is back a claim
        (`lane resume`, or this very process) can take them; what was committed is all there is, and nothing
        more is committed for them (unchecked, without a lease) until they are claimed again."""
        with self._lock:
            for run_id in run_ids:
                owner = self._held.pop(run_id, None)
                if owner is not None:
                    self._lost[run_id] = owner
                    self._unlock(run_id)

    def renew(self) -> None:
        """At most every PING_EVERY seconds: check the session is alive; if it was lost (the server restarted),
        open another and take back every lease held (_session); those another session took meanwhile are lost."""
        if not self._held or time.monotonic() - self._pinged < PING_EVERY:
            return
        with self._lock:
            self._ask("SELECT 1")

    def close(self) -> None:
        with self._lock:
            self._held.clear()
            self._close()

    def _ask(self, sql: str, run_id: str | None = None) -> bool:
        """Run one statement on the lease session; a session that fails (a server restart closed it) is closed
        and opened again, once: a dead connection is not the store being unreachable."""
        import psycopg

        args = (lock_key(run_id),) if run_id is not None else None
        for attempt in (1, 2):
            try:
                row = self._now().execute(sql, args).fetchone()
            except psycopg.OperationalError:
                self._close()
                if attempt == 2:
                    raise
                continue
            self._pinged = time.monotonic()
            return bool(row and row[0])
        raise AssertionError("unreachable")

    def _now(self) -> psycopg.Connection[tuple[object, ...]]:
        """The lease session; when it was lost, a new one that first takes back every lease held: one that
        another session took meanwhile is lost (this store commits nothing more for that run)."""
        if self._session is not None and not self._session.broken:
            try:
                self._answered()
                return self._session
            except Exception:  # noqa: BLE001, S110 - the session was lost meanwhile: opened again below
                pass
        self._close()
        session = self._connect()
        try:
            for run_id in list(self._held):
                row = session.execute("SELECT pg_try_advisory_lock(%s)", (lock_key(run_id),)).fetchone()
                if not (row and row[0]):
                    self._lost[run_id] = self._held.pop(run_id)
        except BaseException:
            session.close()
            raise
        self._session = session
        return session

    def _unlock(self, run_id: str) -> None:
        """Give the lease back without waiting for the answer: the server lets the lock go as soon as the message
        arrives, and its answer is read before the session's next statement (_now). A run's end costs no wait."""
        if self._session is None or self._session.broken:
            return  # a lost session holds nothing any more
        pgconn = self._session.pgconn
        try:
            pgconn.send_query_params(b"SELECT pg_advisory_unlock($1)", [str(lock_key(run_id)).encode()], [_INT8])
            while pgconn.flush():  # a few bytes: the socket takes them at once but when it is full
                select.select([], [pgconn.socket], [], 1.0)
        except Exception:  # noqa: BLE001 - a lost session holds nothing any more
            self._close()
            return
        self._unanswered += 1

    def _answered(self) -> None:
        """Read the answers of the unlocks sent (_unlock): the session is then free for a statement."""
        pgconn = self._session.pgconn if self._session is not None else None
        while self._unanswered and pgconn is not None:
            while pgconn.get_result() is not None:
                pass
            self._unanswered -= 1

    def _close(self) -> None:
        self._unanswered = 0
        if self._session is not None:
            try:
                self._session.close()
            finally:
                self._session = None
