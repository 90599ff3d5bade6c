-- The ledger's answer to each payment, once: held or refused. A payment
-- seen again under another eventId (an upstream re-run, a resubmission)
-- keeps its first answer, so a payment refused for want of funds is never
-- held later by a second delivery, and a held one never refused.
CREATE TABLE debit_decisions (
    payment_id  UUID PRIMARY KEY,
    decision    TEXT NOT NULL CHECK (decision IN ('HELD', 'REFUSED')),
    reason_code TEXT NULL,
    event_id    UUID NOT NULL,
    decided_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT refusals_have_reasons CHECK ((decision = 'REFUSED') = (reason_code IS NOT NULL))
);
