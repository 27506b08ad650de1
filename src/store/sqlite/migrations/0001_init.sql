-- phiserve schema v1 (SQLite): API keys and metered usage.
-- Times are milliseconds since the Unix epoch (UTC); booleans are 0/1.

CREATE TABLE api_keys (
  id          TEXT    PRIMARY KEY,
  name        TEXT    NOT NULL,
  key_hash    TEXT    NOT NULL UNIQUE,           -- SHA-256 hex of the secret; the secret is never stored
  deployments TEXT,                              -- JSON array of deployment names; NULL = all
  rpm         INTEGER CHECK (rpm IS NULL OR rpm > 0),
  tpm         INTEGER CHECK (tpm IS NULL OR tpm > 0),
  created_at  INTEGER NOT NULL,
  revoked_at  INTEGER
);

CREATE TABLE usage (
  id                INTEGER PRIMARY KEY AUTOINCREMENT,
  request_id        TEXT    NOT NULL,
  principal         TEXT    NOT NULL,
  deployment        TEXT    NOT NULL,
  model             TEXT    NOT NULL,
  prompt_tokens     INTEGER NOT NULL CHECK (prompt_tokens >= 0),
  completion_tokens INTEGER NOT NULL CHECK (completion_tokens >= 0),
  status            INTEGER NOT NULL,
  stream            INTEGER NOT NULL CHECK (stream IN (0, 1)),
  completed         INTEGER NOT NULL CHECK (completed IN (0, 1)),
  queued_ms         INTEGER NOT NULL,
  duration_ms       INTEGER NOT NULL,
  created_at        INTEGER NOT NULL
);

CREATE INDEX usage_created_at ON usage (created_at);
CREATE INDEX usage_principal_created_at ON usage (principal, created_at);
