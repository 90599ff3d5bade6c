-- The ledger: accounts with four balances in integer minor units, and
-- immutable double-entry transfers. Balances are changed only together with
-- the insert of the transfer that explains them, in one transaction.

CREATE TABLE accounts (
    id                             TEXT PRIMARY KEY CHECK (id <> ''),
    currency                       CHAR(3) NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    debits_must_not_exceed_credits BOOLEAN NOT NULL DEFAULT TRUE,
    closed                         BOOLEAN NOT NULL DEFAULT FALSE,
    blocked                        BOOLEAN NOT NULL DEFAULT FALSE,
    debits_pending                 BIGINT NOT NULL DEFAULT 0 CHECK (debits_pending >= 0),
    debits_posted                  BIGINT NOT NULL DEFAULT 0 CHECK (debits_posted >= 0),
    credits_pending                BIGINT NOT NULL DEFAULT 0 CHECK (credits_pending >= 0),
    credits_posted                 BIGINT NOT NULL DEFAULT 0 CHECK (credits_posted >= 0),
    -- The last line of defence: even a buggy statement cannot overdraw.
    CONSTRAINT debits_within_credits CHECK (
        NOT debits_must_not_exceed_credits
        OR debits_pending + debits_posted <= credits_posted
    )
);

CREATE TABLE transfers (
    id             UUID PRIMARY KEY,
    payment_id     UUID NOT NULL,
    debit_account  TEXT NOT NULL REFERENCES accounts (id),
    credit_account TEXT NOT NULL REFERENCES accounts (id),
    amount_minor   BIGINT NOT NULL CHECK (amount_minor > 0),
    currency       CHAR(3) NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    kind           TEXT NOT NULL CHECK (kind IN ('PENDING', 'POST_PENDING', 'VOID_PENDING', 'POSTED')),
    pending_id     UUID NULL REFERENCES transfers (id),
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT distinct_accounts CHECK (debit_account <> credit_account),
    -- Only a post or a void names a hold, and each must name one.
    CONSTRAINT resolution_names_hold CHECK (
        (kind IN ('POST_PENDING', 'VOID_PENDING')) = (pending_id IS NOT NULL)
    ),
    -- A hold is posted or voided at most once.
    CONSTRAINT hold_resolved_once UNIQUE (pending_id)
);

CREATE INDEX transfers_debit_account ON transfers (debit_account, created_at);
CREATE INDEX transfers_credit_account ON transfers (credit_account, created_at);

-- A transfer is a fact: money returned later is a new transfer, never an edit.
CREATE FUNCTION transfers_are_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'transfers are immutable: % refused', TG_OP
        USING ERRCODE = 'restrict_violation';
END;
$$;

CREATE TRIGGER transfers_are_immutable
    BEFORE UPDATE OR DELETE ON transfers
    FOR EACH ROW EXECUTE FUNCTION transfers_are_immutable();

CREATE TRIGGER transfers_are_not_truncated
    BEFORE TRUNCATE ON transfers
    FOR EACH STATEMENT EXECUTE FUNCTION transfers_are_immutable();
