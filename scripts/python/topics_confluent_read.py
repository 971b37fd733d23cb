#!/usr/bin/env python3
"""Reads our topics the way an analytics tool would: Confluent's Python
consumer with isolation.level=read_committed, keys as UTF-8 strings, values
through Confluent's AvroDeserializer and the schema registry.

Usage: topics_confluent_read.py BROKERS REGISTRY_URL TOPIC [TOPIC ...]

For each topic, reads every partition from the beginning to its end and
prints `TOPIC: N records` (and one decoded value); exits non-zero if a
record does not decode. Also checks that the broker has the transaction
state topic (`__transaction_state`), which exists once a transactional
producer has run.
"""

import sys

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext


def main():
    brokers, registry_url, topics = sys.argv[1], sys.argv[2], sys.argv[3:]
    admin = AdminClient({"bootstrap.servers": brokers})
    existing = admin.list_topics(timeout=10).topics
    if "__transaction_state" not in existing:
        raise SystemExit("no __transaction_state topic: no transactional producer ran")
    print("ok: __transaction_state exists")

    values = AvroDeserializer(SchemaRegistryClient({"url": registry_url}))
    for topic in topics:
        consumer = Consumer({
            "bootstrap.servers": brokers,
            "group.id": "analytics-check",
            "enable.auto.commit": False,
            # Java's and this client's default is read_uncommitted; analytics
            # must not count records of aborted transactions.
            "isolation.level": "read_committed",
        })
        partitions = existing[topic].partitions
        ends = {}
        assignment = []
        for p in partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            ends[p] = high
            assignment.append(TopicPartition(topic, p, low))
        consumer.assign(assignment)
        count, sample, done = 0, None, set()
        while len(done) < len(partitions):
            for p in partitions:
                pos = consumer.position([TopicPartition(topic, p)])[0].offset
                if ends[p] == 0 or pos >= ends[p]:
                    done.add(p)
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                raise SystemExit(f"{topic}: {msg.error()}")
            key = msg.key().decode("utf-8") if msg.key() is not None else None
            value = values(msg.value(), SerializationContext(topic, MessageField.VALUE))
            if not isinstance(value, dict):
                raise SystemExit(f"{topic} {msg.partition()}@{msg.offset()}: not a record: {value!r}")
            count += 1
            if sample is None:
                sample = (key, sorted(value.keys())[:6])
        consumer.close()
        print(f"{topic}: {count} records; first key {sample[0] if sample else None!r}, fields {sample[1] if sample else []}")
    print("all topics read with Confluent's deserializer")


if __name__ == "__main__":
    main()
