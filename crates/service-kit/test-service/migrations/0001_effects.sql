-- The test service's one effect: a row per payment handled. No unique key on
-- purpose, so a second application of one event would show as a second row.
CREATE TABLE effects (
    id         BIGSERIAL   PRIMARY KEY,
    event_id   UUID        NOT NULL,
    topic      TEXT        NOT NULL,
    account    TEXT        NOT NULL,
    seq        BIGINT      NOT NULL,
    output_id  UUID,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()
);
