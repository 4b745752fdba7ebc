-- Versions are kept: a run names the snapshot of its runbook's version (its files, content-addressed), and resumes on it.
CREATE TABLE blobs (
    digest  TEXT PRIMARY KEY,  -- sha256 of the text
    content TEXT NOT NULL
);
CREATE TABLE snapshots (
    digest     TEXT PRIMARY KEY,  -- sha256 of the manifest
    runbook    TEXT NOT NULL,
    version    INTEGER NOT NULL,
    manifest   TEXT NOT NULL,     -- {"files": {path: digest}, "tools": {name: fingerprint}}
    created_at TEXT NOT NULL
);
CREATE INDEX snapshots_by_version ON snapshots (runbook, version);
ALTER TABLE runs ADD COLUMN snapshot TEXT;
