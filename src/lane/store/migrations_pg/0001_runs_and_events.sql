-- Runs and their append-only journal of events. Text that is sorted or compared is in the "C" collation,
-- so it orders byte by byte as in SQLite, whatever the database's locale.
CREATE TABLE runs (
    run_id     TEXT COLLATE "C" PRIMARY KEY,
    runbook    TEXT COLLATE "C" NOT NULL,
    version    INTEGER NOT NULL,
    status     TEXT NOT NULL,
    reason     TEXT,
    inputs     TEXT NOT NULL,
    started_at TEXT COLLATE "C" NOT NULL,
    updated_at TEXT COLLATE "C" NOT NULL,
    owner      TEXT
);
CREATE INDEX runs_by_start ON runs (started_at);
CREATE TABLE events (
    run_id  TEXT COLLATE "C" NOT NULL REFERENCES runs (run_id),
    seq     INTEGER NOT NULL,
    type    TEXT NOT NULL,
    step_id TEXT,
    ref     TEXT,
    at      TEXT NOT NULL,
    data    TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
);
