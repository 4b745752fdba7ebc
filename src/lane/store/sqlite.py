"""The SQLite store: one file, WAL, numbered migrations applied on open.

One write path: `append` commits a batch of events (and the run's status) in
one transaction. The engine calls it before every effect, so whatever a crash
interrupts, what happened before it is on disk.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable, Iterable
from importlib import resources
from pathlib import Path
from typing import Any

from lane.errors import RunBusy, RunNotFound, UsageError
from lane.store.owners import alive as _alive
from lane.store.owners import process_owner
from lane.store.records import Event, ReleaseMoved, RunRecord, now
from lane.store.values import encode, storable

__all__ = ["SQLiteStore", "process_owner"]  # process_owner: imported from here by the engine


def _migrations(package: str = "lane.store.migrations") -> list[tuple[int, str]]:
    """The numbered .sql files of `package` (SQLite's, or lane.store.migrations_pg), in number order."""
    found = []
    for entry in resources.files(package).iterdir():
        if entry.name.endswith(".sql"):
            found.append((int(entry.name.split("_", 1)[0]), entry.read_text(encoding="utf-8")))
    return sorted(found)


def _statements(script: str) -> list[str]:
    """Split a migration into statements the way SQLite reads them (triggers and strings may hold ';')."""
    statements, buffer = [], ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            statements.append(buffer.strip())
            buffer = ""
    if any(line.strip() and not line.strip().startswith("--") for line in buffer.splitlines()):
        raise ValueError(f"a migration ends in an unfinished statement: {buffer.strip()[:80]!r}")
    return statements


class SQLiteStore:
    def __init__(self, path: Path, *, synchronous: str = "normal") -> None:
        self.path = path
        try:
            _private(path)
        except OSError as exc:
            raise UsageError(f"cannot create the store {path}: {exc}") from None
        try:
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
        except sqlite3.Error as exc:
            raise UsageError(f"cannot open the store {path}: {exc}") from None
        try:
            self._refuse_newer()  # before anything is written: a newer lane's file is left as it is
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={synchronous}")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise UsageError(f"{path} is not a lane store lane can read ({exc}); move it aside to start a new one") from None
        except BaseException:
            self._db.close()
            raise

    def close(self) -> None:
        self._db.close()

    # -- schema ---------------------------------------------------------------

    def _refuse_newer(self) -> None:
        current, latest = self._version(), _migrations()[-1][0]
        if current > latest:
            raise UsageError(f"{self.path} was written by a newer lane (schema {current}, this lane knows {latest}); upgrade lane")

    def _migrate(self) -> None:
        migrations = _migrations()
        latest = migrations[-1][0]
        if self._version() == latest:
            return
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._refuse_newer()  # again, now that no other process can write
            current = self._version()
            for number, script in migrations:
                if number > current:
                    for statement in _statements(script):
                        self._db.execute(statement)
                    self._db.execute(f"PRAGMA user_version={number}")
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def _version(self) -> int:
        return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    # -- writing --------------------------------------------------------------

    def create_run(self, run_id: str, runbook: str, version: int, inputs: dict[str, Any], owner: str,
                   parent: tuple[str, str] | None = None, snapshot: str | None = None, first: Event | None = None,
                   routed_at: int | None = None) -> None:
        """A new run, `running` and owned by `owner`; `parent` is (run id, step) for a child run; `snapshot` the
        kept version it runs (keep_snapshot); `first` its first event, committed with it (a run is never without
        its `run_started`). `routed_at`: the last entry of the runbook's release journal the routing read; if another
        was written since (a rollback), nothing is written and ReleaseMoved is raised: route again."""
        at = now()
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            if routed_at is not None:
                last = db.execute("SELECT COALESCE(MAX(seq), 0) FROM releases WHERE runbook = ?", (runbook,)).fetchone()[0]
                if last != routed_at:
                    raise ReleaseMoved(runbook)
            db.execute(
                "INSERT INTO runs (run_id, runbook, version, status, inputs, started_at, updated_at, owner, parent_id, parent_step, snapshot) "
                "VALUES (?, ?, ?, 'running', ?, ?, ?, ?, ?, ?, ?)",
                (run_id, runbook, version, encode(inputs), at, at, owner, *(parent or (None, None)), snapshot),
            )
            if first is not None:
                db.execute("INSERT INTO events (run_id, seq, type, step_id, ref, at, data) VALUES (?, ?, ?, ?, ?, ?, ?)",
                           (run_id, first.seq, first.type, first.step_id, first.ref, first.at, encode(first.data)))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    # -- kept versions --------------------------------------------------------

    def keep_snapshot(self, digest: str, runbook: str, version: int, manifest: dict[str, Any], texts: dict[str, str]) -> None:
        """Keep a version's files (`texts`: digest -> text) and its manifest under `digest`; what is kept already stays."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany("INSERT OR IGNORE INTO blobs (digest, content) VALUES (?, ?)", list(texts.items()))
            db.execute("INSERT OR IGNORE INTO snapshots (digest, runbook, version, manifest, created_at) VALUES (?, ?, ?, ?, ?)",
                       (digest, runbook, version, json.dumps(manifest, sort_keys=True), now()))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def snapshots(self, runbook: str) -> list[tuple[str, int, dict[str, Any], str]]:
        """The kept versions of `runbook`, oldest first: (digest, version, manifest, created_at)."""
        rows = self._db.execute("SELECT digest, version, manifest, created_at FROM snapshots WHERE runbook = ? ORDER BY created_at, digest",
                                (runbook,)).fetchall()
        return [(digest, version, json.loads(manifest), at) for digest, version, manifest, at in rows]

    def snapshot(self, digest: str) -> dict[str, Any] | None:
        row = self._db.execute("SELECT manifest FROM snapshots WHERE digest = ?", (digest,)).fetchone()
        return json.loads(row[0]) if row else None

    def blob(self, digest: str) -> str | None:
        row = self._db.execute("SELECT content FROM blobs WHERE digest = ?", (digest,)).fetchone()
        return str(row[0]) if row else None

    def snapshot_used(self, digest: str) -> bool:
        """Whether any run runs on the kept version `digest`."""
        return self._db.execute("SELECT 1 FROM runs WHERE snapshot = ? LIMIT 1", (digest,)).fetchone() is not None

    def runs_of(self, runbook: str) -> list[RunRecord]:
        """The runs of `runbook` (not those it started), oldest first."""
        rows = self._db.execute("SELECT * FROM runs WHERE runbook = ? ORDER BY started_at, run_id", (runbook,)).fetchall()
        return [_run(r) for r in rows]

    # -- releases -------------------------------------------------------------

    def release_log(self, runbook: str) -> list[dict[str, Any]]:
        """The release journal of `runbook`, oldest first: {seq, type, at, data}."""
        rows = self._db.execute("SELECT seq, type, at, data FROM releases WHERE runbook = ? ORDER BY seq", (runbook,)).fetchall()
        return [{"seq": seq, "type": kind, "at": at, "data": json.loads(data)} for seq, kind, at, data in rows]

    def append_release(self, runbook: str, kind: str, data: dict[str, Any], *, after: int) -> int | None:
        """Append to `runbook`'s release journal if its last entry is still `after` (0: none); the new seq, or None
        when another process wrote first (read the journal again and decide again)."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            last = db.execute("SELECT COALESCE(MAX(seq), 0) FROM releases WHERE runbook = ?", (runbook,)).fetchone()[0]
            seq = None
            if last == after:
                seq = db.execute("INSERT INTO releases (runbook, type, at, data) VALUES (?, ?, ?, ?)",
                                 (runbook, kind, now(), json.dumps(data, sort_keys=True))).lastrowid
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return seq

    def append(self, run_id: str, events: Iterable[Event], *, status: str | None = None, reason: str | None = None, release: bool = False) -> None:
        """Commit events, and optionally the run's new status, in one transaction."""
        rows = [(run_id, e.seq, e.type, e.step_id, e.ref, e.at, encode(e.data)) for e in events]
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany("INSERT INTO events (run_id, seq, type, step_id, ref, at, data) VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
            if status is not None:
                owner_sql = ", owner = NULL" if release else ""
                db.execute(f"UPDATE runs SET status = ?, reason = ?, updated_at = ?{owner_sql} WHERE run_id = ?", (status, storable(reason), now(), run_id))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def append_many(self, batches: list[tuple[str, list[Event]]]) -> None:
        """Commit the events of several runs in one transaction (runs executing at once share commits)."""
        rows = [(run_id, e.seq, e.type, e.step_id, e.ref, e.at, encode(e.data)) for run_id, events in batches for e in events]
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany("INSERT INTO events (run_id, seq, type, step_id, ref, at, data) VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def append_checked(self, run_id: str, make: Callable[[RunRecord, list[Event]], list[Event]]) -> list[Event]:
        """Under one write lock: read the run and its journal, let `make` say what to add (or raise), commit it."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            run = self.run(run_id)
            events = make(run, self.events(run.run_id))
            db.executemany("INSERT INTO events (run_id, seq, type, step_id, ref, at, data) VALUES (?, ?, ?, ?, ?, ?, ?)",
                           [(run.run_id, e.seq, e.type, e.step_id, e.ref, e.at, encode(e.data)) for e in events])
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return events

    def claim(self, run_id: str, owner: str, check: Callable[[RunRecord], None] | None = None) -> RunRecord:
        """Make `owner` the process executing the run (status `running`); refuses while another live one is,
        and when `check` raises on the run as it is now (read under the same lock: no other process slips in)."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            run = self.run(run_id)
            if run.owner and run.owner != owner and _alive(run.owner):
                raise RunBusy(f"run {run_id} is being executed by process {run.owner}; wait for it or stop it", run_id=run_id)
            if check is not None:
                check(run)
            self._db.execute("UPDATE runs SET owner = ?, status = 'running', reason = NULL, updated_at = ? WHERE run_id = ?", (owner, now(), run.run_id))
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        return run

    def release(self, run_id: str, owner: str) -> None:
        """`owner` stops executing the run and leaves its status as it is (interrupted: resumable)."""
        self._db.execute("UPDATE runs SET owner = NULL WHERE run_id = ? AND owner = ?", (run_id, owner))

    # -- reading --------------------------------------------------------------

    def run(self, run_id: str) -> RunRecord:
        row = self._db.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        if row is None and not run_id:
            raise RunNotFound(run_id)  # an empty prefix names no run
        if row is None:
            # a literal prefix: LIKE would treat _ and % as wildcards and ignore case
            matches = self._db.execute("SELECT * FROM runs WHERE substr(run_id, 1, length(?1)) = ?1 LIMIT 2", (run_id,)).fetchall()
            if len(matches) != 1:
                raise RunNotFound(run_id)
            row = matches[0]
        return _run(row)

    def runs(self, limit: int | None = None) -> list[RunRecord]:
        sql = "SELECT * FROM runs ORDER BY started_at DESC, run_id"
        rows = self._db.execute(sql + (f" LIMIT {int(limit)}" if limit else "")).fetchall()
        return [_run(r) for r in rows]

    def changed_since(self, at: str) -> list[RunRecord]:
        """The runs whose status changed after `at` (an ISO time from `now()`), by any process: what a console shows live."""
        rows = self._db.execute("SELECT * FROM runs WHERE updated_at > ? ORDER BY updated_at", (at,)).fetchall()
        return [_run(r) for r in rows]

    def children(self, run_id: str) -> list[RunRecord]:
        """The runs the steps of `run_id` started, oldest first."""
        rows = self._db.execute("SELECT * FROM runs WHERE parent_id = ? ORDER BY started_at, run_id", (run_id,)).fetchall()
        return [_run(r) for r in rows]

    def events(self, run_id: str, *, after: int = 0) -> list[Event]:
        """The run's events in order; `after`: only those past that seq (what a display has not shown yet)."""
        rows = self._db.execute(
            "SELECT seq, type, step_id, ref, at, data FROM events WHERE run_id = ? AND seq > ? ORDER BY seq", (self.run(run_id).run_id, after)
        ).fetchall()
        return [Event(seq, type_, step, ref, at, json.loads(data)) for seq, type_, step, ref, at, data in rows]

    def add_token(self, digest: str, person: str) -> None:
        """Keep a sign-in token's hash (never the token) for `person`."""
        self._db.execute("INSERT INTO tokens (hash, person, created_at) VALUES (?, ?, ?)", (digest, person, now()))

    def person_of(self, digest: str) -> str | None:
        """Whose sign-in token has this hash, if anyone's."""
        row = self._db.execute("SELECT person FROM tokens WHERE hash = ?", (digest,)).fetchone()
        return str(row[0]) if row else None

    def reserve(self, key: str, run_id: str) -> str | None:
        """Reserve `key` (a delivery, a slot, a file) for `run_id`; None if it is new, else the run it started before."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            row = self._db.execute("SELECT run_id FROM deliveries WHERE key = ?", (key,)).fetchone()
            if row is None:
                self._db.execute("INSERT INTO deliveries (key, run_id, created_at) VALUES (?, ?, ?)", (key, run_id, now()))
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        return None if row is None else str(row[0])

    def forget(self, run_id: str) -> None:
        """Nothing to give up: SQLite holds no lease (see PostgresStore.forget)."""

    def check(self) -> str:
        """SQLite's own integrity check: 'ok' when the file is sound."""
        return str(self._db.execute("PRAGMA integrity_check").fetchone()[0])


def _private(path: Path) -> None:
    """Make the store's folder (0700) and file (0600) readable by their owner only: they hold every input,
    everything agents saw and every tool result. lane's own `.lane/` folder is tightened if it was made looser."""
    missing = [p for p in (path.parent, *path.parent.parents) if not p.exists()]
    for folder in reversed(missing):
        folder.mkdir(mode=0o700, exist_ok=True)  # another process may make it at the same moment
    if not path.exists():
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))  # SQLite gives its -wal and -shm files the same mode
    if path.parent.name == ".lane":
        for item, mode in ((path.parent, 0o700), (path, 0o600)):
            if item.is_symlink():  # pointing elsewhere on purpose: not lane's to change
                continue
            if item.stat().st_mode & 0o077 and item.stat().st_uid == os.getuid():
                item.chmod(mode)


def _run(row: tuple[Any, ...]) -> RunRecord:
    run_id, runbook, version, status, reason, inputs, started, updated, owner, parent_id, parent_step, snapshot = row
    return RunRecord(run_id, runbook, version, status, reason, json.loads(inputs), started, updated, owner, parent_id, parent_step, snapshot)
