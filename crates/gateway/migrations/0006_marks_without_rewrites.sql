-- Marks that say "the broker has it" no longer rewrite the row they mark.
-- Rewriting an idempotency record or a card transaction (its stored event
-- included) to set a flag wrote a whole new row version and its WAL; a mark
-- is now a narrow row of its own. The old columns are no longer written.
-- They stay, and are still honoured where a mark is read, while gateways of
-- the previous release may run beside this one during a rolling upgrade;
-- they go in a later release.

-- A payment's ack mark is its payment_status row, started at SUBMITTED when
-- the broker acks its event (or by the pipeline's first event about it).
COMMENT ON COLUMN idempotency_keys.response IS
    'Not written since migration 0006: a replayed 202 is built from the event';
COMMENT ON COLUMN idempotency_keys.acked_at IS
    'Not written since migration 0006: acked means the payment has a payment_status row';
-- Rows that are never updated need no room on their page for a new version.
ALTER TABLE idempotency_keys SET (fillfactor = 100);

-- A card transaction the broker acked.
CREATE TABLE card_transactions_published (
    card_transaction_id TEXT        PRIMARY KEY,
    published_at        TIMESTAMPTZ NOT NULL DEFAULT now()
);
INSERT INTO card_transactions_published (card_transaction_id, published_at)
SELECT card_transaction_id, published_at FROM card_transactions
WHERE published_at IS NOT NULL;
COMMENT ON COLUMN card_transactions.published_at IS
    'Not written since migration 0006: see card_transactions_published';
-- Only a redelivery after a failed send updates a card transaction now.
ALTER TABLE card_transactions SET (fillfactor = 100);
