"""The hand-written alternative the front door is measured against.

A card-processor webhook handler written the way the common blog recipe
writes it: FastAPI parses the body into a pydantic model, the handler
checks the payload's HMAC signature, logs with loguru, and produces the
event with confluent-kafka, flushing the producer on every request so that
the 200 means the broker has it. It keeps no idempotency record and writes
no database, so it does less than the gateway per request; the benchmark
runs it on the same machine, broker and load generator as the gateway.

Settings come from the environment: BASELINE_BOOTSTRAP (the broker),
BASELINE_TOPIC, BASELINE_WEBHOOK_SECRET.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
from typing import Any

from confluent_kafka import KafkaError, Message, Producer
from fastapi import FastAPI, HTTPException
from loguru import logger
from pydantic import BaseModel

SECRET = os.environ["BASELINE_WEBHOOK_SECRET"].encode()
TOPIC = os.environ["BASELINE_TOPIC"]
producer = Producer(
    {
        "bootstrap.servers": os.environ["BASELINE_BOOTSTRAP"],
        "security.protocol": "PLAINTEXT",
    }
)
app = FastAPI()


class CardWebhook(BaseModel):
    webhook: str
    webhook_id: str
    object: str
    object_id: str
    object_payload: dict[str, Any]
    object_payload_signature: str


def delivered(error: KafkaError | None, message: Message) -> None:
    if error:
        logger.error("Failed to push to topic={}: {}", message.topic(), error)
    else:
        logger.info(
            "Successfully pushed to topic={} (partition={}, offset={}).",
            message.topic(),
            message.partition(),
            message.offset(),
        )


@app.post("/v1/webhooks/card-transactions")
def card_transactions(webhook: CardWebhook) -> None:
    # The processor signs the payload's compact JSON text; key order is kept
    # as parsed, so this is the text it signed.
    payload = json.dumps(webhook.object_payload, separators=(",", ":")).encode()
    expected = base64.b64encode(hmac.new(SECRET, payload, hashlib.sha256).digest())
    if not hmac.compare_digest(expected, webhook.object_payload_signature.encode()):
        raise HTTPException(status_code=401, detail="bad signature")
    logger.info(
        "Signature validated for webhook_id={} event={} object_id={}",
        webhook.webhook_id,
        webhook.webhook,
        webhook.object_id,
    )
    transactions = webhook.object_payload.get("cardtransactions") or [{}]
    card_id = transactions[0].get("cardId") if isinstance(transactions[0], dict) else None
    producer.produce(
        TOPIC,
        key=card_id.encode() if isinstance(card_id, str) else None,
        value=json.dumps(webhook.model_dump()).encode(),
        callback=delivered,
    )
    producer.flush()


@app.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}
