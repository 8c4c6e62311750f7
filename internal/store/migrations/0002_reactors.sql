-- State of reactors, sagas and process managers. Same SQL on SQLite and PostgreSQL:
-- times are Unix milliseconds (BIGINT); binary values are base64 TEXT.

-- Named counters, bumped inside a transaction (the outbox sequence per consumer).
CREATE TABLE reactor_counters (
    name  TEXT   NOT NULL PRIMARY KEY,
    value BIGINT NOT NULL
);

-- Transactional outbox: Kafka records a saga or process manager decided to write, committed
-- in the same transaction as its state and positions, produced afterwards by a relay and
-- then deleted. event_id is the record's deterministic ce_id: the same decision is never
-- queued twice.
CREATE TABLE outbox (
    consumer         TEXT    NOT NULL,
    seq              BIGINT  NOT NULL,
    event_id         TEXT    NOT NULL,
    topic            TEXT    NOT NULL,
    record_key       TEXT    NOT NULL,
    record_value     TEXT    NOT NULL,
    headers          TEXT    NOT NULL,
    source_topic     TEXT    NOT NULL DEFAULT '',
    source_partition INTEGER NOT NULL DEFAULT -1,
    created_at       BIGINT  NOT NULL,
    PRIMARY KEY (consumer, seq)
);

CREATE UNIQUE INDEX outbox_consumer_event ON outbox (consumer, event_id);

CREATE INDEX outbox_source ON outbox (consumer, source_topic, source_partition, seq);

-- The GitHub saga's state is its package's migration (internal/domain/workeffort/githubsaga/migrations).

-- The deployment process manager's state is its domain module's migration
-- (internal/domain/deployment/migrations).
