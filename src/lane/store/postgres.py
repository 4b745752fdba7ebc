"""The PostgreSQL store (`store: postgresql://USER@HOST/DB`): several lane processes and `lane serve`
workers, on one machine or several, share one database.

The same interface and journal semantics as the SQLite store: `append` commits
a batch of events (and the run's status) in one transaction before the effect
that follows it. Where SQLite takes the file's write lock, this store locks
rows: `claim` locks the run's row (FOR UPDATE) and takes the run's lease
(leases.py); a commit for a run this store executes checks, under a lock
on the row, that its owner is still this store's, so a process that lost its
connection while another took its run over writes nothing more for it.

lane's tables live in the schema `lane` of the database, migrated by lane
itself from the numbered files in migrations_pg/ (the same numbers as
SQLite's) under an advisory lock; the version is kept in lane.schema_version.

Only this module and leases.py import psycopg, and only when such a store is
opened: lane runs without the `postgres` extra installed.
"""

from __future__ import annotations

import json
import logging
import select
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from json.encoder import encode_basestring
from typing import Any

import psycopg
from psycopg.rows import TupleRow
from psycopg_pool import ConnectionPool, PoolTimeout

from lane.errors import RunBusy, RunNotFound, StoreUnavailable, UsageError
from lane.store.leases import Leases, lock_key
from lane.store.owners import alive, alive_here
from lane.store.records import Event, ReleaseMoved, RunRecord, now
from lane.store.sqlite import _migrations
from lane.store.values import encode, storable

Connection = psycopg.Connection[TupleRow]
# The pool reports each failed reconnection by logging; a library prints nothing on its own (it still reaches
# the handlers an application configures): the failure is told once, by StoreUnavailable.
logging.getLogger("psycopg.pool").addHandler(logging.NullHandler())

SCHEMA = "lane"
WAIT = 10.0  # seconds a call waits for the database (a restart) before the store says it cannot be reached
TAKEOVER_WAIT = 5.0  # seconds a claim waits for a dead owner's session to end on the server
POOL_SIZE = 8
_RUN = "run_id, runbook, version, status, reason, inputs, started_at, updated_at, owner, parent_id, parent_step, snapshot"
_EVENT = "INSERT INTO events (run_id, seq, type, step_id, ref, at, data) VALUES (%s, %s, %s, %s, %s, %s, %s)"
# Writes are one statement each: one round trip, in a transaction of its own. Events go to the server as one JSON
# text, [[run_id, seq, type, step_id, ref, at, data], ...], what costs the client least to send. Their data is a
# JSON string holding the column's text: the server reads JSON escapes, and a `\u0000` in data (a NUL a tool
# returned) must reach the column as those six characters.
_ROWS = "SELECT e->>0, (e->>1)::int, e->>2, e->>3, e->>4, e->>5, e->>6 FROM json_array_elements(%s::json) AS e"
# A new run and its first event (PostgresStore.create_run).
_CREATE = f"""WITH created AS (INSERT INTO runs ({_RUN}) VALUES (%s, %s, %s, 'running', NULL, %s, %s, %s, %s, %s, %s, %s) RETURNING run_id)
INSERT INTO events (run_id, seq, type, step_id, ref, at, data) {_ROWS} WHERE EXISTS (SELECT FROM created)"""
# A commit (PostgresStore._commit): the rows of the runs this store executes are locked (FOR NO KEY UPDATE: a
# status update may follow; in order, so two commits cannot deadlock) and their owners read; the events are
# inserted, and the status set, only if every owner is still this store's (the fence). The runs are one (its id and
# owner) or several ({run_id: owner} as JSON: a shared commit, or none held).
_FENCE_ONE = """fence AS (SELECT run_id, owner FROM runs WHERE run_id = %s FOR NO KEY UPDATE),
kept AS (SELECT (SELECT owner FROM fence) IS NOT DISTINCT FROM %s AS ok)"""
_FENCE_MANY = """held AS (SELECT key AS run_id, value AS owner FROM json_each_text(%s::json)),
fence AS (SELECT runs.run_id, runs.owner FROM runs JOIN held USING (run_id) ORDER BY runs.run_id FOR NO KEY UPDATE OF runs),
kept AS (SELECT NOT EXISTS (SELECT FROM fence JOIN held USING (run_id) WHERE fence.owner IS DISTINCT FROM held.owner) AS ok)"""
_ADDED = f"added AS (INSERT INTO events (run_id, seq, type, step_id, ref, at, data) {_ROWS} WHERE (SELECT ok FROM kept))"
_ENDED = """ended AS (UPDATE runs SET status = %s, reason = %s, updated_at = %s, owner = CASE WHEN %s THEN NULL ELSE owner END
    WHERE run_id = %s AND (SELECT ok FROM kept))"""
