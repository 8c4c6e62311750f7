-- The deployment process manager's state: one row per process. deadline_at is the durable
-- deadline of the step in progress (NULL when no step waits); version is for compare-and-set;
-- stream_version is the highest aggregate version among the process's events (its stream,
-- pyrite.deployment.raw keyed by process id) the manager has handled, which its deadline
-- appends expect (NULL: unknown, no expectation).
--
-- Until the state moved into this module the store's own migrations created this table
-- (store migrations 0002 and 0005): on a database they migrated, the table and its indexes
-- exist already and this migration only records itself. (A database last migrated before store
-- migration 0005 has the table without stream_version, which this migration does not add: open it once
-- with a build from before the read models moved into their modules, which applies 0005.)
CREATE TABLE IF NOT EXISTS deployment_processes (
    process_id      TEXT    NOT NULL PRIMARY KEY,
    work_effort_id  TEXT    NOT NULL,
    state           TEXT    NOT NULL,
    step            TEXT    NOT NULL DEFAULT '',
    command_id      TEXT    NOT NULL DEFAULT '',
    command_type    TEXT    NOT NULL DEFAULT '',
    artifact        TEXT    NOT NULL DEFAULT '',
    environment     TEXT    NOT NULL DEFAULT '',
    deadline_at     BIGINT,
    correlation_id  TEXT    NOT NULL DEFAULT '',
    reason          TEXT    NOT NULL DEFAULT '',
    version         BIGINT  NOT NULL,
    started_at      BIGINT  NOT NULL,
    updated_at      BIGINT  NOT NULL,
    stream_version  BIGINT
);

CREATE INDEX IF NOT EXISTS deployment_processes_deadline ON deployment_processes (deadline_at);

CREATE INDEX IF NOT EXISTS deployment_processes_work_effort ON deployment_processes (work_effort_id);
