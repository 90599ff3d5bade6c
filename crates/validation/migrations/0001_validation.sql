-- One decision per payment, whatever the number of deliveries: the primary
-- key is what makes the service exactly-once in effect.
CREATE TABLE decisions (
    payment_id     UUID        PRIMARY KEY,
    correlation_id TEXT        NOT NULL,
    decision       TEXT        NOT NULL,  -- VALIDATED or REJECTED
    reason_code    TEXT,
    reason_text    TEXT,
    decided_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Every check made for a payment, kept for audit: which party, which
-- provider, what it matched, the score, what was decided, how long it took.
CREATE TABLE screening_results (
    id             BIGSERIAL   PRIMARY KEY,
    payment_id     UUID        NOT NULL REFERENCES decisions (payment_id),
    check_kind     TEXT        NOT NULL,  -- AML or IP
    party_role     TEXT,                  -- DEBTOR or CREDITOR
    party_name     TEXT,
    outcome        TEXT        NOT NULL,  -- LOW/MEDIUM/HIGH, or CLEAR/FLAGGED
    matched_list   TEXT,
    matched_entry  TEXT,
    score_permille INT,
    details        JSONB       NOT NULL,
    provider_latency_ms INT    NOT NULL,
    screened_at    TIMESTAMPTZ NOT NULL
);
CREATE INDEX screening_results_payment ON screening_results (payment_id);
