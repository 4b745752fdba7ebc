"""The store: real SQLite files, real PostgreSQL databases (a throw-away cluster, tests/pg.py) and the
memory store, as lane opens, migrates, writes and reads them.

What a user would notice: a store from a newer lane refused and left alone; a
batch of events written whole or not at all; short run ids that resolve, or say
why not; a run held by a live process refused to another; `store: memory`
carrying a whole run; a bad `store:` URL explained; a password never shown; and
a store that still reads after the process writing it was killed with SIGKILL.
Every test that is not about one kind of store by nature runs on each.
"""

from __future__ import annotations

import hashlib
import json
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import psycopg
import pytest

import lane
import lane.store.migrations
import lane.store.migrations_pg
from conftest import LANE, Backing, lane_json, write_project
from conftest import lane as lane_cli
from lane.errors import RunBusy, RunNotFound, StoreUnavailable, UsageError
from lane.store.memory import MemoryStore
from lane.store.postgres import PostgresStore
from lane.store.records import Event, now
from lane.store.sqlite import SQLiteStore, _migrations, process_owner
from lane.store.url import open_store
from lane.testing import ScriptedModel
from pg import PASSWORD, ROLE, Cluster

MIGRATIONS = Path(lane.store.migrations.__file__).parent
MIGRATIONS_PG = Path(lane.store.migrations_pg.__file__).parent
LATEST = max(int(p.name.split("_", 1)[0]) for p in MIGRATIONS.glob("*.sql"))
AnyStore = SQLiteStore | MemoryStore | PostgresStore


def event(seq: int, type_: str = "step_started", **data: Any) -> Event:
    return Event(seq, type_, "s", None, now(), data)


