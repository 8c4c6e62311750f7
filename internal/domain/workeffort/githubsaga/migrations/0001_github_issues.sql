-- The GitHub saga: one row per work effort that has (or was meant to have) an issue.
-- state: creating (intent recorded before the API call), open, closed, failed.
--
-- Until the state moved into the saga's package the store's own migration 0002 created this
-- table: on a database it migrated, the table exists already and this migration only records
-- itself.
CREATE TABLE IF NOT EXISTS github_issues (
    work_effort_id   TEXT    NOT NULL PRIMARY KEY,
    state            TEXT    NOT NULL,
    issue_number     INTEGER,
    issue_url        TEXT    NOT NULL DEFAULT '',
    requested_at     BIGINT  NOT NULL,
    trigger_event_id TEXT    NOT NULL,
    last_error       TEXT    NOT NULL DEFAULT '',
    updated_at       BIGINT  NOT NULL
);
