//! The OpenAPI 3.1 document served at `/openapi.json`, built in code beside
//! the router; a test checks that every route is documented.

use serde_json::{Value, json};

pub const PATHS: &[&str] = &[
    "/v1/payments",
    "/v1/payments/{id}",
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

pub fn document() -> Value {
    let auth = json!([{ "apiKey": [] }, { "bearer": [] }]);
    json!({
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
                "Problem": { "type": "object", "description": "RFC 9457", "properties": {
                    "type": { "type": "string" }, "title": { "type": "string" }, "status": { "type": "integer" },
                    "detail": { "type": "string" },
                    "errors": { "type": "array", "items": { "type": "object", "properties": {
                        "field": { "type": "string" }, "detail": { "type": "string" } } } } } }
            }
        }
    })
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
