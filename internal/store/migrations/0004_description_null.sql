-- A work effort's description may be null (Created's description is ["null", "string"]):
-- description_null is 1 when it is, so the read model answers null rather than "". Rows
-- written before keep 0 (their description as stored).
ALTER TABLE work_efforts ADD COLUMN description_null INTEGER NOT NULL DEFAULT 0;
