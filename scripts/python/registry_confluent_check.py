#!/usr/bin/env python3
"""Checks a Schema Registry against Confluent's own Python client.

Usage: registry_confluent_check.py REGISTRY_URL

Exercises the calls Confluent's serializers and tools make (register, fetch by
id, latest, versions, lookup, compatibility, config, subjects, delete) and an
Avro serialize/deserialize round trip. Prints each check as it passes; exits
non-zero on the first failure.
"""

import json
import sys
import uuid

from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.serialization import MessageField, SerializationContext

V1 = json.dumps({
    "type": "record", "name": "Payment", "namespace": "checkout.check",
    "fields": [
        {"name": "order_id", "type": "string"},
        {"name": "amount_cents", "type": "long"},
    ],
})
# BACKWARD-compatible: the new field has a default.
V2 = json.dumps({
    "type": "record", "name": "Payment", "namespace": "checkout.check",
    "fields": [
        {"name": "order_id", "type": "string"},
        {"name": "amount_cents", "type": "long"},
        {"name": "currency", "type": "string", "default": "EUR"},
    ],
})
# Not BACKWARD-compatible: a new field without a default.
V_BAD = json.dumps({
    "type": "record", "name": "Payment", "namespace": "checkout.check",
    "fields": [
        {"name": "order_id", "type": "string"},
        {"name": "amount_cents", "type": "long"},
        {"name": "currency", "type": "string", "default": "EUR"},
        {"name": "psp", "type": "string"},
    ],
})


def check(what, condition, detail=""):
    if not condition:
        raise AssertionError(f"{what}: {detail}")
    print(f"ok: {what}")


def expect_error(what, http_status, error_code, call):
    try:
        call()
    except SchemaRegistryError as e:
        check(what, (e.http_status_code, e.error_code) == (http_status, error_code),
              f"got HTTP {e.http_status_code} error_code {e.error_code}: {e.error_message}")
        return
    raise AssertionError(f"{what}: no error raised")


def run(url):
    client = SchemaRegistryClient({"url": url})
    run_id = uuid.uuid4().hex[:8]
    # A '/' in the topic exercises the %2F escaping of subject names.
    topic = f"pycheck/{run_id}"
    subject = f"{topic}-value"

    id1 = client.register_schema(subject, Schema(V1, "AVRO"))
    check("register_schema returns an int id", isinstance(id1, int) and id1 > 0, repr(id1))
    check("registering the same schema again returns the same id",
          client.register_schema(subject, Schema(V1, "AVRO")) == id1)

    fetched = client.get_schema(id1)
    check("get_schema returns the registered schema",
          json.loads(fetched.schema_str) == json.loads(V1), fetched.schema_str)

    latest = client.get_latest_version(subject)
    check("get_latest_version is version 1 with the registered id",
          (latest.version, latest.schema_id, latest.subject) == (1, id1, subject), repr(latest))

    found = client.lookup_schema(subject, Schema(V1, "AVRO"))
    check("lookup_schema finds version 1", (found.version, found.schema_id) == (1, id1), repr(found))

    check("test_compatibility accepts a field with a default",
          client.test_compatibility(subject, Schema(V2, "AVRO")) is True)
    check("test_compatibility rejects a field without a default",
          client.test_compatibility(subject, Schema(V_BAD, "AVRO")) is False)

    id2 = client.register_schema(subject, Schema(V2, "AVRO"))
    check("a compatible evolution gets a new id", id2 != id1, f"{id1} vs {id2}")
    check("get_versions lists both versions", client.get_versions(subject) == [1, 2])
    v2 = client.get_version(subject, 2)
    check("get_version(2) has the new id", v2.schema_id == id2, repr(v2))

    expect_error("an incompatible schema is refused with 409", 409, 409,
                 lambda: client.register_schema(subject, Schema(V_BAD, "AVRO")))

    other = f"pycheck-other-{run_id}-value"
    check("the same schema in another subject gets the same id",
          client.register_schema(other, Schema(V1, "AVRO")) == id1)

    check("global compatibility defaults to BACKWARD", client.get_compatibility() == "BACKWARD")
    set_answer = client.set_compatibility(subject_name=subject, level="NONE")
    check("set_compatibility echoes the level", set_answer == {"compatibility": "NONE"}, repr(set_answer))
    check("get_compatibility reads the subject's level", client.get_compatibility(subject) == "NONE")
    check("test_compatibility follows the subject's level",
          client.test_compatibility(subject, Schema(V_BAD, "AVRO")) is True)

    subjects = client.get_subjects()
    check("get_subjects lists both subjects", subject in subjects and other in subjects, repr(subjects))

    serializer = AvroSerializer(client, V2)
    deserializer = AvroDeserializer(client)
    ctx = SerializationContext(topic, MessageField.VALUE)
    record = {"order_id": "o-1", "amount_cents": 1250, "currency": "SEK"}
    data = serializer(record, ctx)
    check("AvroSerializer writes magic byte 0 and the schema id",
          data[0] == 0 and int.from_bytes(data[1:5], "big") == id2, data[:5].hex())
    check("AvroDeserializer reads the record back", deserializer(data, ctx) == record)

    expect_error("lookup in an unknown subject is 40401", 404, 40401,
                 lambda: client.lookup_schema(f"missing-{run_id}", Schema(V1, "AVRO")))
    expect_error("an unknown schema id is 40403", 404, 40403, lambda: client.get_schema(2_000_000_000))

    check("delete_subject returns the deleted versions", client.delete_subject(subject) == [1, 2])
    check("a deleted subject leaves get_subjects", subject not in client.get_subjects())
    expect_error("versions of a deleted subject are 40401", 404, 40401, lambda: client.get_versions(subject))
    check("delete_subject of the other subject", client.delete_subject(other) == [1])


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        run(sys.argv[1].rstrip("/"))
    except Exception as e:  # noqa: BLE001 -- any failure is a failed check
        print(f"FAILED: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    print("all Confluent client checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
