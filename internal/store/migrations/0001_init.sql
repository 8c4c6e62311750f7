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

-- A projection's own tables come from its domain module (WithMigrations).

-- Events a consumer (reactor, saga) has handled, for deduplication by ce_id.
CREATE TABLE processed_events (
    consumer     TEXT   NOT NULL,
    event_id     TEXT   NOT NULL,
    processed_at BIGINT NOT NULL,
    PRIMARY KEY (consumer, event_id)
);

CREATE INDEX processed_events_consumer_at ON processed_events (consumer, processed_at);
