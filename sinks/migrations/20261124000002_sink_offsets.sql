-- Where each sink is, stored with the rows it wrote (in the same
-- transaction), so rows and offsets always agree: a sink assigned a
-- partition starts at next_offset. Kafka's committed offsets for the sink
-- groups are informational only.
CREATE TABLE sink_offsets (
    consumer_group text        NOT NULL,
    topic          text        NOT NULL,
    partition      integer     NOT NULL,
    next_offset    bigint      NOT NULL,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer_group, topic, partition)
);
