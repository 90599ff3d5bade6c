-- Card transactions received from the processor, one row per transaction id
-- (which the processor signs; the webhook_id around it is not signed, so a
-- captured delivery resent under a new webhook_id is the same transaction).
-- A delivery claims the row before it sends the event, with a lease so that
-- concurrent deliveries wait for it instead of sending too; the event is
-- stored as first built and re-sent unchanged (same eventId) if a send fails.
CREATE TABLE card_transactions (
    card_transaction_id TEXT        PRIMARY KEY,
    event_id            UUID        NOT NULL UNIQUE,
    -- The webhook_id of the first delivery, for support.
    webhook_id          TEXT        NOT NULL,
    card_id             TEXT        NOT NULL,
    event               JSONB       NOT NULL,
    -- A delivery is sending the event until then; NULL: nobody is.
    lease_until         TIMESTAMPTZ,
    published_at        TIMESTAMPTZ,
    received_at         TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Deduplicating on the unsigned webhook_id let replays through; its rows
-- name no card transaction, so they cannot be carried over.
DROP TABLE webhook_receipts;
