-- How to reach each customer: by account (IBAN) or card id, per channel.
CREATE TABLE contacts (
    customer_ref TEXT NOT NULL,
    channel      TEXT NOT NULL CHECK (channel IN ('SMS', 'EMAIL')),
    address      TEXT NOT NULL CHECK (address <> ''),
    PRIMARY KEY (customer_ref, channel)
);

-- One row per notification, its id deterministic (payment, kind, channel,
-- recipient): the same event handled again finds its row, and the provider
-- gets the id as its Idempotency-Key on every try.
CREATE TABLE notifications (
    id                  UUID PRIMARY KEY,
    payment_id          TEXT NOT NULL,
    kind                TEXT NOT NULL,
    customer_ref        TEXT NOT NULL,
    channel             TEXT NOT NULL CHECK (channel IN ('SMS', 'EMAIL')),
    recipient           TEXT NOT NULL,
    subject             TEXT NULL,
    body                TEXT NOT NULL,
    state               TEXT NOT NULL
        CHECK (state IN ('PENDING', 'SENDING', 'SENT', 'FAILED', 'UNKNOWN')),
    -- The event that asked for it: notification.sent is caused by it and
    -- continues its trace.
    cause               JSONB NOT NULL,
    cause_headers       JSONB NOT NULL,
    attempts            INTEGER NOT NULL DEFAULT 0,
    first_attempt_at    TIMESTAMPTZ NULL,
    next_attempt_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    provider_message_id TEXT NULL,
    last_error          TEXT NULL,
    created_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    sent_at             TIMESTAMPTZ NULL,
    CONSTRAINT sent_has_a_message CHECK ((state = 'SENT') = (provider_message_id IS NOT NULL))
);

CREATE INDEX notifications_due ON notifications (next_attempt_at)
    WHERE state IN ('PENDING', 'SENDING');
CREATE INDEX notifications_payment ON notifications (payment_id);
