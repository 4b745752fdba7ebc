-- What started runs without a person (a webhook's delivery, a schedule's slot, a watched file): each once.
CREATE TABLE deliveries (
    key        TEXT PRIMARY KEY,
    run_id     TEXT,
    created_at TEXT NOT NULL
);
