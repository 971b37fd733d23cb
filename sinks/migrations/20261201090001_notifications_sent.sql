-- The notification worker's logs (sinks/src/notifications/).
--
-- notifications_sent: one row per email an SMTP server (or the development
-- file transport) accepted, keyed by the notification's id, derived from
-- its cause (("order-paid", order token), ("payment-failed", order token,
-- attempt), ("enrollment", enrollment id)), so an input read again sends
-- nothing twice. The row is inserted before the send, in a transaction
-- committed right after the server accepted the message: a second sender
-- of the same notification waits on the row, then finds it.
CREATE TABLE notifications_sent (
    notification_id uuid        PRIMARY KEY,
    kind            text        NOT NULL,
    -- The order token or the enrollment id the email is about.
    subject_key     text        NOT NULL,
    recipient       text        NOT NULL,
    subject         text        NOT NULL,
    -- The Message-ID header, derived from notification_id: a resend after
    -- a crash between the send and the commit carries the same one.
    message_id      text        NOT NULL,
    source_topic    text        NOT NULL,
    source_partition integer    NOT NULL,
    source_offset   bigint      NOT NULL,
    sent_at         timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX notifications_sent_by_subject ON notifications_sent (subject_key);

-- Notifications that were wanted but had nobody to go to (an order or an
-- enrollment without an email address), once each: what the
-- notifications_skipped_total metric counts. A later snapshot that brings
-- an address still sends (the sent-log is what prevents a second email).
CREATE TABLE notifications_skipped (
    notification_id uuid        PRIMARY KEY,
    kind            text        NOT NULL,
    subject_key     text        NOT NULL,
    reason          text        NOT NULL,
    skipped_at      timestamptz NOT NULL DEFAULT clock_timestamp()
);
