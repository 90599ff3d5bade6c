-- One row per credit transfer sent to the rail, written before the first
-- send. The pacs.008 is built once and kept: every re-send carries the same
-- bytes under the same UETR, which is what lets the rail recognise it.
CREATE TABLE rtgs_submissions (
    payment_id         UUID PRIMARY KEY,
    uetr               UUID NOT NULL UNIQUE,
    message_id         TEXT NOT NULL,
    end_to_end_id      TEXT NOT NULL,
    document           TEXT NOT NULL,
    state              TEXT NOT NULL
        CHECK (state IN ('SUBMITTING', 'SUBMITTED', 'UNKNOWN', 'SETTLED', 'REJECTED')),
    debtor_account     TEXT NOT NULL,
    debtor_agent_bic   TEXT NOT NULL,
    creditor_agent_bic TEXT NOT NULL,
    amount_minor       BIGINT NOT NULL CHECK (amount_minor > 0),
    currency           TEXT NOT NULL,
    -- The account.debited envelope and trace headers: the events decided
    -- later (by callback or status query) are caused by it and continue
    -- its trace.
    cause              JSONB NOT NULL,
    cause_headers      JSONB NOT NULL,
    rail_reference     TEXT NULL,
    reason_code        TEXT NULL,
    reason_text        TEXT NULL,
    settlement_date    DATE NULL,
    attempts           INTEGER NOT NULL DEFAULT 0,
    next_attempt_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_error         TEXT NULL,
    created_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    resolved_at        TIMESTAMPTZ NULL,
    CONSTRAINT rejections_have_reasons CHECK ((state = 'REJECTED') = (reason_code IS NOT NULL)),
    CONSTRAINT resolved_when_final CHECK ((state IN ('SETTLED', 'REJECTED')) = (resolved_at IS NOT NULL))
);

-- What the sender looks for: unresolved submissions that are due.
CREATE INDEX rtgs_submissions_due ON rtgs_submissions (next_attempt_at)
    WHERE state IN ('SUBMITTING', 'SUBMITTED', 'UNKNOWN');

-- Every status report the rail sent, once per message: callbacks, the
-- answers to submissions and status queries. A repeated callback finds its
-- message here and changes nothing.
CREATE TABLE rtgs_status_reports (
    message_id  TEXT PRIMARY KEY,
    uetr        UUID NOT NULL,
    status      TEXT NOT NULL,
    reason_code TEXT NULL,
    via         TEXT NOT NULL CHECK (via IN ('CALLBACK', 'ANSWER', 'STATUS_QUERY')),
    effect      TEXT NOT NULL,
    received_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX rtgs_status_reports_uetr ON rtgs_status_reports (uetr);
