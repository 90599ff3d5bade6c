-- Every idempotency record and card transaction is written once and then
-- marked once (acked, published), and the mark touches no indexed column.
-- With pages left a quarter empty the mark can be a heap-only update
-- (HOT): the new row version stays on its page and neither index gets a
-- new entry. Packed full, most marks moved the row and wrote both indexes.
ALTER TABLE idempotency_keys SET (fillfactor = 75);
ALTER TABLE card_transactions SET (fillfactor = 75);
