-- Releases: each runbook's release journal (a version released to a share of new runs, promoted, rolled back).
CREATE TABLE releases (
    seq     INTEGER PRIMARY KEY AUTOINCREMENT,
    runbook TEXT NOT NULL,
    type    TEXT NOT NULL,  -- released | promoted | rolled_back | promotion_proposed
    at      TEXT NOT NULL,
    data    TEXT NOT NULL   -- JSON
);
CREATE INDEX releases_by_runbook ON releases (runbook, seq);
