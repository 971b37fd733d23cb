-- Ways to find a person's data keys other than their own id: an email
-- address (as a one-way hash, "email:<sha256>"), linked at placement to
-- the keys the address's orders were sealed under (a guest's cart key, a
-- signed-in buyer's own). An admin's erasure by email destroys them all.
CREATE TABLE pii_aliases (
    alias      text        NOT NULL,
    person     text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (alias, person)
);
