-- Seat assignment (issue 9): an enrollment names who it is for (email), a
-- block of seats how many of its seats are assigned, and an assigned seat
-- the block it came from. Written by the enrollments sink.
ALTER TABLE enrollments
    ADD COLUMN email          text,
    ADD COLUMN seats_assigned integer NOT NULL DEFAULT 0,
    ADD COLUMN seat_of        uuid;

-- Seats a buyer assigned are other people's enrollments in the buyer's
-- book (seats = 1 each): the one-active-enrollment promise is about the
-- buyer's own, so it leaves them out...
DROP INDEX one_active_enrollment;
CREATE UNIQUE INDEX one_active_enrollment ON enrollments (buyer_key, internship_id)
    WHERE status = 'active' AND seats = 1 AND seat_of IS NULL;
-- ...and the rule's other promise, one active seat per person and
-- internship in a book, is kept by the table too.
CREATE UNIQUE INDEX one_active_seat ON enrollments (buyer_key, internship_id, lower(email))
    WHERE status = 'active' AND seat_of IS NOT NULL;
