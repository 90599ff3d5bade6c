-- Batches of POST /v1/payment-batches: one per client and batch key, so a
-- repeated batch answers as the first did. The payments themselves live in
-- idempotency_keys under each item's own key, exactly as POST /v1/payments
-- stores them: a payment sent alone and then inside a batch is one payment.
CREATE TABLE payment_batches (
    batch_id       UUID        PRIMARY KEY,
    client_id      TEXT        NOT NULL,
    batch_key      TEXT        NOT NULL,
    -- Canonical-JSON SHA-256 of the whole body: the same key with another
    -- body is refused.
    request_hash   BYTEA       NOT NULL,
    item_count     INT         NOT NULL CHECK (item_count > 0),
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (client_id, batch_key)
);

-- Each item's verdict, stored before any event is sent: a payment (its id;
-- whether the broker acked it is the idempotency record's acked_at) or a
-- refusal with its field errors, which is final and never published.
CREATE TABLE payment_batch_items (
    batch_id        UUID        NOT NULL REFERENCES payment_batches ON DELETE CASCADE,
    item_index      INT         NOT NULL,
    -- NULL when the item carried no usable key (and so was refused).
    idempotency_key TEXT,
    payment_id      UUID,
    refusal         TEXT,
    errors          JSONB,
    PRIMARY KEY (batch_id, item_index),
    CHECK ((payment_id IS NULL) = (refusal IS NOT NULL)),
    CHECK ((refusal IS NULL) = (errors IS NULL))
);
