-- Pyrite read models. The same SQL runs on SQLite and PostgreSQL: times are Unix
-- milliseconds (BIGINT), booleans are INTEGER 0/1.

-- Next Kafka offset to apply, per projection and topic/partition; written in the same
-- transaction as the projection's rows.
CREATE TABLE projection_positions (
    projection  TEXT    NOT NULL,
    topic       TEXT    NOT NULL,
    partition   INTEGER NOT NULL,
    next_offset BIGINT  NOT NULL,
    updated_at  BIGINT  NOT NULL,
    PRIMARY KEY (projection, topic, partition)
);

-- The WorkEffort projection (internal/workeffort's fold).
CREATE TABLE work_efforts (
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
    updated_at          BIGINT
);

CREATE INDEX work_efforts_status_id ON work_efforts (status, id);

-- Events a consumer (reactor, saga) has handled, for deduplication by ce_id.
CREATE TABLE processed_events (
    consumer     TEXT   NOT NULL,
    event_id     TEXT   NOT NULL,
    processed_at BIGINT NOT NULL,
    PRIMARY KEY (consumer, event_id)
);

CREATE INDEX processed_events_consumer_at ON processed_events (consumer, processed_at);
