-- A run started by a step of another run (`runbook:` steps, for_each over a runbook) names its parent.
ALTER TABLE runs ADD COLUMN parent_id TEXT COLLATE "C";
ALTER TABLE runs ADD COLUMN parent_step TEXT;
CREATE INDEX runs_by_parent ON runs (parent_id);
