-- phiserve schema v2 (PostgreSQL): a stored key's content-safety override. Same shape as the SQLite schema.
-- NULL = the deployment's policy; 'annotate' reports findings without blocking; 'off' skips the filter.
-- Keys created before this migration get NULL.

ALTER TABLE api_keys ADD COLUMN content_safety TEXT
  CONSTRAINT api_keys_content_safety_check CHECK (content_safety IS NULL OR content_safety IN ('annotate', 'off'));
