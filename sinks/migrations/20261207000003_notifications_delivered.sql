-- A sent-log row is now claimed (committed) before the send and marked
-- delivered after it, so a sender that stopped in between leaves a claim
-- its successor can check (the development file transport looks for the
-- message on disk) instead of an open transaction that rolls back. Rows
-- written before were delivered. The recipient column keeps a one-way
-- reference to the address, never the address (personal data).
ALTER TABLE notifications_sent ADD COLUMN delivered boolean NOT NULL DEFAULT true;