def pragma(path: Path, name: str) -> Any:
    with closing(sqlite3.connect(path)) as db:
        return db.execute(f"PRAGMA {name}").fetchone()[0]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def query(url: str, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    """What another client of a PostgreSQL store reads (lane's tables are in the schema lane)."""
    with psycopg.connect(url, autocommit=True, options="-c search_path=lane") as db:
        return db.execute(sql.encode(), args or None).fetchall()


def schema_of(backing: Backing, root: Path) -> Any:
    """Every table, column and index of the store, as its database describes them."""
    if backing.kind == "sqlite":
        with closing(sqlite3.connect(root / ".lane" / "lane.db")) as db:
            return db.execute("SELECT type, name, sql FROM sqlite_master ORDER BY name").fetchall()
    return (query(backing.url, "SELECT table_schema, table_name, column_name, data_type, collation_name, is_nullable "
                               "FROM information_schema.columns WHERE table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2, 3"),
            query(backing.url, "SELECT schemaname, indexname, indexdef FROM pg_indexes WHERE schemaname NOT IN ('pg_catalog') ORDER BY 1, 2"))


def version_of(backing: Backing, root: Path) -> int:
    if backing.kind == "sqlite":
        return int(pragma(root / ".lane" / "lane.db", "user_version"))
    return int(query(backing.url, "SELECT max(version) FROM lane.schema_version")[0][0])


@pytest.fixture(params=["sqlite", "memory", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[AnyStore]:
    if request.param == "postgresql":
        cluster: Cluster = request.getfixturevalue("postgres")
        opened: AnyStore = open_store(cluster.new_database(), tmp_path)
    else:
        opened = SQLiteStore(tmp_path / "lane.db") if request.param == "sqlite" else MemoryStore()
    yield opened
    opened.close()


# -- schema -----------------------------------------------------------------------------------------------------

def test_a_new_file_is_in_wal_mode_at_the_latest_schema(tmp_path: Path) -> None:
    # SQLite only: WAL is SQLite's; a new PostgreSQL database is the test below
    path = tmp_path / "not" / "yet" / "lane.db"
    SQLiteStore(path).close()
    assert pragma(path, "journal_mode") == "wal"
    assert pragma(path, "user_version") == LATEST == _migrations()[-1][0]
    with closing(sqlite3.connect(path)) as db:
        tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"runs", "events"} <= tables


def test_a_new_database_is_at_the_latest_schema_in_lanes_own_schema(postgres: Cluster) -> None:
    # PostgreSQL only: a shared database keeps lane's tables apart, in the schema `lane`
    url = postgres.new_database()
    open_store(url, Path(".")).close()
    assert query(url, "SELECT max(version) FROM lane.schema_version") == [(LATEST,)]
    tables = {name for (name,) in query(url, "SELECT table_name FROM information_schema.tables WHERE table_schema = 'lane'")}
    assert {"runs", "events", "schema_version"} <= tables
    assert query(url, "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'") == [(0,)]


@pytest.mark.parametrize("folder", [MIGRATIONS, MIGRATIONS_PG], ids=["sqlite", "postgresql"])
def test_migrations_are_listed_in_number_order_one_per_file(folder: Path) -> None:
    listed = _migrations(f"lane.store.{folder.name}")
    files = sorted(folder.glob("*.sql"), key=lambda p: int(p.name.split("_", 1)[0]))
    assert [n for n, _ in listed] == [int(p.name.split("_", 1)[0]) for p in files]
    assert [n for n, _ in listed] == list(range(1, len(files) + 1)), "migration numbers must be 1, 2, 3... without gaps or repeats"
    assert [script for _, script in listed] == [p.read_text(encoding="utf-8") for p in files]


def test_both_stores_have_the_same_migrations_so_the_same_schema_version() -> None:
    assert sorted(p.name for p in MIGRATIONS.glob("*.sql")) == sorted(p.name for p in MIGRATIONS_PG.glob("*.sql"))


def test_reopening_a_current_file_changes_nothing(backing: Backing, tmp_path: Path) -> None:
    first = backing.open(tmp_path)
    first.create_run("r1", "book", 2, {"x": 1}, "someone")
    first.append("r1", [event(1), event(2)], status="paused", reason="waiting")
    first.close()
    schema = schema_of(backing, tmp_path)

    again = backing.open(tmp_path)
    try:
        run = again.run("r1")
        assert (run.runbook, run.version, run.status, run.reason, run.inputs) == ("book", 2, "paused", "waiting", {"x": 1})
        assert [e.seq for e in again.events("r1")] == [1, 2]
        assert again.check() == "ok"
    finally:
        again.close()
    assert schema_of(backing, tmp_path) == schema
    assert version_of(backing, tmp_path) == LATEST


def test_a_file_from_a_newer_lane_is_refused_and_left_exactly_as_it_was(backing: Backing, tmp_path: Path) -> None:
    path = tmp_path / ".lane" / "lane.db"
    if backing.kind == "sqlite":
        path.parent.mkdir()
        with closing(sqlite3.connect(path)) as db:  # what a future lane might have written, in rollback-journal mode
            db.execute("CREATE TABLE future (x)")
            db.execute(f"PRAGMA user_version = {LATEST + 1}")
            db.commit()
        before: Any = digest(path)
    else:
        with psycopg.connect(backing.url, autocommit=True) as db:
            db.execute(b"CREATE SCHEMA lane")
            db.execute(b"CREATE TABLE lane.schema_version (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)")
            db.execute(b"CREATE TABLE lane.future (x TEXT)")
            db.execute(b"INSERT INTO lane.schema_version VALUES (%s, 'then')", (LATEST + 1,))
        before = schema_of(backing, tmp_path)

    with pytest.raises(UsageError) as caught:
        backing.open(tmp_path)
    message = str(caught.value)
    where = str(path) if backing.kind == "sqlite" else backing.url
    assert where in message and f"schema {LATEST + 1}" in message and "upgrade lane" in message

    if backing.kind == "sqlite":
        assert digest(path) == before, "refusing the file must not change it (not even to WAL mode)"
        assert sorted(p.name for p in path.parent.iterdir()) == ["lane.db"], "no -wal or -shm left behind"
    else:
        assert schema_of(backing, tmp_path) == before, "refusing the database must not change it"
    assert version_of(backing, tmp_path) == LATEST + 1


# -- writing ----------------------------------------------------------------------------------------------------

def test_append_writes_a_batch_whole_or_not_at_all(store: AnyStore, tmp_path: Path) -> None:
    store.create_run("r1", "book", 1, {}, "me")
    store.append("r1", [event(1), event(2)])

    with pytest.raises((sqlite3.IntegrityError, ValueError)):
        store.append("r1", [event(3, "tool_started"), event(2, "duplicate"), event(4)], status="failed", reason="boom")

    assert [(e.seq, e.type) for e in store.events("r1")] == [(1, "step_started"), (2, "step_started")]
    assert (store.run("r1").status, store.run("r1").reason) == ("running", None), "the status of a failed batch must not be kept"
    store.append("r1", [event(3, "tool_started")], status="paused", reason="asks")  # the store is still usable
    assert [e.seq for e in store.events("r1")] == [1, 2, 3]
    if isinstance(store, SQLiteStore):  # and it is what another reader sees on disk
        with closing(sqlite3.connect(tmp_path / "lane.db")) as db:
            assert db.execute("SELECT seq FROM events ORDER BY seq").fetchall() == [(1,), (2,), (3,)]
            assert db.execute("SELECT status FROM runs").fetchall() == [("paused",)]
    if isinstance(store, PostgresStore):
        url = store._conninfo
        assert query(url, "SELECT seq FROM events ORDER BY seq") == [(1,), (2,), (3,)]
        assert query(url, "SELECT status FROM runs") == [("paused",)]



def test_what_a_tool_can_return_is_read_back_as_it_was_written(store: AnyStore) -> None:
    # a NUL, a lone surrogate (a file name that is not UTF-8), U+2028, quotes and backslashes, a long text, any
    # depth: the journal gives back what it took (a lone surrogate escaped, as values.py says), in a run's first
    # event as in a commit, through a run this store executes (fenced) or not, alone or in a shared commit
    data = {"nul": "a\x00b", "key\x00": ["\\u0000", "\t\n", 'q"\\\''], "sep": "l\u2028s", "emoji": "🙂", "long": "z" * 100_000,
            "deep": [[[{"n": 12345678901234567890, "f": 1.5, "none": None, "yes": True}]]]}
    store.create_run("r1", "book", 1, {}, process_owner("aaaa"), first=Event(1, "run_started", None, None, now(), data))
    store.create_run("r2", "book", 1, {}, "someone")
    store.append("r1", [Event(2, "tool_finished", 'step "é"\\', "call'1\n", now(), {**data, "sur": "x\udcffy"})], status="completed")
    store.append("r2", [Event(1, "step_started", "s", None, now(), data)])
    store.append_many([("r1", [Event(3, "note", "s", None, now(), data)]), ("r2", [Event(2, "note", "s", None, now(), data)])])

    r1, r2 = store.events("r1"), store.events("r2")
    assert [e.data for e in (r1[0], r1[2], *r2)] == [data] * 4
    assert r1[1].data == {**data, "sur": "x\udcffy" if isinstance(store, MemoryStore) else "x\\xffy"}  # the bytes show as \xff
    assert (r1[1].step_id, r1[1].ref) == ('step "é"\\', "call'1\n")
    assert store.run("r1").status == "completed"
    if isinstance(store, PostgresStore):  # the column holds the JSON text, as SQLite's does
        from lane.store.values import encode

        assert query(store._conninfo, "SELECT data FROM events WHERE run_id = 'r2' AND seq = 1") == [(encode(data),)]



def test_a_routed_run_is_written_with_its_first_event_only_while_the_release_journal_ends_where_it_was_read(store: AnyStore) -> None:
    from lane.store.records import ReleaseMoved

    first = Event(1, "run_started", None, None, now(), {"routing": {"version": 2}})
    seq = store.append_release("book", "released", {"version": 2}, after=0)
    assert seq is not None
    store.create_run("r1", "book", 2, {"a": 1}, process_owner("aaaa"), first=first, routed_at=seq)
    assert (store.run("r1").version, [e.data for e in store.events("r1")]) == (2, [first.data])

    moved = store.append_release("book", "rolled_back", {"version": 2}, after=seq)
    with pytest.raises(ReleaseMoved):
        store.create_run("r2", "book", 2, {}, process_owner("aaaa"), first=first, routed_at=seq)
    with pytest.raises(RunNotFound):
        store.run("r2")  # nothing was written
    store.create_run("r2", "book", 1, {}, process_owner("bbbb"), first=first, routed_at=moved)  # and the id is free again
    assert store.run("r2").version == 1


# -- reading ----------------------------------------------------------------------------------------------------

def test_a_run_id_prefix_resolves_only_when_it_names_one_run(store: AnyStore) -> None:
    for run_id in ("abc12345", "abd67890", "f0f0f0f0"):
        store.create_run(run_id, "book", 1, {}, "me")
    store.append("abc12345", [event(1)])

    assert store.run("abc").run_id == "abc12345"
    assert store.run("f0f0f0f0").run_id == "f0f0f0f0"
    assert [e.seq for e in store.events("abc1")] == [1]
    for ambiguous_or_absent in ("ab", "a", "zzz", "abc123456", "ABC", "a_c", "f%", "%"):
        with pytest.raises(RunNotFound) as caught:
            store.run(ambiguous_or_absent)
        assert f"no run {ambiguous_or_absent!r}" in str(caught.value) and "`lane runs`" in str(caught.value)


def test_an_empty_run_id_names_no_run_even_when_there_is_only_one(store: AnyStore) -> None:
    store.create_run("abc12345", "book", 1, {}, "me")
    with pytest.raises(RunNotFound):
        store.run("")


# -- claiming a run ---------------------------------------------------------------------------------------------

def owner_for(pid: int, token: str = "feedbeef") -> str:
    """An owner string for `pid` on this host, in the format lane writes."""
    host = process_owner("x").rsplit(":", 2)[0]
    return f"{host}:{pid}:{token}"


HOLDER = """
import sys, time
from pathlib import Path
from lane.store.sqlite import process_owner
from lane.store.url import open_store

url, root, run_id, owner = sys.argv[1:]
store = open_store(url, Path(root))
store.claim(run_id, owner if owner != "-" else process_owner("feedbeef"))
print(store.run(run_id).owner, flush=True)
time.sleep(60)
"""


def hold(backing: Backing, root: Path, run_id: str, owner: str = "-") -> tuple[subprocess.Popen[str], str]:
    """Another real process that claims the run (as `owner`, or as itself) and keeps executing it; and its owner string."""
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, backing.url, str(root), run_id, owner], stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None
    return holder, holder.stdout.readline().strip()


def stop(process: subprocess.Popen[str]) -> None:
    """Kill the process (if it lives), reap it and close its pipe."""
    if process.poll() is None:
        process.kill()
    if process.stdout is not None and not process.stdout.closed:
        process.communicate()
    process.wait()


def claim_within(store: AnyStore, run_id: str, owner: str, seconds: float = 10) -> None:
    """Claim, retrying while RunBusy: a dead owner's session ends on the server a moment after the process."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            store.claim(run_id, owner)
            return
        except RunBusy:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def test_claim_refuses_a_run_a_live_process_holds_and_takes_over_once_it_is_dead(backing: Backing, tmp_path: Path) -> None:
    store = backing.open(tmp_path)
    store.create_run("r1", "book", 1, {}, process_owner("0000"))
    store.release("r1", process_owner("0000"))
    holder, held_by = hold(backing, tmp_path, "r1")
    try:
        mine = process_owner("cafe")
        with pytest.raises(RunBusy) as caught:
            store.claim("r1", mine)
        assert held_by == owner_for(holder.pid)
        assert f"run r1 is being executed by process {held_by}; wait for it or stop it" == str(caught.value) and caught.value.run_id == "r1"
        assert store.run("r1").owner == held_by, "a refused claim must not change the owner"

        stop(holder)
        store.claim("r1", mine)
        assert store.run("r1").owner == mine
        store.claim("r1", mine)  # claiming again as the same owner is fine
    finally:
        stop(holder)
        store.close()


def test_a_killed_but_unreaped_owner_counts_as_dead_and_another_host_as_alive(backing: Backing, tmp_path: Path) -> None:
    store = backing.open(tmp_path)
    store.create_run("r1", "book", 1, {}, process_owner("0000"))
    store.release("r1", process_owner("0000"))
    zombie, held_by = hold(backing, tmp_path, "r1")
    try:
        zombie.kill()
        deadline = time.monotonic() + 5
        while Path(f"/proc/{zombie.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert store.run("r1").owner == held_by
        store.claim("r1", process_owner("cafe"))
        assert store.run("r1").owner == process_owner("cafe")
    finally:
        stop(zombie)

    store.create_run("r2", "book", 1, {}, "another-machine:1:beef")
    if backing.kind == "sqlite":
        # SQLite cannot see another machine's processes: its owner must release it
        with pytest.raises(RunBusy):
            store.claim("r2", process_owner("cafe"))
        store.close()
        return
    # PostgreSQL sees whether another machine's owner is alive: its session holds the run's lease
    store.release("r2", "another-machine:1:beef")
    remote, held_by = hold(backing, tmp_path, "r2", "another-machine:1:beef")
    try:
        with pytest.raises(RunBusy, match="being executed by process another-machine:1:beef"):
            store.claim("r2", process_owner("cafe"))
        stop(remote)
        claim_within(store, "r2", process_owner("cafe"))  # its session ended with it: the run is taken over
        assert store.run("r2").owner == process_owner("cafe")
    finally:
        stop(remote)
        store.close()


def test_a_run_id_holding_nul_names_no_run(store: AnyStore) -> None:
    store.create_run("r1", "book", 1, {}, "me")
    for bad in ("r1\x00", "\x00", "r\x00x"):
        with pytest.raises(RunNotFound):
            store.run(bad)
        with pytest.raises(RunNotFound):
            store.events(bad)
        with pytest.raises(RunNotFound):
            store.claim(bad, "me")
        assert store.children(bad) == []
        try:
            store.release(bad, "me")  # names no run: nothing to let go (the memory store says so)
        except RunNotFound:
            pass
    assert store.run("r1").owner == "me"


def test_reserve_is_none_for_a_new_key_and_the_first_run_for_one_reserved(store: AnyStore) -> None:
    assert store.reserve("delivery-1", "r1") is None
    assert store.reserve("delivery-1", "r2") == "r1"
    assert store.reserve("delivery-2", "r2") is None


def test_a_schema_lane_of_another_program_is_refused_in_one_line(postgres: Cluster, tmp_path: Path) -> None:
    url = postgres.new_database()
    with psycopg.connect(url, autocommit=True) as db:
        db.execute("CREATE SCHEMA lane")
        db.execute("CREATE TABLE lane.runs (x integer)")
    with pytest.raises(UsageError) as caught:
        open_store(url, tmp_path)
    message = str(caught.value)
    assert "cannot be migrated" in message and "\n" not in message, message


def test_the_urls_own_options_are_kept_and_a_lock_timeout_is_said_in_one_line(postgres: Cluster, tmp_path: Path) -> None:
    url = postgres.new_database()
    store = open_store(url + "?options=-c%20lock_timeout%3D200", tmp_path)
    try:
        store.create_run("r1", "book", 1, {}, "elsewhere:1:aaaa")
        store.release("r1", "elsewhere:1:aaaa")
        # another client locks the run's row (and lets go after 5 s at the latest, should lane wait for it)
        with psycopg.connect(url, autocommit=True, options="-c idle_in_transaction_session_timeout=5000") as other, other.transaction():
            other.execute("SELECT 1 FROM lane.runs WHERE run_id = 'r1' FOR UPDATE")
            with pytest.raises(StoreUnavailable) as caught:
                store.claim("r1", "elsewhere:2:bbbb")
        message = str(caught.value)
        assert "lock timeout" in message and "\n" not in message and "lane resume" in message, message
        store.claim("r1", "elsewhere:2:bbbb")
    finally:
        store.close()


def test_a_crashed_clients_leases_end_within_a_minute_keepalives_are_set(postgres: Cluster, tmp_path: Path) -> None:
    store = open_store(postgres.new_database(), tmp_path)
    try:
        with store._db() as db:  # what the server keeps for lane's session: it probes a silent client after 20 s
            said = [db.execute(f"SHOW {name}".encode()).fetchone() for name in ("tcp_keepalives_idle", "tcp_keepalives_interval", "tcp_keepalives_count")]
        assert said == [("20",), ("5",), ("6",)]
    finally:
        store.close()


def claim_when_free(store: AnyStore, run_id: str, owner: str) -> None:
    """Claim, retrying while RunBusy: a lease whose session was ended is free a moment later."""
    claim_within(store, run_id, owner)


def test_a_live_owner_on_this_host_is_not_taken_over_while_its_lease_is_gone(postgres: Cluster, tmp_path: Path) -> None:
    # its lease session was lost (a server restart, a network cut) and not yet opened again: as with SQLite,
    # a live process of this host still executes its run
    backing = Backing("postgresql", postgres.new_database(), postgres)
    store = backing.open(tmp_path)
    store.create_run("r1", "book", 1, {}, process_owner("0000"))
    store.release("r1", process_owner("0000"))
    holder, held_by = hold(backing, tmp_path, "r1")
    try:
        postgres.cut_leases(backing.url)
        with pytest.raises(RunBusy, match=f"being executed by process {held_by}; wait for it or stop it"):
            store.claim("r1", process_owner("cafe"))
        assert store.run("r1").owner == held_by
    finally:
        stop(holder)
        store.close()


def test_a_lease_session_opened_again_takes_back_every_run_it_held(postgres: Cluster, tmp_path: Path) -> None:
    url = postgres.new_database()
    mine, other = open_store(url, tmp_path), open_store(url, tmp_path)
    try:
        mine.create_run("r1", "book", 1, {}, "elsewhere:1:aaaa")
        postgres.cut_leases(url)
        mine.create_run("r2", "book", 1, {}, "elsewhere:1:aaaa")  # opens the session again: r1's lease comes back with it
        for run_id in ("r1", "r2"):
            with pytest.raises(RunBusy, match=f"run {run_id} is being executed by process elsewhere:1:aaaa"):
                other.claim(run_id, "elsewhere:2:bbbb")
        mine.append("r1", [event(2)])
    finally:
        mine.close()
        other.close()


def test_a_run_taken_over_refuses_every_later_commit_of_the_process_that_lost_it(postgres: Cluster, tmp_path: Path) -> None:
    url = postgres.new_database()
    lost, winner = open_store(url, tmp_path), open_store(url, tmp_path)
    try:
        lost.create_run("r1", "book", 1, {}, "elsewhere:1:aaaa", first=event(1, "run_started"))
        postgres.cut_leases(url)
        claim_when_free(winner, "r1", "elsewhere:2:bbbb")
        time.sleep(1.1)  # the next commit checks the lease session, and opens it again
        for attempt in range(3):
            with pytest.raises(RunBusy, match="run r1 was taken over by "):
                lost.append("r1", [event(2 + attempt)], status="failed", reason="x", release=True)
        with pytest.raises(RunBusy):
            lost.append_many([("r1", [event(5)])])
        assert [e.seq for e in winner.events("r1")] == [1]
        assert (winner.run("r1").status, winner.run("r1").owner) == ("running", "elsewhere:2:bbbb")
        winner.append("r1", [event(2)])
    finally:
        lost.close()
        winner.close()


# -- store URLs -------------------------------------------------------------------------------------------------

PROJECT = {
    "lane.yaml": """
        project: stores
        models: {default: scripted:x}
        store: memory
        roles:
          lead: {kind: human}
          clerk: {kind: agent}
        toolsets:
          desk: {python: tools/desk.py}
    """,
    "agents/clerk.md": """
        ---
        name: clerk
        autonomy: guarded
        tools: [desk.*]
        ---
        You file things.
    """,
    "runbooks/file.yaml": """
        runbook: file
        steps:
          - id: file
            agent: clerk
            goal: File the letter.
            output: {type: object, properties: {filed: {type: boolean}}, required: [filed]}
    """,
    "tools/desk.py": '''
        from lane import tool

        @tool(effect="external")
        def send(to: str) -> dict:
            """Send the letter."""
            return {"sent_to": to}
    ''',
}
TURNS = [{"tool_calls": [{"name": "desk.send", "args": {"to": "archive"}}]}, {"output": {"filed": True}}]


def test_a_memory_store_carries_a_whole_run_in_this_process_and_writes_no_file(tmp_path: Path) -> None:
    root = write_project(tmp_path / "project", PROJECT)
    with lane.Project.load(root, models={"scripted:x": ScriptedModel(TURNS)}) as project:
        run = project.run("file")
        assert run.status == "paused" and run.pending[0]["tool"] == "desk.send"
        run.approve(as_role="lead")
        done = project.get(run.run_id[:4]).resume()
        assert (done.status, done.show()["steps"][0]["output"]) == ("completed", {"filed": True})
        [call] = done.show()["steps"][0]["tool_calls"]
        assert call["executions"][0]["result"] == {"sent_to": "archive"}
        assert [r.run_id for r in project.runs()] == [run.run_id]
    assert not (root / ".lane").exists() and not list(root.rglob("*.db*"))
    with lane.Project.load(root, models={"scripted:x": ScriptedModel(TURNS)}) as fresh:
        assert fresh.runs() == [], "a memory store lives only as long as its process"


@pytest.mark.parametrize(("url", "says"), [
    ("mysql://db/lane", "write sqlite:///PATH, postgresql://USER@HOST/DB or memory"),
    ("sqlite://", "names no file; write sqlite:///.lane/lane.db"),
    ("sqlite:///runs.db?synchronous=sometimes", "synchronous must be normal or full"),
])
def test_a_bad_store_url_is_a_usage_error_that_says_what_to_write(tmp_path: Path, url: str, says: str) -> None:
    root = write_project(tmp_path / "project", {**PROJECT, "lane.yaml": PROJECT["lane.yaml"].replace("store: memory", f"store: '{url}'")})
    with pytest.raises(UsageError, match="store") as caught:
        open_store(url, root)
    assert says in str(caught.value) and repr(url) in str(caught.value)

    with pytest.raises(UsageError, match=re.escape(says)):  # lane validate and every command refuse it
        lane.Project.load(root, models={"scripted:x": ScriptedModel(TURNS)})
    write_project(root, {"script.yaml": "- output: {filed: true}\n", "lane.yaml": PROJECT["lane.yaml"].replace("scripted:x", "scripted:script.yaml").replace("store: memory", f"store: '{url}'")})
    result = lane_cli("runs", cwd=root)
    assert result.returncode == 2 and says in result.stdout and "Traceback" not in result.stderr
    assert not list(root.rglob("*.db"))


def test_sqlite_urls_are_relative_to_the_project_or_absolute(tmp_path: Path) -> None:
    # SQLite only: files and folders are SQLite's
    root = tmp_path / "project"
    relative = open_store("sqlite:///state/runs.db", root)
    absolute = open_store(f"sqlite:///{tmp_path}/elsewhere/runs.db?synchronous=full", root)
    try:
        assert isinstance(relative, SQLiteStore) and relative.path == root / "state" / "runs.db" and relative.path.exists()
        assert isinstance(absolute, SQLiteStore) and absolute.path == tmp_path / "elsewhere" / "runs.db" and absolute.path.exists()
    finally:
        relative.close()
        absolute.close()


def test_postgresql_and_postgres_urls_open_a_postgresql_store(postgres: Cluster, tmp_path: Path) -> None:
    url = postgres.new_database()
    for written in (url, url.replace("postgresql://", "postgres://")):
        opened = open_store(written, tmp_path)
        try:
            assert isinstance(opened, PostgresStore) and opened.check() == "ok"
            assert opened.shown == written
        finally:
            opened.close()
    assert not list(tmp_path.iterdir()), "a PostgreSQL store writes no file"


def test_a_password_in_a_postgresql_url_is_never_shown(postgres: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PGPASSFILE")  # only the URL's password
    database = postgres.new_database().rsplit("/", 1)[1]
    with_password = postgres.url(database, password=PASSWORD)
    opened = open_store(with_password, tmp_path)
    try:
        opened.create_run("r1", "book", 1, {}, "me")
        assert PASSWORD not in opened.shown and opened.shown == postgres.url(database)
        assert PASSWORD not in repr(query(with_password, "SELECT * FROM runs")), "the URL is never stored"
    finally:
        opened.close()

    for wrong, says in ((postgres.url("nosuchdb", password=PASSWORD), 'database "nosuchdb" does not exist'),
                        (postgres.url(database, password=PASSWORD + "x"), "password authentication failed"),
                        (postgres.url(database, password=PASSWORD) + "?sslmode=sometimes", "sslmode")):
        with pytest.raises((StoreUnavailable, UsageError)) as caught:
            open_store(wrong, tmp_path)
        message = str(caught.value)
        assert says in message and PASSWORD not in message and "\n" not in message, message
        assert f"postgresql://{ROLE}@127.0.0.1:{postgres.port}/" in message


@pytest.mark.parametrize("url", ["postgresql://lane:/Xyzsecret@db.example/lane", "postgresql://lane:Xy@zsecret@db.example/lane",
                                 "postgresql://lane:Xy?zsecret@db.example/lane", "postgresql://lane:Xy#zsecret@db.example/lane",
                                 "postgresql://lane:12/Xyzsecret@db.example/lane"])
def test_a_password_libpq_and_lane_would_read_differently_is_refused_without_showing_it(tmp_path: Path, url: str) -> None:
    with pytest.raises(UsageError) as caught:
        open_store(url, tmp_path)
    message = str(caught.value)
    assert "zsecret" not in message and "db.example" not in message and "\n" not in message, message
    assert "percent-encode the password in store: (/ as %2F, @ as %40" in message and "~/.pgpass" in message


def test_a_postgresql_url_without_slashes_is_refused_without_showing_it(tmp_path: Path) -> None:
    with pytest.raises(UsageError) as caught:
        open_store("postgresql:lane:Xyzsecret@db.example/lane", tmp_path)
    assert str(caught.value) == "store: write postgresql://USER@HOST[:PORT]/DB (lane.yaml: store)"


def test_a_short_password_is_not_scrubbed_into_every_word(postgres: Cluster, tmp_path: Path) -> None:
    database = postgres.new_database().rsplit("/", 1)[1]
    for wrong in (postgres.url(database, password="a"), postgres.url(database, password="a") + "?sslmode=sometimes"):
        with pytest.raises((StoreUnavailable, UsageError)) as caught:
            open_store(wrong, tmp_path)
        message = str(caught.value)
        assert "***" not in message and ("password authentication failed" in message or "sslmode" in message), message


def test_a_postgresql_store_without_psycopg_says_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # as if the extra were not installed: importing it fails
    with pytest.raises(UsageError) as caught:
        open_store("postgresql://lane:hunter2@db.example/lane", tmp_path)
    assert str(caught.value) == "store 'postgresql://lane@db.example/lane': a PostgreSQL store needs psycopg; pip install 'lane[postgres]'"


# -- a crash ----------------------------------------------------------------------------------------------------

def test_runs_still_reads_the_store_after_the_writer_was_sigkilled_mid_run(backing: Backing, tmp_path: Path) -> None:
    root = write_project(tmp_path / "project", {
        "lane.yaml": backing.project_yaml("""
            project: killed
            roles:
              op: {kind: human}
            toolsets:
              slow: {python: tools/slow.py}
        """),
        "runbooks/slow.yaml": """
            runbook: slow
            autonomy: auto
            steps:
              - {id: first, check: ["true"]}
              - {id: nap, tool: slow.nap, args: {seconds: 60}}
        """,
        "tools/slow.py": '''
            import time
            from pathlib import Path
            from lane import tool

            @tool(effect="write")
            def nap(seconds: float) -> str:
                """Sleep."""
                (Path(__file__).parent.parent / "napping").write_text("")
                time.sleep(seconds)
                return "rested"
        ''',
    })
    writer = subprocess.Popen([*LANE, "run", "slow"], cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not (root / "napping").exists():
            assert writer.poll() is None and time.monotonic() < deadline, "the tool never started"
            time.sleep(0.05)
        writer.send_signal(signal.SIGKILL)
        writer.wait(timeout=10)
    finally:
        if writer.poll() is None:
            writer.kill()
        writer.communicate()
    db = root / ".lane" / "lane.db"
    if backing.kind == "sqlite":
        assert (root / ".lane" / "lane.db-wal").exists(), "the scenario needs the killed writer's un-checkpointed WAL"

    [listed] = lane_json("runs", cwd=root)
    assert (listed["runbook"], listed["status"]) == ("slow", "running")
    view = lane_json("show", listed["run_id"], cwd=root)
    first, nap = view["steps"]
    assert first["status"] == "completed" and nap["status"] == "running"
    assert nap["tool_calls"][0]["executions"][0]["status"] == "interrupted"
    if backing.kind == "sqlite":
        with closing(sqlite3.connect(db)) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            types = [t for (t,) in conn.execute("SELECT type FROM events ORDER BY seq")]
    else:
        types = [t for (t,) in query(backing.url, "SELECT type FROM events ORDER BY seq")]
    assert types[0] == "run_started" and types[-1] == "tool_started"

    resumed = lane_cli("resume", listed["run_id"], "--json", cwd=root)  # the dead writer no longer holds the run
    assert resumed.returncode == 3, resumed.stderr
    assert json.loads(resumed.stdout)["status"] == "paused"
    assert lane_json("show", listed["run_id"], cwd=root)["pending"][0]["kind"] == "in_doubt"


@pytest.mark.parametrize("kind", ["memory", "sqlite", "postgresql"])
def test_events_after_a_seq_are_only_the_later_ones(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """What a display tails (`lane run` on Temporal): only the events it has not shown yet."""
    url = {"memory": "memory", "sqlite": "sqlite:///lane.db"}.get(kind) or request.getfixturevalue("postgres").new_database()
    store = open_store(url, tmp_path)
    try:
        owner = process_owner("t")
        store.create_run("r1", "book", 1, {}, owner, first=Event(1, "run_started", None, None, now(), {}))
        store.append("r1", [Event(seq, "note", None, None, now(), {"n": seq}) for seq in (2, 3, 4)])
        assert [e.seq for e in store.events("r1")] == [1, 2, 3, 4]
        assert [e.seq for e in store.events("r1", after=2)] == [3, 4]
        assert store.events("r1", after=4) == []
    finally:
        store.close()
