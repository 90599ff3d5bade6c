//! The OpenAPI 3.1 document served at `/openapi.json`, built in code beside
//! the router; a test checks that every route is documented.

use serde_json::{Value, json};

pub const PATHS: &[&str] = &[
    "/v1/payments",
    "/v1/payments/{id}",
    "/v1/payment-batches",
    "/v1/payment-batches/{id}",
    "/v1/webhooks/card-transactions",
    "/healthz",
    "/readyz",
    "/metrics",
];

fn problem(description: &str) -> Value {
    json!({
        "description": description,
        "content": { "application/problem+json": { "schema": { "$ref": "#/components/schemas/Problem" } } }
    })
}

fn party() -> Value {
    json!({
        "type": "object",
        "required": ["name", "account", "agentBic", "country"],
        "properties": {
            "name": { "type": "string", "maxLength": 140 },
            "account": { "type": "string", "description": "IBAN; spaces allowed, checksum verified" },
            "agentBic": { "type": "string", "pattern": "^[A-Z]{6}[A-Z0-9]{2}([A-Z0-9]{3})?$" },
            "country": { "type": "string", "description": "ISO 3166-1 alpha-2" },
            "address": { "type": "string", "maxLength": 140, "description": "travel rule" },
            "dateOfBirth": { "type": "string", "format": "date", "description": "travel rule" },
            "nationalId": { "type": "string", "maxLength": 35, "description": "travel rule" }
        }
    })
}

/// What every answer about a batch item holds, and its `status`.
fn batch_item(status: &str, required: &[&str], properties: Value) -> Value {
    let mut all = json!({
        "index": { "type": "integer", "minimum": 0, "description": "The item's position in `payments`, from 0" },
        "idempotencyKey": { "type": ["string", "null"], "description": "The item's key; null if it had no usable one" },
        "status": { "type": "string", "const": status }
    });
    if let (Some(all), Some(more)) = (all.as_object_mut(), properties.as_object()) {
        all.extend(more.clone());
    }
    let mut names = vec!["index", "idempotencyKey", "status"];
    names.extend(required);
    json!({ "type": "object", "required": names, "properties": all })
}

/// Adds `more`'s members to `into`'s, recursively for objects in both.
fn merge(into: &mut Value, more: Value) {
    match (into, more) {
        (Value::Object(into), Value::Object(more)) => {
            for (key, value) in more {
                merge(into.entry(key).or_insert(Value::Null), value);
            }
        }
        (into, more) => *into = more,
    }
}

fn field_errors() -> Value {
    json!({ "type": "array", "items": { "$ref": "#/components/schemas/FieldError" } })
}

