-- Sign-in tokens of the people in lane.yaml's `people:` (lane token create NAME): only their hash is kept.
CREATE TABLE tokens (
    hash       TEXT PRIMARY KEY,
    person     TEXT NOT NULL,
    created_at TEXT NOT NULL
);