_COMMITS = {(one, ending): "WITH " + ",\n".join([_FENCE_ONE if one else _FENCE_MANY, _ADDED, *([_ENDED] if ending else [])])
            + "\nSELECT run_id, owner FROM fence" for one in (True, False) for ending in (True, False)}
_LOST = ("08", "57P01", "57P02", "57P03")  # SQLSTATEs of a lost connection or a server shutting down or starting
# TCP keepalives, both ways: the server ends the session (and its leases) of a client whose machine died within
# about a minute (20 s idle, then 6 probes 5 s apart), not the two hours of the system's default; the client notices
# a server that went away as soon. Set unless the URL sets them; on a Unix socket they do nothing.
_KEEPALIVES = {"keepalives": "1", "keepalives_idle": "20", "keepalives_interval": "5", "keepalives_count": "6"}
_SERVER_KEEPALIVES = "-c tcp_keepalives_idle=20 -c tcp_keepalives_interval=5 -c tcp_keepalives_count=6"


class PostgresStore:
    def __init__(self, conninfo: str, *, shown: str, secret: str | None = None, pool_size: int = POOL_SIZE, wait: float = WAIT) -> None:
        """`conninfo`: a libpq URL; `shown`: the same without its password, the only form put in a message;
        `secret`: the password, scrubbed from any server message as well; `pool_size` and `wait`: the URL's
        pool_size and pool_wait (connections kept at most; seconds a call waits for one)."""
        self.shown = shown
        self._wait = wait
        self._secret = secret
        given = psycopg.conninfo.conninfo_to_dict(conninfo)
        # the user's own options (a statement_timeout, a role) stay: lane's search_path comes after them
        server = " ".join(str(o) for o in (given.get("options"), _SERVER_KEEPALIVES, f"-c search_path={SCHEMA}") if o)
        options = {"application_name": "lane", "options": server}
        options.update({key: value for key, value in _KEEPALIVES.items() if key not in given})
        if "connect_timeout" not in given:
            options["connect_timeout"] = str(max(2, int(wait)))
        self._conninfo = psycopg.conninfo.make_conninfo(conninfo, **options)
        try:
            with psycopg.connect(self._conninfo, autocommit=True) as first:
                self._migrate(first)
        except psycopg.OperationalError as exc:
            if exc.sqlstate and not exc.sqlstate.startswith(_LOST):
                raise UsageError(f"the store {shown} cannot be migrated: {self._said(exc)}") from None
            raise StoreUnavailable(f"cannot open the store {shown}: {self._said(exc)}") from None
        except psycopg.errors.InsufficientPrivilege as exc:
            raise UsageError(f"the store {shown}: {self._said(exc)}; lane keeps its tables in the schema {SCHEMA}: "
                             f"grant the role CREATE on the database, or create that schema owned by it") from None
        except psycopg.Error as exc:  # a table of the same name that is not lane's, say
            raise UsageError(f"the store {shown} cannot be migrated: {self._said(exc)}; lane keeps its tables in the "
                             f"schema {SCHEMA} of the database: is that schema another program's?") from None
        self._pool: ConnectionPool[Connection] = ConnectionPool(
            self._conninfo, min_size=1, max_size=pool_size, open=True, timeout=wait, name="lane-store",
            kwargs={"autocommit": True}, check=_untouched)
        self._leases = Leases(lambda: psycopg.connect(self._conninfo, autocommit=True))

    def close(self) -> None:
        self._leases.close()
        self._pool.close()

    # -- schema ---------------------------------------------------------------

    def _migrate(self, db: Connection) -> None:
        migrations = _migrations("lane.store.migrations_pg")
        latest = migrations[-1][0]
        if self._version(db) == latest:  # checked before anything is written: a newer lane's database is left as it is
            return
        self._refuse_newer(db, latest)
        with db.transaction():
            db.execute("SELECT pg_advisory_xact_lock(%s)", (lock_key("migrations"),))
            self._refuse_newer(db, latest)  # again, now that no other lane migrates
            if db.execute("SELECT to_regnamespace(%s)", (SCHEMA,)).fetchone() == (None,):
                db.execute(f"CREATE SCHEMA {SCHEMA}")
            db.execute(f"CREATE TABLE IF NOT EXISTS {SCHEMA}.schema_version (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)")
            current = self._version(db)
            for number, script in migrations:
                if number > current:
                    db.execute(script.encode())  # bytes: a whole file, run as it is written
                    db.execute(f"INSERT INTO {SCHEMA}.schema_version (version, applied_at) VALUES (%s, %s)", (number, now()))

    def _refuse_newer(self, db: Connection, latest: int) -> None:
        current = self._version(db)
        if current > latest:
            raise UsageError(f"the store {self.shown} was written by a newer lane (schema {current}, this lane knows {latest}); upgrade lane")

    @staticmethod
    def _version(db: Connection) -> int:
        if db.execute("SELECT to_regclass(%s)", (f"{SCHEMA}.schema_version",)).fetchone() == (None,):
            return 0
        row = db.execute(f"SELECT COALESCE(MAX(version), 0) FROM {SCHEMA}.schema_version").fetchone()
        return int(row[0]) if row else 0

    # -- connections ----------------------------------------------------------

    @contextmanager
    def _db(self) -> Iterator[Connection]:
        """A connection of the pool; a lost server is StoreUnavailable, said in one line."""
        with self._reaching(), self._pool.connection() as db:
            yield db

    @contextmanager
    def _reaching(self) -> Iterator[None]:
        """The database's failures in one line: a lost server, or one that refused for a while (a statement
        or lock timeout, a deadlock, out of connections or memory) is StoreUnavailable; a value it cannot take
        (a NUL character) is a UsageError."""
        try:
            yield
        except PoolTimeout:
            raise self._unavailable(self._why_unreachable()) from None
        except psycopg.OperationalError as exc:
            if exc.sqlstate is None or exc.sqlstate.startswith(_LOST):
                raise self._unavailable(self._said(exc)) from None
            raise StoreUnavailable(f"the store {self.shown} refused: {self._said(exc)}; what was committed is kept: "
                                   f"`lane resume` carries on a run this stopped") from None
        except psycopg.DataError as exc:
            raise UsageError(f"the store {self.shown} cannot keep this: {self._said(exc)}") from None

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        with self._db() as db, db.transaction():
            yield db

    def _unavailable(self, why: str) -> StoreUnavailable:
        return StoreUnavailable(f"the store {self.shown} cannot be reached ({why}); what was committed is kept: "
                                f"once PostgreSQL is back, `lane resume` carries on a run this stopped")

    def _why_unreachable(self) -> str:
        """What connecting says now (the pool only says it waited in vain)."""
        try:
            psycopg.connect(self._conninfo, connect_timeout=2).close()
        except psycopg.Error as exc:
            return self._said(exc).removeprefix("connection failed: ")
        return f"no connection free within {self._wait:g} seconds (pool_size, pool_wait in store:)"

    def _said(self, exc: Exception) -> str:
        """The first line of a server's or libpq's message, without the password should it appear."""
        text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return _scrub(text, self._secret)

    # -- writing --------------------------------------------------------------

    def create_run(self, run_id: str, runbook: str, version: int, inputs: dict[str, Any], owner: str,
                   parent: tuple[str, str] | None = None, snapshot: str | None = None, first: Event | None = None,
                   routed_at: int | None = None) -> None:
        """As SQLiteStore.create_run; the new run's lease is taken before it is committed, so no other
        worker can take it for an abandoned one."""
        at = now()
        if not run_id or "\x00" in run_id:
            raise UsageError(f"a run id cannot be empty nor hold a NUL character: {run_id!r}")
        with self._reaching():
            taken = self._leases.take(run_id, owner)
        if not taken:
            raise RunBusy(f"run {run_id} is being executed by another process", run_id=run_id)
        created = (run_id, runbook, version, encode(inputs), at, at, owner, *(parent or (None, None)), snapshot,
                   f"[{_json_row(run_id, first)}]" if first is not None else "[]")
        try:
            if routed_at is None:  # the run and its first event in one statement (one round trip)
                with self._db() as db:
                    db.execute(_CREATE, created)
                return
            with self._tx() as db:  # shared: runs are created side by side; a release entry waits for them
                db.execute("SELECT pg_advisory_xact_lock_shared(%s)", (lock_key(f"releases:{runbook}"),))
                if _last_release(db, runbook) != routed_at:
                    raise ReleaseMoved(runbook)
                db.execute(_CREATE, created)
        except BaseException:
            self._leases.drop(run_id)
            raise

    def append(self, run_id: str, events: Iterable[Event], *, status: str | None = None, reason: str | None = None, release: bool = False) -> None:
        """Commit events, and optionally the run's new status, in one transaction."""
        _known(run_id)
        ending = None if status is None else (status, _text(storable(reason)), now(), release)
        with self._forgetting([run_id]):
            self._commit([(run_id, list(events))], ending)
        if release:
            self._leases.drop(run_id)

    def append_many(self, batches: list[tuple[str, list[Event]]]) -> None:
        """Commit the events of several runs in one transaction (runs executing at once share commits)."""
        for run_id, _ in batches:
            _known(run_id)
        self._commit(batches, None)  # not forgotten on failure: each run then commits its own (journal.GroupCommit)

    def _commit(self, batches: list[tuple[str, list[Event]]], ending: tuple[str, Any, str, bool] | None) -> None:
        """One statement, so one round trip and its own transaction: under a lock on the rows of the runs this
        store executes, check that each is still this store's (the fence), insert the events, set the status
        (`ending`: status, reason, when, whether the owner lets go; for the one run of `batches`). A run whose
        owner changed refuses the whole commit: nothing of it is written."""
        run_ids = [run_id for run_id, _ in batches]
        held = self._fenced(run_ids)
        rows = ",".join(_json_row(run_id, e) for run_id, events in batches for e in events)
        one = len(held) == 1 == len(batches)
        args: list[Any] = [*next(iter(held.items())), f"[{rows}]"] if one else [json.dumps(held), f"[{rows}]"]
        if ending is not None:
            args += [*ending, run_ids[0]]
        try:
            with self._db() as db:
                seen = db.execute(_COMMITS[one, ending is not None], args).fetchall()
        except psycopg.errors.UniqueViolation as exc:
            detail = exc.diag.message_detail or ""
            raise ValueError(f"an event of run {run_ids[0]} is already recorded ({detail.strip()})") from None
        for run_id, owner in seen:
            if owner != held[run_id]:
                self._leases.lose(run_id)  # and every later commit for it is refused too
                raise _taken_over(run_id, owner)

    def append_checked(self, run_id: str, make: Callable[[RunRecord, list[Event]], list[Event]]) -> list[Event]:
        """Under the run's row lock: read the run and its journal, let `make` say what to add (or raise), commit it."""
        _known(run_id)
        with self._tx() as db:
            run = _find(db, run_id, lock=True)
            events = make(run, _events(db, run.run_id))
            _insert(db, [_row(run.run_id, e) for e in events])
        return events

    def _fenced(self, run_ids: list[str]) -> dict[str, str]:
        """The runs of `run_ids` this store executes, with the owner it executes each as: their rows are checked
        under a lock in the commit. Refuses a run this store lost: another worker took it over while this one could
        not reach the database, or it stopped when the store could not be reached."""
        if not any(self._leases.holder(run_id) is not None or self._leases.lost(run_id) is not None for run_id in run_ids):
            return {}
        self._leases.renew()  # a lease lost with its session is taken back, or marked lost
        for run_id in run_ids:
            if (was := self._leases.lost(run_id)) is not None:
                with self._db() as db:
                    row = db.execute("SELECT owner FROM runs WHERE run_id = %s", (run_id,)).fetchone()
                owner = row[0] if row else None
                if owner == was:  # nobody took it over: it stopped when the store could not be reached
                    raise StoreUnavailable(f"run {run_id} stopped when the store {self.shown} could not be reached; "
                                           f"`lane resume {run_id}` carries it on")
                raise _taken_over(run_id, owner)
        return {run_id: owner for run_id in sorted(run_ids) if (owner := self._leases.holder(run_id)) is not None}

    @contextmanager
    def _forgetting(self, run_ids: list[str]) -> Iterator[None]:
        """A commit the store could not take stops the runs: their leases are given up, so that once the
        database is back they can be claimed again (`lane resume`, or `lane serve` itself)."""
        try:
            yield
        except StoreUnavailable:
            self._leases.forget(run_ids)
            raise

    def claim(self, run_id: str, owner: str, check: Callable[[RunRecord], None] | None = None) -> RunRecord:
        """Make `owner` the process executing the run (status `running`); refuses while another live one is,
        and when `check` raises on the run as it is now (read under the row lock: no other process slips in).
        An owner is live while its session holds the run's lease, on whatever machine it runs."""
        _known(run_id)
        deadline: float | None = None
        while True:
            try:
                return self._claim(run_id, owner, check)
            except _Wait as waiting:
                # a dead owner on this host, or a release not yet let go: its session is ending, give it a moment,
                # waiting with no lock held (neither the run's row nor the lease session)
                deadline = deadline if deadline is not None else time.monotonic() + TAKEOVER_WAIT
                if time.monotonic() >= deadline:
                    raise waiting.busy from None
                time.sleep(0.05)

    def _claim(self, run_id: str, owner: str, check: Callable[[RunRecord], None] | None) -> RunRecord:
        taken: str | None = None
        try:
            with self._tx() as db:
                run = _find(db, run_id, lock=True)
                mine = self._leases.holder(run.run_id)
                if mine is not None and mine != owner:  # another Project of this process executes it
                    raise _busy(run.run_id, mine)
                if mine is None:
                    if run.owner is not None and run.owner != owner and alive_here(run.owner):
                        # another process of this host executes it, though its lease may be gone a moment (a server
                        # restart): as SQLite, a live owner is not taken over
                        raise _busy(run.run_id, run.owner)
                    if not self._leases.take(run.run_id, owner):
                        busy = _busy(run.run_id, run.owner)
                        if run.owner is None or run.owner == owner or not alive(run.owner):
                            raise _Wait(busy)
                        raise busy
                    taken = run.run_id
                if check is not None:
                    check(run)
                db.execute("UPDATE runs SET owner = %s, status = 'running', reason = NULL, updated_at = %s WHERE run_id = %s",
                           (owner, now(), run.run_id))
        except BaseException:
            if taken is not None:
                self._leases.drop(taken)
            raise
        return run

    def release(self, run_id: str, owner: str) -> None:
        """`owner` stops executing the run and leaves its status as it is (interrupted: resumable)."""
        if not run_id or "\x00" in run_id:
            return  # names no run: nothing to let go
        try:
            with self._db() as db:
                db.execute("UPDATE runs SET owner = NULL WHERE run_id = %s AND owner = %s", (run_id, owner))
        finally:  # unreachable or not, this process executes it no more
            if self._leases.holder(run_id) == owner:
                self._leases.drop(run_id)

    # -- kept versions --------------------------------------------------------

    def keep_snapshot(self, digest: str, runbook: str, version: int, manifest: dict[str, Any], texts: dict[str, str]) -> None:
        """Keep a version's files (`texts`: digest -> text) and its manifest under `digest`; what is kept already stays."""
        with self._tx() as db:
            db.cursor().executemany("INSERT INTO blobs (digest, content) VALUES (%s, %s) ON CONFLICT DO NOTHING", list(texts.items()))
            db.execute("INSERT INTO snapshots (digest, runbook, version, manifest, created_at) VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                       (digest, runbook, version, json.dumps(manifest, sort_keys=True), now()))

    def snapshots(self, runbook: str) -> list[tuple[str, int, dict[str, Any], str]]:
        """The kept versions of `runbook`, oldest first: (digest, version, manifest, created_at)."""
        with self._db() as db:
            rows = db.execute("SELECT digest, version, manifest, created_at FROM snapshots WHERE runbook = %s ORDER BY created_at, digest",
                              (runbook,)).fetchall()
        return [(digest, version, json.loads(manifest), at) for digest, version, manifest, at in rows]

    def snapshot(self, digest: str) -> dict[str, Any] | None:
        row = self._one("SELECT manifest FROM snapshots WHERE digest = %s", (digest,))
        return json.loads(row[0]) if row else None

    def blob(self, digest: str) -> str | None:
        row = self._one("SELECT content FROM blobs WHERE digest = %s", (digest,))
        return str(row[0]) if row else None

    def snapshot_used(self, digest: str) -> bool:
        """Whether any run runs on the kept version `digest`."""
        return self._one("SELECT 1 FROM runs WHERE snapshot = %s LIMIT 1", (digest,)) is not None

    def runs_of(self, runbook: str) -> list[RunRecord]:
        """The runs of `runbook` (not those it started), oldest first."""
        return self._runs(f"SELECT {_RUN} FROM runs WHERE runbook = %s ORDER BY started_at, run_id", (runbook,))

    # -- releases -------------------------------------------------------------

    def release_log(self, runbook: str) -> list[dict[str, Any]]:
        """The release journal of `runbook`, oldest first: {seq, type, at, data}."""
        with self._db() as db:
            rows = db.execute("SELECT seq, type, at, data FROM releases WHERE runbook = %s ORDER BY seq", (runbook,)).fetchall()
        return [{"seq": seq, "type": kind, "at": at, "data": json.loads(data)} for seq, kind, at, data in rows]

    def append_release(self, runbook: str, kind: str, data: dict[str, Any], *, after: int) -> int | None:
        """Append to `runbook`'s release journal if its last entry is still `after` (0: none); the new seq, or None
        when another process wrote first (read the journal again and decide again)."""
        with self._tx() as db:
            db.execute("SELECT pg_advisory_xact_lock(%s)", (lock_key(f"releases:{runbook}"),))
            if _last_release(db, runbook) != after:
                return None
            row = db.execute("INSERT INTO releases (runbook, type, at, data) VALUES (%s, %s, %s, %s) RETURNING seq",
                             (runbook, kind, now(), json.dumps(data, sort_keys=True))).fetchone()
        return int(row[0]) if row else None

    # -- reading --------------------------------------------------------------

    def run(self, run_id: str) -> RunRecord:
        _known(run_id)
        with self._db() as db:
            return _find(db, run_id)

    def runs(self, limit: int | None = None) -> list[RunRecord]:
        sql = f"SELECT {_RUN} FROM runs ORDER BY started_at DESC, run_id"
        return self._runs(sql + (f" LIMIT {int(limit)}" if limit else ""), ())

    def changed_since(self, at: str) -> list[RunRecord]:
        """The runs whose status changed after `at` (an ISO time from `now()`), by any process: what a console shows live."""
        return self._runs(f"SELECT {_RUN} FROM runs WHERE updated_at > %s ORDER BY updated_at", (at,))

    def children(self, run_id: str) -> list[RunRecord]:
        """The runs the steps of `run_id` started, oldest first."""
        if not run_id or "\x00" in run_id:
            return []  # names no run: none started under it
        return self._runs(f"SELECT {_RUN} FROM runs WHERE parent_id = %s ORDER BY started_at, run_id", (run_id,))

    def events(self, run_id: str, *, after: int = 0) -> list[Event]:
        """The run's events in order; `after`: only those past that seq (what a display has not shown yet)."""
        _known(run_id)
        with self._db() as db:
            return _events(db, _find(db, run_id).run_id, after)

    def add_token(self, digest: str, person: str) -> None:
        """Keep a sign-in token's hash (never the token) for `person`."""
        with self._db() as db:
            db.execute("INSERT INTO tokens (hash, person, created_at) VALUES (%s, %s, %s)", (digest, person, now()))

    def person_of(self, digest: str) -> str | None:
        """Whose sign-in token has this hash, if anyone's."""
        row = self._one("SELECT person FROM tokens WHERE hash = %s", (digest,))
        return str(row[0]) if row else None

    def reserve(self, key: str, run_id: str) -> str | None:
        """Reserve `key` (a delivery, a slot, a file) for `run_id`; None if it is new, else the run it started before."""
        with self._tx() as db:
            if db.execute("INSERT INTO deliveries (key, run_id, created_at) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING RETURNING 1",
                          (key, run_id, now())).fetchone():
                return None
            row = db.execute("SELECT run_id FROM deliveries WHERE key = %s", (key,)).fetchone()
        return None if row is None else str(row[0])

    def forget(self, run_id: str) -> None:
        """The store could not be reached while this process executed `run_id`: give up its lease without
        writing (nothing can be written), so it can be claimed again once the database is back."""
        self._leases.forget([run_id])

    def check(self) -> str:
        """'ok' when the database answers at the schema this lane writes."""
        with self._db() as db:
            version, latest = self._version(db), _migrations("lane.store.migrations_pg")[-1][0]
        return "ok" if version == latest else f"schema {version}, this lane writes {latest}"

    def _one(self, sql: str, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
        with self._db() as db:
            return db.execute(sql, args).fetchone()

    def _runs(self, sql: str, args: tuple[Any, ...]) -> list[RunRecord]:
        with self._db() as db:
            return [_run(r) for r in db.execute(sql, args).fetchall()]


def _untouched(db: Connection) -> None:
    """The pool's check of a connection before it is lent, without a round trip: an idle connection has nothing
    to read, so one whose socket is readable was ended by the server (a restart, a terminated session: its last
    words, or the end of the stream) and is replaced before lane uses it. A server lost without a word is found
    by the statement itself, and TCP keepalives (_KEEPALIVES)."""
    if db.closed or db.broken:
        raise psycopg.OperationalError("the connection is closed")
    if _readable(db.fileno()):
        db.close()  # so the pool drops it and opens another
        raise psycopg.OperationalError("the server ended the connection")


def _readable(fd: int) -> bool:
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(fd, select.POLLIN | select.POLLPRI)
        return bool(poller.poll(0))
    return bool(select.select([fd], [], [], 0)[0])


def _known(run_id: str) -> None:
    """An empty id names no run (not even as a prefix), nor one holding NUL (PostgreSQL text cannot)."""
    if not run_id or "\x00" in run_id:
        raise RunNotFound(run_id)


def _find(db: Connection, run_id: str, *, lock: bool = False) -> RunRecord:
    """The run `run_id` names, or the one run whose id starts with it; `lock`: its row, FOR UPDATE."""
    _known(run_id)
    row = db.execute(f"SELECT {_RUN} FROM runs WHERE run_id = %s", (run_id,)).fetchone()
    if row is None:
        # ids sort byte by byte ("C"): the ids starting with the prefix are the first ones from it on
        following = db.execute(f"SELECT {_RUN} FROM runs WHERE run_id >= %s ORDER BY run_id LIMIT 2", (run_id,)).fetchall()
        matches = [r for r in following if str(r[0]).startswith(run_id)]
        if len(matches) != 1:
            raise RunNotFound(run_id)
        row = matches[0]
    if lock:
        row = db.execute(f"SELECT {_RUN} FROM runs WHERE run_id = %s FOR UPDATE", (row[0],)).fetchone()
        assert row is not None  # runs are never deleted
    return _run(row)


def _events(db: Connection, run_id: str, after: int = 0) -> list[Event]:
    rows = db.execute("SELECT seq, type, step_id, ref, at, data FROM events WHERE run_id = %s AND seq > %s ORDER BY seq",
                      (run_id, after)).fetchall()
    return [Event(seq, type_, step, ref, at, json.loads(data)) for seq, type_, step, ref, at, data in rows]


def _insert(db: Connection, rows: list[tuple[Any, ...]]) -> None:
    if not rows:
        return
    try:
        db.cursor().executemany(_EVENT, rows)
    except psycopg.errors.UniqueViolation as exc:
        detail = exc.diag.message_detail or ""
        raise ValueError(f"an event of run {rows[0][0]} is already recorded ({detail.strip()})") from None


def _last_release(db: Connection, runbook: str) -> int:
    row = db.execute("SELECT COALESCE(MAX(seq), 0) FROM releases WHERE runbook = %s", (runbook,)).fetchone()
    return int(row[0]) if row else 0


def _busy(run_id: str, owner: str | None) -> RunBusy:
    by = f"process {owner}" if owner else "another process"
    return RunBusy(f"run {run_id} is being executed by {by}; wait for it or stop it", run_id=run_id)


def _taken_over(run_id: str, owner: str | None) -> RunBusy:
    by = f"process {owner}" if owner else "another process"
    return RunBusy(f"run {run_id} was taken over by {by} while this process could not reach the store; "
                   f"it goes on there (`lane show {run_id}`)", run_id=run_id)


class _Wait(Exception):  # noqa: N818 - not an error: the lease is ending, claim again in a moment
    def __init__(self, busy: RunBusy) -> None:
        self.busy = busy


def _scrub(text: str, secret: str | None) -> str:
    """`text` without the password (one of under 4 characters is not looked for: it would garble every word)."""
    return text.replace(secret, "***") if secret and len(secret) >= 4 else text


def _json_row(run_id: str, e: Event) -> str:
    """An event as a row of a commit's JSON (_ROWS)."""
    return f"[{_quoted(run_id)},{int(e.seq)},{_quoted(e.type)},{_quoted(e.step_id)},{_quoted(e.ref)},{_quoted(e.at)},{_quoted(encode(e.data))}]"


def _quoted(text: str | None) -> str:
    return "null" if text is None else encode_basestring(text)


def _row(run_id: str, e: Event) -> tuple[Any, ...]:
    return (run_id, e.seq, e.type, e.step_id, e.ref, e.at, encode(e.data))


def _text(value: Any) -> Any:
    """PostgreSQL text cannot hold NUL: it is kept as the characters \\x00 (JSON columns escape it already)."""
    return value.replace("\x00", "\\x00") if isinstance(value, str) else value


def _run(row: tuple[Any, ...]) -> RunRecord:
    run_id, runbook, version, status, reason, inputs, started, updated, owner, parent_id, parent_step, snapshot = row
    return RunRecord(run_id, runbook, version, status, reason, json.loads(inputs), started, updated, owner, parent_id, parent_step, snapshot)
