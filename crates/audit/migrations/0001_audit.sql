-- The audit log: every record of every topic and dead-letter topic, as
-- received, in one hash chain per source partition.

-- The head of each chain. Its row is locked FOR UPDATE by the one
-- transaction that appends to the chain, so two replicas cannot fork it;
-- `next_offset` is the first offset of the partition not yet seen, so a
-- record redelivered after a crash is recognised without a lookup.
CREATE TABLE audit_chains (
    topic       text        NOT NULL,
    "partition" integer     NOT NULL,
    seq         bigint      NOT NULL DEFAULT 0,
    head        bytea       NOT NULL DEFAULT '\x0000000000000000000000000000000000000000000000000000000000000000'
                            CHECK (octet_length(head) = 32),
    next_offset bigint      NOT NULL DEFAULT 0,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (topic, "partition")
);

CREATE TABLE audit_entries (
    topic          text        NOT NULL,
    "partition"    integer     NOT NULL,
    seq            bigint      NOT NULL CHECK (seq >= 1),
    "offset"       bigint      NOT NULL,
    -- The broker's timestamp of the record, milliseconds.
    timestamp_ms   bigint,
    key            bytea,
    -- Every header in order, lossless: [{"name", "text" | "base64"}], no
    -- value key for a null header. Kept as `json` (not jsonb) so the stored
    -- text is exactly the text that was hashed.
    headers        json        NOT NULL,
    value          bytea,
    schema_id      bigint,
    -- The contract topic the value was decoded as (a dead letter's original).
    event_type     text,
    -- The decoded event; NULL when the value does not decode.
    event          json,
    decode_error   text,
    event_id       uuid,
    payment_id     text,
    correlation_id text,
    causation_id   text,
    producer       text,
    occurred_at    timestamptz,
    trace_id       text,
    -- Dead letters only: why the consumer group gave up on the record.
    error_class    text,
    error_reason   text,
    received_at    timestamptz NOT NULL,
    prev_hash      bytea       NOT NULL CHECK (octet_length(prev_hash) = 32),
    hash           bytea       NOT NULL CHECK (octet_length(hash) = 32),
    PRIMARY KEY (topic, "partition", seq),
    UNIQUE (topic, "partition", "offset"),
    -- An outbox re-send after a crash publishes the same eventId at another
    -- offset: it is stored (and chained) once per topic.
    UNIQUE (topic, event_id)
);

CREATE INDEX audit_entries_payment ON audit_entries (payment_id) WHERE payment_id IS NOT NULL;
CREATE INDEX audit_entries_correlation ON audit_entries (correlation_id) WHERE correlation_id IS NOT NULL;

-- Records whose eventId was already stored for their topic: not chained,
-- but not invisible either.
CREATE TABLE audit_duplicates (
    topic       text        NOT NULL,
    "partition" integer     NOT NULL,
    "offset"    bigint      NOT NULL,
    event_id    uuid        NOT NULL,
    received_at timestamptz NOT NULL,
    PRIMARY KEY (topic, "partition", "offset")
);

-- Append-only: the log refuses to be rewritten, even by its owner, unless
-- someone deliberately disables these triggers (which `audit verify` and
-- the signed checkpoints then catch).
CREATE FUNCTION audit_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER audit_entries_append_only
    BEFORE UPDATE OR DELETE ON audit_entries
    FOR EACH ROW EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_entries_no_truncate
    BEFORE TRUNCATE ON audit_entries
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_duplicates_append_only
    BEFORE UPDATE OR DELETE ON audit_duplicates
    FOR EACH ROW EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_duplicates_no_truncate
    BEFORE TRUNCATE ON audit_duplicates
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();

-- And the grants: nobody, the owning role the service runs as included,
-- holds UPDATE, DELETE or TRUNCATE. (An owner can grant them back; a
-- superuser ignores grants: that is what the hash chain is for.)
REVOKE UPDATE, DELETE, TRUNCATE ON audit_entries, audit_duplicates FROM PUBLIC, CURRENT_USER;
