-- phiserve schema v3 (SQLite): admin keys, and what the usage dashboard charts.
-- api_keys.admin: 1 = the key may call the admin API (docs/ADMIN-API.md "Who may call it"); keys created before get 0.
-- usage.ttft_ms: time to the first output of the request, from its arrival; NULL when nothing was generated
--   (older rows, throttled and prompt-filtered requests, requests that ended before their first token).
-- usage.filtered: 1 when the content filter blocked the prompt (a 400 content_filter) or a completion
--   (finish_reason content_filter); older rows get 0.
-- Throttled requests (429) are rows with status 429 and no tokens.

ALTER TABLE api_keys ADD COLUMN admin INTEGER NOT NULL DEFAULT 0 CHECK (admin IN (0, 1));
ALTER TABLE usage ADD COLUMN ttft_ms INTEGER CHECK (ttft_ms IS NULL OR ttft_ms >= 0);
ALTER TABLE usage ADD COLUMN filtered INTEGER NOT NULL DEFAULT 0 CHECK (filtered IN (0, 1));
CREATE INDEX usage_deployment_created_at ON usage (deployment, created_at);
