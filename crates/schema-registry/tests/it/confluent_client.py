"""Drives a schema registry through Confluent's own Python client
(confluent-kafka[avro,schemaregistry]), the way Confluent's serdes and tools
use it. Run by confluent_client.rs: `python3 confluent_client.py URL`.

Exits 0 when every step behaves as against Confluent's registry; otherwise
prints each failing step and exits 1.
"""

import json
import sys
import traceback
import uuid
from contextlib import contextmanager

from confluent_kafka.schema_registry import (
    ConfigCompatibilityLevel,
    Schema,
    SchemaRegistryClient,
    ServerConfig,
)
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

V1 = {
    "type": "record",
    "name": "Payment",
    "namespace": "test.paystream",
    "fields": [
        {"name": "paymentId", "type": "string"},
        {"name": "amountMinor", "type": "long"},
        {"name": "currency", "type": "string"},
    ],
}
# A new optional field with a default: readable by and able to read V1.
V2 = {
    **V1,
    "fields": V1["fields"] + [{"name": "note", "type": ["null", "string"], "default": None}],
}
# amountMinor changed from long to string: neither side can read the other.
RETYPED = {
    **V1,
    "fields": [
        {"name": "paymentId", "type": "string"},
        {"name": "amountMinor", "type": "string"},
        {"name": "currency", "type": "string"},
    ],
}


class CheckFailed(Exception):
    pass


def check(condition, message):
    # Not `assert`: python -O would skip it.
    if not condition:
        raise CheckFailed(message)


def avro(schema):
    return Schema(json.dumps(schema), "AVRO")


class Steps:
    """Runs each step to the end and records failures, so one run shows every
    request the registry refuses rather than only the first."""

    def __init__(self):
        self.failed = []

    @contextmanager
    def __call__(self, name):
        try:
            yield
        except Exception as error:  # noqa: BLE001 - reported below, with its cause
            self.failed.append(name)
            print(f"FAIL {name}: {error}", flush=True)
            traceback.print_exc()
        else:
            print(f"ok   {name}", flush=True)


def run(url, step):
    client = SchemaRegistryClient({"url": url})
    topic = f"confluent-client-{uuid.uuid4().hex[:12]}"
    subject = f"{topic}-value"

    v1_id = client.register_schema(subject, avro(V1))
    check(isinstance(v1_id, int) and v1_id > 0, f"schema id {v1_id!r}")
    print(f"ok   register_schema v1: id {v1_id}", flush=True)

    # A fresh client per step: the first one's cache must not answer for the registry.
    with step("lookup_schema"):
        found = SchemaRegistryClient({"url": url}).lookup_schema(subject, avro(V1))
        check(found.schema_id == v1_id, f"lookup id {found.schema_id} != {v1_id}")
        check(found.version == 1, f"lookup version {found.version}")
        check(found.subject == subject, f"lookup subject {found.subject}")

    with step("test_compatibility against latest"):
        compatible = client.test_compatibility(subject, avro(V2))
        check(compatible is True, "an added optional field must be compatible")
    with step("test_compatibility against version 1, verbose"):
        compatible = client.test_compatibility(subject, avro(RETYPED), version=1, verbose=True)
        check(compatible is False, "a changed field type must be incompatible")
    with step("test_compatibility_all_versions"):
        compatible = client.test_compatibility_all_versions(subject, avro(V2))
        check(compatible is True, "an added optional field must be compatible with all")

    with step("set_config and get_config"):
        level = ConfigCompatibilityLevel.FULL_TRANSITIVE
        answer = client.set_config(subject, ServerConfig(compatibility=level))
        check(answer.get("compatibility") == level.value, f"set_config answered {answer!r}")
        config = SchemaRegistryClient({"url": url}).get_config(subject)
        check(config.compatibility_level == level, f"get_config answered {config!r}")

    v2_id = client.register_schema(subject, avro(V2))
    check(v2_id != v1_id, "a different schema must get a different id")
    print(f"ok   register_schema v2: id {v2_id}", flush=True)

    with step("get_latest_version"):
        latest = SchemaRegistryClient({"url": url}).get_latest_version(subject)
        check((latest.version, latest.schema_id) == (2, v2_id), f"latest is {latest!r}")
        check(json.loads(latest.schema.schema_str) == V2, "latest schema text differs from v2")

    with step("get_schema by id"):
        by_id = SchemaRegistryClient({"url": url}).get_schema(v1_id)
        check(json.loads(by_id.schema_str) == V1, "schema by id differs from v1")
        check(by_id.schema_type in (None, "AVRO"), f"schema type {by_id.schema_type!r}")

    with step("delete_version, soft then permanent"):
        check(client.delete_version(subject, 2) == 2, "delete_version must answer the version")
        latest = SchemaRegistryClient({"url": url}).get_latest_version(subject)
        check(latest.version == 1, f"latest after deleting v2 is version {latest.version}")
        versions = client.get_versions(subject, deleted=True)
        check(versions == [1, 2], f"versions including deleted are {versions!r}")
        deleted = client.delete_version(subject, 2, permanent=True)
        check(deleted == 2, f"permanent delete_version answered {deleted!r}")
        versions = client.get_versions(subject, deleted=True)
        check(versions == [1], f"versions after the permanent delete are {versions!r}")

    # As a producer with auto.register.schemas=false uses them: the serializer
    # looks the schema up, the deserializer fetches the writer's schema by id.
    with step("AvroSerializer and AvroDeserializer round trip"):
        serializer = AvroSerializer(
            SchemaRegistryClient({"url": url}),
            json.dumps(V1),
            conf={"auto.register.schemas": False},
        )
        deserializer = AvroDeserializer(SchemaRegistryClient({"url": url}))
        context = SerializationContext(topic, MessageField.VALUE)
        payment = {"paymentId": "p-1", "amountMinor": 12345, "currency": "EUR"}
        record = serializer(payment, context)
        check(record[0] == 0, "the Confluent wire format starts with magic byte 0")
        check(int.from_bytes(record[1:5], "big") == v1_id, "the record must carry v1's id")
        decoded = deserializer(record, context)
        check(decoded == payment, f"round trip gave {decoded!r}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(f"usage: {sys.argv[0]} REGISTRY_URL")
    steps = Steps()
    try:
        run(sys.argv[1], steps)
    except Exception:  # noqa: BLE001 - a step the others depend on failed
        traceback.print_exc()
        sys.exit("FAILED: a step the others depend on")
    if steps.failed:
        sys.exit(f"FAILED: {', '.join(steps.failed)}")
    print("all steps passed", flush=True)
