-- What the customer was told about the payment, from notification.sent:
-- the templates sent, each once (a repeated event adds nothing).
ALTER TABLE payment_status ADD COLUMN notified TEXT[] NOT NULL DEFAULT '{}';
