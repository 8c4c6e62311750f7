-- Rebuilds of store-positioned projections (pyrite projection rebuild): one row per
-- projection ever rebuilt. generation counts completed swaps, so a process that caches a
-- read model can tell that the tables under it were replaced; started_at is set while a
-- rebuild is in progress (its shadow tables exist) and keeps a second one from starting.
CREATE TABLE projection_rebuilds (
    projection TEXT   NOT NULL PRIMARY KEY,
    generation BIGINT NOT NULL DEFAULT 0,
    started_at BIGINT,
    from_spec  TEXT   NOT NULL DEFAULT '',
    swapped_at BIGINT
);
