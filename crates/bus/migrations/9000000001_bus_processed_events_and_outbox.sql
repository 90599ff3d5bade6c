-- The runtime's own tables, in every service database that consumes or
-- stages events. Numbered far above any service's migrations so the two sets
-- never collide; `IF NOT EXISTS` because services created the first two
-- tables at start-up before they were migrations.

-- One row per event a consumer group has processed: claimed in the same
-- transaction as the handler's effects, so an event takes effect once.
CREATE TABLE IF NOT EXISTS bus_processed_events (
    consumer_group TEXT        NOT NULL,
    event_id       UUID        NOT NULL,
    topic          TEXT        NOT NULL,
    processed_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer_group, event_id)
);

-- Events staged by handlers, exactly as they will be sent (key, Confluent-
-- framed value, headers as [name, base64] pairs); deleted once acked.
CREATE TABLE IF NOT EXISTS bus_outbox (
    id         BIGSERIAL   PRIMARY KEY,
    topic      TEXT        NOT NULL,
    key        BYTEA,
    value      BYTEA       NOT NULL,
    headers    JSONB       NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
ALTER TABLE bus_outbox
    ADD COLUMN IF NOT EXISTS attempts   INT  NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS last_error TEXT;

-- Rows the broker refused for good, or that could not be read, set aside so
-- they block nothing. An operator fixes the cause and moves a row back:
--   INSERT INTO bus_outbox (topic, key, value, headers, created_at)
--   SELECT topic, key, value, headers, created_at FROM bus_outbox_parked WHERE id = ...;
CREATE TABLE IF NOT EXISTS bus_outbox_parked (
    id         BIGINT      PRIMARY KEY,
    topic      TEXT        NOT NULL,
    key        BYTEA,
    value      BYTEA       NOT NULL,
    headers    JSONB       NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    attempts   INT         NOT NULL,
    error      TEXT        NOT NULL,
    parked_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
