-- Idempotency-Key answers of the ingress's own API (ingress/src/idempotency/):
-- one row per (caller, key). A request claims its row 'in_flight' before its
-- handler runs; a successful (2xx) answer turns it 'done' with the status,
-- the headers worth replaying and the body; any other answer deletes it.
-- Rows older than 24 h are ignored (a new request takes them over) and
-- purged by the ingress every few minutes.
CREATE TABLE idempotency_keys (
    -- 'user:<sub>' for a valid bearer token, 'guest' without one.
    caller      text        NOT NULL,
    key         text        NOT NULL,
    -- sha256 (hex) of the method, the path and the body.
    fingerprint text        NOT NULL,
    state       text        NOT NULL CHECK (state IN ('in_flight', 'done')),
    status      smallint,
    -- [[name, value], ...] of the answer's replayed headers (Content-Type, Location).
    headers     jsonb,
    body        bytea,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (caller, key),
    CHECK ((state = 'done') = (status IS NOT NULL AND headers IS NOT NULL AND body IS NOT NULL))
);

-- For the purge of expired rows.
CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at);
