-- The WorkEffort projection's table (Apply's fold). Same SQL on SQLite and PostgreSQL: times
-- are Unix milliseconds (BIGINT), booleans INTEGER 0/1. description_null is 1 when the
-- description is null (Created's description is ["null", "string"]), so the read model
-- answers null rather than "".
--
-- Until the read model moved into this module the store's own migrations created this table
-- (store migrations 0001 and 0004): on a database they migrated, the table and its index
-- exist already and this migration only records itself. (A database last migrated before store
-- migration 0004 has the table without description_null, which this migration does not add: open it once
-- with a build from before the read models moved into their modules, which applies 0004.)
CREATE TABLE IF NOT EXISTS work_efforts (
    id                  TEXT    NOT NULL PRIMARY KEY,
    title               TEXT    NOT NULL DEFAULT '',
    description         TEXT    NOT NULL DEFAULT '',
    status              TEXT    NOT NULL,
    progress            INTEGER NOT NULL DEFAULT 0,
    created_at          BIGINT,
    started_at          BIGINT,
    completed_at        BIGINT,
    version             BIGINT  NOT NULL,
    github_issue        INTEGER,
    github_issue_url    TEXT    NOT NULL DEFAULT '',
    github_issue_closed INTEGER NOT NULL DEFAULT 0,
    needs_manual_sync   INTEGER NOT NULL DEFAULT 0,
    manual_sync_reason  TEXT    NOT NULL DEFAULT '',
    assignee            TEXT    NOT NULL DEFAULT '',
    updated_at          BIGINT,
    description_null    INTEGER NOT NULL DEFAULT 0
);

CREATE INDEX IF NOT EXISTS work_efforts_status_id ON work_efforts (status, id);
