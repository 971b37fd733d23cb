-- Personal data keys (platform::pii): one per person, stored only wrapped
-- by a master key (PII_MASTER_KEYS), never in a topic. Deleting a row is
-- erasing its person: whatever was sealed under the key no longer opens,
-- in any topic, table, rebuild or backup of those. Written by the ingress
-- (which seals at the edge), read by the services that open.
CREATE TABLE pii_keys (
    key_id     text        PRIMARY KEY,
    person     text        NOT NULL UNIQUE,
    master_id  text        NOT NULL,
    wrapped    bytea       NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX pii_keys_by_master ON pii_keys (master_id);
