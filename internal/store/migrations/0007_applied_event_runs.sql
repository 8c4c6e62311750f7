-- The ce_ids a projection applied to one aggregate in one batch, when there are at least
-- Tx.MinAppliedRun of them, as one row (Tx.MarkAppliedRuns; Tx.Applied reads them): the IDs
-- in the order applied, the first at first_version, each quoted as Go's strconv.Quote quotes
-- it, one after the other (a quoted string ends itself, so that a run recorded again under
-- the same key is added to its row by concatenation). applied_events (0006) holds a row per
-- ID, about 1.3 us of the projection's writer per event on SQLite, the largest single cost
-- of a projected event; a batch that applies 8 to 12 events to each aggregate it touches (as
-- in BenchmarkPipeline) writes that many fewer rows here. Shorter runs still go to
-- applied_events, where a row costs less than here (a rowid table and its key: the rows are
-- too long for WITHOUT ROWID, which wrote several times the pages).
CREATE TABLE applied_event_runs (
    consumer      TEXT   NOT NULL,
    aggregate_id  TEXT   NOT NULL,
    first_version BIGINT NOT NULL,
    event_ids     TEXT   NOT NULL,
    PRIMARY KEY (consumer, aggregate_id, first_version)
);
