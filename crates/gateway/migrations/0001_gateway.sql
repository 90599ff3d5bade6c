-- Idempotency records of POST /v1/payments: one per client and key. The event
-- is stored before it is sent, so a retry after a 503 re-sends the very same
-- event (same eventId and paymentId) rather than a second payment.
CREATE TABLE idempotency_keys (
    client_id      TEXT        NOT NULL,
    idempotency_key TEXT       NOT NULL,
    request_hash   BYTEA       NOT NULL,
    payment_id     UUID        NOT NULL UNIQUE,
    event          JSONB       NOT NULL,
    response       JSONB,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    acked_at       TIMESTAMPTZ,
    PRIMARY KEY (client_id, idempotency_key)
);

-- The payment status read model, fed by the pipeline's topics.
CREATE TABLE payment_status (
    payment_id     UUID        PRIMARY KEY,
    correlation_id TEXT        NOT NULL,
    status         TEXT        NOT NULL,
    -- Later stages have higher ranks; a late event of an earlier stage does
    -- not move a payment back.
    status_rank    INT         NOT NULL,
    reason_code    TEXT,
    reason_text    TEXT,
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Card-processor webhooks already published, by the processor's webhook id.
CREATE TABLE webhook_receipts (
    webhook_id     TEXT        PRIMARY KEY,
    card_id        TEXT        NOT NULL,
    received_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);
