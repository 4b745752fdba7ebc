-- Versions are kept: a run names the snapshot of its runbook's version (its files, content-addressed), and resumes on it.
CREATE TABLE blobs (
    digest  TEXT PRIMARY KEY,  -- sha256 of the text
    content TEXT NOT NULL
);
CREATE TABLE snapshots (
    digest     TEXT COLLATE "C" PRIMARY KEY,  -- sha256 of the manifest
    runbook    TEXT COLLATE "C" NOT NULL,
    version    INTEGER NOT NULL,
    manifest   TEXT NOT NULL,     -- {"files": {path: digest}, "tools": {name: fingerprint}}
    created_at TEXT COLLATE "C" NOT NULL
);
CREATE INDEX snapshots_by_version ON snapshots (runbook, version);
ALTER TABLE runs ADD COLUMN snapshot TEXT;
