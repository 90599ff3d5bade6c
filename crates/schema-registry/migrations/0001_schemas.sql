-- Schema texts, one row per distinct schema. The id is the global schema id that
-- goes into every record's wire header, so it is never reused or renumbered.
CREATE TABLE schemas (
    id           INTEGER GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    schema_type  TEXT        NOT NULL,
    schema_text  TEXT        NOT NULL,
    -- Whitespace- and key-order-insensitive form: the same schema registered twice,
    -- under any subject, resolves to the same id.
    normalized   TEXT        NOT NULL,
    -- sha256 of `normalized`, written by the registry (a generated column cannot
    -- use convert_to, which depends on the database encoding).
    fingerprint  BYTEA       NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX schemas_fingerprint ON schemas (schema_type, fingerprint);

CREATE TABLE subject_versions (
    subject     TEXT        NOT NULL,
    version     INTEGER     NOT NULL CHECK (version > 0),
    schema_id   INTEGER     NOT NULL REFERENCES schemas (id),
    deleted     BOOLEAN     NOT NULL DEFAULT false,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (subject, version)
);
CREATE INDEX subject_versions_schema ON subject_versions (schema_id);

-- Compatibility levels: the global one under the reserved subject '' and
-- per-subject overrides.
CREATE TABLE compatibility_config (
    subject        TEXT        PRIMARY KEY,
    compatibility  TEXT        NOT NULL,
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);
