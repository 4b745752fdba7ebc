-- Runs and their append-only journal of events.
CREATE TABLE runs (
    run_id     TEXT PRIMARY KEY,
    runbook    TEXT NOT NULL,
    version    INTEGER NOT NULL,
    status     TEXT NOT NULL,
    reason     TEXT,
    inputs     TEXT NOT NULL,
    started_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    owner      TEXT
);
CREATE INDEX runs_by_start ON runs (started_at);
CREATE TABLE events (
    run_id  TEXT NOT NULL REFERENCES runs (run_id),
    seq     INTEGER NOT NULL,
    type    TEXT NOT NULL,
    step_id TEXT,
    ref     TEXT,
    at      TEXT NOT NULL,
    data    TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
) WITHOUT ROWID;
