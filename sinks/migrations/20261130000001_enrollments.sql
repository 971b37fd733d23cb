-- Enrollments (written by the enrollments sink from enrollment.snapshots):
-- one row per enrollment (or block of seats), with the book's version so a
-- redelivered older book changes nothing.
CREATE TABLE enrollment_books (
    buyer_key     text        PRIMARY KEY,
    buyer_user_id text,
    version       bigint      NOT NULL
);

CREATE TABLE enrollments (
    enrollment_id        uuid        PRIMARY KEY,
    buyer_key            text        NOT NULL REFERENCES enrollment_books (buyer_key) ON DELETE CASCADE,
    buyer_user_id        text,
    order_token          text        NOT NULL,
    internship_id        text        NOT NULL,
    title                text        NOT NULL,
    seats                integer     NOT NULL,
    status               text        NOT NULL,
    access_granted       boolean     NOT NULL,
    progress_percent     integer     NOT NULL,
    certificate_eligible boolean     NOT NULL,
    enrolled_at          timestamptz NOT NULL
);
CREATE INDEX enrollments_by_user ON enrollments (buyer_user_id, enrolled_at DESC);
-- The rule's promise, kept by the table too: one active personal
-- enrollment of a buyer in an internship.
CREATE UNIQUE INDEX one_active_enrollment ON enrollments (buyer_key, internship_id)
    WHERE status = 'active' AND seats = 1;
