-- phiserve schema v3 (PostgreSQL): admin keys, and what the usage dashboard charts. Same shape as the SQLite schema.
-- api_keys.admin: true = the key may call the admin API; keys created before get false.
-- usage.ttft_ms: time to the first output, from arrival; NULL when nothing was generated.
-- usage.filtered: true when the content filter blocked the prompt or a completion; older rows get false.
-- Throttled requests (429) are rows with status 429 and no tokens.

ALTER TABLE api_keys ADD COLUMN admin BOOLEAN NOT NULL DEFAULT false;
ALTER TABLE usage ADD COLUMN ttft_ms INTEGER CONSTRAINT usage_ttft_ms_check CHECK (ttft_ms IS NULL OR ttft_ms >= 0);
ALTER TABLE usage ADD COLUMN filtered BOOLEAN NOT NULL DEFAULT false;
CREATE INDEX usage_deployment_created_at ON usage (deployment, created_at);
