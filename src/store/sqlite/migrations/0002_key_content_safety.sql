-- phiserve schema v2 (SQLite): a stored key's content-safety override.
-- NULL = the deployment's policy; 'annotate' reports findings without blocking; 'off' skips the filter.
-- Keys created before this migration get NULL.

ALTER TABLE api_keys ADD COLUMN content_safety TEXT CHECK (content_safety IS NULL OR content_safety IN ('annotate', 'off'));
