-- GST tax invoices and credit notes (written by the invoices sink from
-- invoice.documents): one row per document, never changed. The invoice
-- processor numbers them; the constraints say what it guarantees, so a
-- document breaking that promise is refused (and dead-lettered) rather
-- than stored: one number once, one sequence per series, one document
-- of each kind per order.
CREATE TABLE invoices (
    number          text        PRIMARY KEY,
    kind            text        NOT NULL CHECK (kind IN ('tax_invoice', 'credit_note')),
    series          text        NOT NULL,
    sequence        bigint      NOT NULL CHECK (sequence > 0),
    financial_year  text        NOT NULL,
    order_token     text        NOT NULL,
    issued_at       timestamptz NOT NULL,
    against_number  text,
    currency        text        NOT NULL,
    total_minor     bigint      NOT NULL,
    tax_minor       bigint      NOT NULL,
    -- The whole document as on the topic (the buyer's GSTIN sealed).
    document        jsonb       NOT NULL,
    UNIQUE (series, sequence),
    UNIQUE (order_token, kind)
);
CREATE INDEX invoices_by_time ON invoices (issued_at DESC);
