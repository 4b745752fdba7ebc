-- What a console shows live: the runs whose status changed since it last looked.
CREATE INDEX runs_by_update ON runs (updated_at);
