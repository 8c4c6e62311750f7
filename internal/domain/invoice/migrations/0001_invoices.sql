CREATE TABLE invoices (
    id           TEXT    NOT NULL PRIMARY KEY,
    customer     TEXT    NOT NULL,
    amount_cents BIGINT  NOT NULL,
    status       TEXT    NOT NULL,
    paid_at      BIGINT,
    version      BIGINT  NOT NULL
);