/// The batch paths and their schemas.
fn batch_paths(auth: &Value) -> (Value, Value) {
    let uuid = json!({ "type": "string", "format": "uuid" });
    let refusal = json!({ "type": "string", "enum": ["INVALID_FIELDS", "IDEMPOTENCY_KEY_REUSED", "DUPLICATE_IDEMPOTENCY_KEY"],
        "description": "INVALID_FIELDS: `errors` lists every bad field (named from the item: `payment.debtor.account`); IDEMPOTENCY_KEY_REUSED: the item's key holds another request body; DUPLICATE_IDEMPOTENCY_KEY: an earlier item of the batch has the same key" });
    let unacked = |status: &str, description: &str| {
        let mut item = batch_item(
            status,
            &["paymentId", "correlationId", "detail"],
            json!({
            "paymentId": uuid, "correlationId": { "type": "string" }, "detail": { "type": "string" } }),
        );
        item["description"] = json!(description);
        item
    };
    let paths = json!({
        "/v1/payment-batches": { "post": {
            "operationId": "submitPaymentBatch",
            "summary": "Submit up to 1,000 payments, each under its own idempotency key",
            "description": "Each item is checked, keyed and sent exactly as POST /v1/payments would do with its `payment` and `idempotencyKey` (a payment sent alone and then in a batch under the same key is one payment), and answered on its own: a batch with bad items is answered 200 with those items REFUSED (never published). An item is ACCEPTED only once the broker acked it; NOT_SENT and UNKNOWN items are completed by repeating the batch with the same Idempotency-Key. The same key and body answer the same batch again.",
            "security": auth,
            "parameters": [
                { "name": "Idempotency-Key", "in": "header", "required": true, "schema": { "type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[ -~]*[!-~][ -~]*$" },
                  "description": "The batch's own key. Same key and body: the same batch and answers. Same key, other body: 422." }
            ],
            "requestBody": { "required": true, "content": { "application/json": {
                "schema": { "$ref": "#/components/schemas/PaymentBatchRequest" } } } },
            "responses": {
                "200": { "description": "Every item answered; see each item's `status`",
                         "headers": { "Location": { "schema": { "type": "string" } },
                                      "Retry-After": { "schema": { "type": "integer" }, "description": "When some item is NOT_SENT or UNKNOWN: repeat the batch with the same Idempotency-Key after it" } },
                         "content": { "application/json": { "schema": { "$ref": "#/components/schemas/PaymentBatchAnswer" } } },
                         "links": { "progress": { "operationId": "getPaymentBatch", "parameters": { "id": "$response.body#/batchId" } } } },
                "400": problem("Not JSON, no `payments` array, or a missing Idempotency-Key"),
                "401": problem("No valid API key"),
                "413": { "description": "Body over the batch size limit (2 MiB)" },
                "422": problem("No payments or more than 1,000, or the Idempotency-Key reused with another batch"),
                "429": problem("Over the client's rate limit, or too many requests without a valid API key from this IP; see Retry-After"),
                "503": problem("The gateway's database is unavailable: nothing was sent; repeat with the same Idempotency-Key after Retry-After")
            }
        }},
        "/v1/payment-batches/{id}": { "get": {
            "operationId": "getPaymentBatch",
            "summary": "Each item of a batch and where it stands",
            "security": auth,
            "parameters": [{ "name": "id", "in": "path", "required": true, "schema": uuid }],
            "responses": {
                "200": { "description": "Progress", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/PaymentBatchProgress" } } } },
                "401": problem("No valid API key"),
                "404": problem("No such batch for this client"),
                "429": problem("Over the client's rate limit, or too many requests without a valid API key from this IP; see Retry-After")
            }
        }}
    });
    let progress_status = json!({ "type": "string", "enum": ["REFUSED", "NOT_CONFIRMED", "SUBMITTED", "VALIDATED", "DEBITED", "SUBMITTED_TO_RAIL", "SETTLED", "REJECTED", "REVERSED"],
        "description": "REFUSED: never published; NOT_CONFIRMED: the broker has not acked it yet (repeat the batch with its Idempotency-Key); otherwise the payment's status as GET /v1/payments/{id} shows it" });
    let schemas = json!({
        "PaymentBatchRequest": {
            "type": "object",
            "required": ["payments"],
            "properties": { "payments": { "type": "array", "minItems": 1, "maxItems": 1000,
                "items": { "$ref": "#/components/schemas/PaymentBatchItem" } } }
        },
        "PaymentBatchItem": {
            "type": "object",
            "required": ["idempotencyKey", "payment"],
            "description": "Anything wrong with an item refuses that item alone, in the 200 answer.",
            "properties": {
                "idempotencyKey": { "type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[ -~]*[!-~][ -~]*$",
                                    "description": "The payment's own key, as POST /v1/payments' Idempotency-Key; unique within the batch" },
                "correlationId": { "type": "string", "pattern": "^[!-~]{1,64}$", "description": "As POST /v1/payments' X-Correlation-Id; made if absent" },
                "payment": { "$ref": "#/components/schemas/PaymentRequest" }
            }
        },
        "PaymentBatchAnswer": {
            "type": "object",
            "required": ["batchId", "accepted", "refused", "notSent", "unknown", "items"],
            "properties": {
                "batchId": uuid,
                "accepted": { "type": "integer", "minimum": 0 },
                "refused": { "type": "integer", "minimum": 0 },
                "notSent": { "type": "integer", "minimum": 0 },
                "unknown": { "type": "integer", "minimum": 0 },
                "items": { "type": "array", "items": { "oneOf": [
                    batch_item("ACCEPTED", &["paymentId", "correlationId", "statusUrl"], json!({
                        "paymentId": uuid, "correlationId": { "type": "string" }, "statusUrl": { "type": "string" } })),
                    batch_item("REFUSED", &["refusal", "errors"], json!({ "refusal": refusal, "errors": field_errors() })),
                    unacked("NOT_SENT", "Not recorded; repeat the batch with the same Idempotency-Key"),
                    unacked("UNKNOWN", "Not confirmed in time and possibly recorded; repeat the batch with the same Idempotency-Key (never a new one)")
                ] } }
            }
        },
        "PaymentBatchProgress": {
            "type": "object",
            "required": ["batchId", "createdAt", "total", "counts", "items"],
            "properties": {
                "batchId": uuid,
                "createdAt": { "type": "string", "format": "date-time" },
                "total": { "type": "integer", "minimum": 1 },
                "counts": { "type": "object", "propertyNames": progress_status, "additionalProperties": { "type": "integer", "minimum": 1 } },
                "items": { "type": "array", "items": batch_item("", &[], json!({
                    "status": progress_status,
                    "paymentId": uuid,
                    "statusUrl": { "type": "string" },
                    "reasonCode": { "type": "string" },
                    "updatedAt": { "type": "string", "format": "date-time" },
                    "refusal": refusal,
                    "errors": field_errors() })) }
            }
        }
    });
    (paths, schemas)
}

pub fn document() -> Value {
    let auth = json!([{ "apiKey": [] }, { "bearer": [] }]);
    let mut document = json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Paystream gateway",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Payments are accepted with 202 once durably recorded on Kafka; their status follows the pipeline."
        },
        "paths": {
            "/v1/payments": { "post": {
                "operationId": "submitPayment",
                "summary": "Submit a payment",
                "security": auth,
                "parameters": [
                    { "name": "Idempotency-Key", "in": "header", "required": true, "schema": { "type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[ -~]*[!-~][ -~]*$" },
                      "description": "Same key and body: the original 202. Same key, other body: 422." },
                    { "name": "X-Correlation-Id", "in": "header", "required": false, "schema": { "type": "string", "pattern": "^[!-~]{1,64}$" },
                      "description": "The caller's own correlation id, carried by every event and log line of the payment; without it the gateway makes one. An unusable one is refused (400), not replaced." }
                ],
                "requestBody": { "required": true, "content": { "application/json": {
                    "schema": { "$ref": "#/components/schemas/PaymentRequest" },
                    "example": {
                        "amount": "250.00", "currency": "EUR", "clientIp": "81.2.69.142",
                        "debtor": { "name": "Emily Clarke", "account": "GB82WEST12345698765432", "agentBic": "NWBKGB2L", "country": "GB" },
                        "creditor": { "name": "Camille Moreau", "account": "FR1420041010050500013M02606", "agentBic": "BNPAFRPP", "country": "FR" },
                        "remittanceInformation": "Invoice 42"
                    } } } },
                "responses": {
                    "202": { "description": "Accepted: the payment.submitted event is acked by the broker",
                             "headers": { "Location": { "schema": { "type": "string" } } },
                             "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Accepted" } } },
                             "links": { "status": { "operationId": "getPayment", "parameters": { "id": "$response.body#/paymentId" } } } },
                    "400": problem("Malformed JSON or a missing Idempotency-Key"),
                    "401": problem("No valid API key"),
                    "413": { "description": "Body over the size limit" },
                    "422": problem("Invalid fields (all listed in `errors`) or an Idempotency-Key reused with another body"),
                    "429": problem("Over the client's rate limit, or too many requests without a valid API key from this IP; see Retry-After"),
                    "503": problem("Not recorded (certainly not sent); retry with the same Idempotency-Key after Retry-After"),
                    "504": problem("Not confirmed by the broker in time and possibly recorded; retry with the same Idempotency-Key (never a new one) after Retry-After: the retry completes the same payment")
                }
            }},
            "/v1/payments/{id}": { "get": {
                "operationId": "getPayment",
                "summary": "A payment's current status",
                "security": auth,
                "parameters": [{ "name": "id", "in": "path", "required": true, "schema": { "type": "string", "format": "uuid" } }],
                "responses": {
                    "200": { "description": "Status", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Status" } } } },
                    "401": problem("No valid API key"),
                    "404": problem("No such payment for this client"),
                    "429": problem("Over the client's rate limit, or too many requests without a valid API key from this IP; see Retry-After")
                }
            }},
            "/v1/webhooks/card-transactions": { "post": {
                "summary": "Card processor webhook (cardtransaction.create)",
                "description": "object_payload_signature = base64(HMAC-SHA256(secret, object_payload as sent)). Deduplicated on the signed cardtransactionId (webhook_id is not signed): every delivery of one card transaction, under any webhook_id, publishes one event with one eventId.",
                "requestBody": { "required": true, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/CardWebhook" } } } },
                "responses": {
                    "200": { "description": "Published (or already published)" },
                    "400": problem("Malformed webhook"),
                    "401": problem("Signature does not match"),
                    "422": problem("A field that cannot be held (blank id, control characters, too long; all listed in `errors`), or a card transaction already received with other details"),
                    "429": problem("Too many requests from this IP; see Retry-After"),
                    "503": problem("Not recorded (certainly not sent), or webhooks not configured; the processor should retry"),
                    "504": problem("Not confirmed in time and possibly recorded; the processor should retry (the repeat has the same eventId)")
                }
            }},
            "/healthz": { "get": { "summary": "Liveness", "responses": { "200": { "description": "ok" } } } },
            "/readyz": { "get": { "summary": "Broker, schema registry and database reachable",
                                  "responses": { "200": { "description": "ready" }, "503": { "description": "not ready" } } } },
            "/metrics": { "get": { "summary": "Prometheus metrics", "responses": { "200": { "description": "text exposition format" } } } }
        },
        "components": {
            "securitySchemes": {
                "apiKey": { "type": "apiKey", "in": "header", "name": "X-Api-Key" },
                "bearer": { "type": "http", "scheme": "bearer" }
            },
            "schemas": {
                "PaymentRequest": {
                    "type": "object",
                    "required": ["amount", "currency", "debtor", "creditor"],
                    "properties": {
                        "endToEndId": { "type": "string", "maxLength": 35 },
                        "amount": { "type": "string", "pattern": "^[0-9]+(\\.[0-9]+)?$", "description": "Decimal string, at most the currency's decimal places" },
                        "currency": { "type": "string", "description": "ISO 4217" },
                        "debtor": party(),
                        "creditor": party(),
                        "remittanceInformation": { "type": "string", "maxLength": 140 },
                        "clientIp": { "type": "string", "description": "IPv4 or IPv6 the payment was initiated from" }
                    }
                },
                "CardWebhook": {
                    "type": "object",
                    "required": ["webhook", "webhook_id", "object_payload", "object_payload_signature"],
                    "properties": {
                        "webhook": { "type": "string", "const": "cardtransaction.create" },
                        "webhook_id": { "type": "string" },
                        "object_payload": { "type": "object", "description": "Verified on its bytes as sent; holds `cardtransactions`: exactly one card transaction" },
                        "object_payload_signature": { "type": "string", "description": "base64(HMAC-SHA256(secret, object_payload))" }
                    }
                },
                "Accepted": { "type": "object", "properties": {
                    "paymentId": { "type": "string", "format": "uuid" },
                    "correlationId": { "type": "string" },
                    "status": { "type": "string", "const": "SUBMITTED" } } },
                "Status": { "type": "object", "properties": {
                    "paymentId": { "type": "string", "format": "uuid" },
                    "correlationId": { "type": "string" },
                    "status": { "type": "string", "enum": ["SUBMITTED", "VALIDATED", "DEBITED", "SUBMITTED_TO_RAIL", "SETTLED", "REJECTED", "REVERSED"] },
                    "reasonCode": { "type": ["string", "null"], "description": "Why a payment was rejected or reversed, e.g. AM04 (insufficient funds), SANCTIONS_MATCH" },
                    "reasonText": { "type": ["string", "null"], "description": "A fixed description of reasonCode; screening details are never shown" },
                    "updatedAt": { "type": "string", "format": "date-time" },
                    "customerNotified": { "type": "boolean", "description": "Whether the customer has been told anything about the payment" },
                    "notifications": { "type": "array", "items": { "type": "string" }, "description": "What the customer was told, each once: PAYMENT_DEBITED, PAYMENT_SETTLED, PAYMENT_REVERSED, PAYMENT_REJECTED" } } },
                "FieldError": { "type": "object", "required": ["field", "detail"], "properties": {
                    "field": { "type": "string" }, "detail": { "type": "string" } } },
                "Problem": { "type": "object", "description": "RFC 9457", "properties": {
                    "type": { "type": "string" }, "title": { "type": "string" }, "status": { "type": "integer" },
                    "detail": { "type": "string" },
                    "errors": field_errors() } }
            }
        }
    });
    let (paths, schemas) = batch_paths(&auth);
    for (at, more) in [
        ("paths", paths),
        ("components", json!({ "schemas": schemas })),
    ] {
        merge(&mut document[at], more);
    }
    document
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_documented() {
        let document = document();
        for path in PATHS {
            assert!(
                document["paths"][path].is_object(),
                "{path} is not in the OpenAPI document"
            );
        }
        assert_eq!(
            document["paths"].as_object().map(|p| p.len()),
            Some(PATHS.len())
        );
    }
}
