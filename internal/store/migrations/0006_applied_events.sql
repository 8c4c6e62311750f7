-- The ce_ids each projection has applied (consumer "projection:<table>"), by which it tells a
-- redelivered event from a stale one (Tx.MarkAppliedAll, Tx.Applied). They were kept in
-- processed_events, where a row costs three b-tree inserts (the table, its primary key, the
-- processed_at index) and a projection records one row for every event it applies. Here a row
-- is its key: on SQLite one insert into a WITHOUT ROWID table (the clause is dropped on
-- PostgreSQL). Projections never prune these records, so there is no processed_at.
CREATE TABLE applied_events (
    consumer TEXT NOT NULL,
    event_id TEXT NOT NULL,
    PRIMARY KEY (consumer, event_id)
) WITHOUT ROWID;

INSERT INTO applied_events (consumer, event_id)
    SELECT consumer, event_id FROM processed_events WHERE consumer LIKE 'projection:%';

DELETE FROM processed_events WHERE consumer LIKE 'projection:%';
