-- phiserve schema v1 (PostgreSQL): API keys and metered usage. Same shape as the SQLite schema.

CREATE TABLE api_keys (
  id          TEXT        PRIMARY KEY,
  name        TEXT        NOT NULL,
  key_hash    TEXT        NOT NULL UNIQUE,       -- SHA-256 hex of the secret; the secret is never stored
  deployments TEXT[],                            -- NULL = all deployments
  rpm         INTEGER     CHECK (rpm IS NULL OR rpm > 0),
  tpm         INTEGER     CHECK (tpm IS NULL OR tpm > 0),
  created_at  TIMESTAMPTZ NOT NULL,
  revoked_at  TIMESTAMPTZ
);

CREATE TABLE usage (
  id                BIGINT      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  request_id        TEXT        NOT NULL,
  principal         TEXT        NOT NULL,
  deployment        TEXT        NOT NULL,
  model             TEXT        NOT NULL,
  prompt_tokens     INTEGER     NOT NULL CHECK (prompt_tokens >= 0),
  completion_tokens INTEGER     NOT NULL CHECK (completion_tokens >= 0),
  status            INTEGER     NOT NULL,
  stream            BOOLEAN     NOT NULL,
  completed         BOOLEAN     NOT NULL,
  queued_ms         INTEGER     NOT NULL,
  duration_ms       INTEGER     NOT NULL,
  created_at        TIMESTAMPTZ NOT NULL
);

CREATE INDEX usage_created_at ON usage (created_at);
CREATE INDEX usage_principal_created_at ON usage (principal, created_at);
