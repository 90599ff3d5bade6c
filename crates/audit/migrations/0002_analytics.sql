-- The analytics read model: per hour, per metric and per dimension value,
-- how many and how much (integer minor units per currency). Each event
-- adds to its rows once: the analytics group's processed eventIds commit
-- with the increments.
CREATE TABLE analytics_hourly (
    hour         TIMESTAMPTZ NOT NULL,
    metric       TEXT NOT NULL,
    dimension    TEXT NOT NULL,
    value        TEXT NOT NULL,
    currency     TEXT NOT NULL,
    count        BIGINT NOT NULL,
    volume_minor BIGINT NOT NULL,
    PRIMARY KEY (metric, dimension, hour, value, currency)
);
