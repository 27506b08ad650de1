/**
 * Persistence boundary: API keys and usage records. One interface, implemented for SQLite
 * (`sqlite:PATH`, the default) and PostgreSQL (`postgres://…`); one contract test suite runs
 * against both. Only `store/<impl>/*` imports a database driver.
 */

/** A stored API key. The key itself is never stored: only its SHA-256 (hex). */
export interface ApiKeyRecord {
  /** Public identifier, e.g. "key_3f9a…" (shown in lists, logs and usage). */
  id: string;
  name: string;
  /** SHA-256 hex of the secret key. */
  keyHash: string;
  /** Deployments the key may use; null = all. */
  deployments: string[] | null;
  /** Per-key requests per minute; null = the deployment's limit only. */
  rpm: number | null;
  /** Per-key tokens per minute; null = the deployment's limit only. */
  tpm: number | null;
  /**
   * A trusted tenant's content-safety override: `annotate` reports findings without blocking, `off` skips the
   * filter; null = the deployment's policy (docs/SAFETY.md "Per-key override").
   */
  contentSafety: ApiKeyContentSafety | null;
  createdAt: Date;
  revokedAt: Date | null;
}

/** The content-safety overrides a stored key may carry (an override only relaxes a deployment's filter). */
export type ApiKeyContentSafety = "annotate" | "off";

export interface NewApiKey {
  name: string;
  deployments?: string[] | null;
  rpm?: number | null;
  tpm?: number | null;
  contentSafety?: ApiKeyContentSafety | null;
}

/** One request's metered usage (bill what was generated: streamed, cancelled and failed-after-generation too). */
export interface UsageEntry {
  requestId: string;
  /** API key id, JWT subject ("jwt:<sub>"), "static:<prefix>" or "anonymous". */
  principal: string;
  deployment: string;
  model: string;
  promptTokens: number;
  completionTokens: number;
  /** HTTP status sent (200 for streams, even cut short). */
  status: number;
  stream: boolean;
  /** False when generation was cut short (client gone, deadline, shutdown). */
  completed: boolean;
  queuedMs: number;
  durationMs: number;
  createdAt: Date;
}

export type UsageGrouping = "key" | "deployment" | "day";

export interface UsageReportRow {
  /** The group's value: principal, deployment, or a YYYY-MM-DD day (UTC). */
  group: string;
  requests: number;
  promptTokens: number;
  completionTokens: number;
}

export interface UsageQuery {
  since?: Date | undefined;
  until?: Date | undefined;
  by: UsageGrouping;
}

export interface Store {
  /** Applies pending versioned migrations (idempotent; safe with several processes starting at once). */
  migrate(): Promise<void>;
  /** Creates a key; returns the record and the secret (the only time it exists in clear). */
  createApiKey(input: NewApiKey): Promise<{ record: ApiKeyRecord; key: string }>;
  listApiKeys(): Promise<ApiKeyRecord[]>;
  /** Marks a key revoked; false if no such key. */
  revokeApiKey(id: string): Promise<boolean>;
  /** The key with this SHA-256 hex, revoked or not (callers check `revokedAt`). */
  findApiKeyByHash(keyHash: string): Promise<ApiKeyRecord | undefined>;
  recordUsage(entry: UsageEntry): Promise<void>;
  usageReport(query: UsageQuery): Promise<UsageReportRow[]>;
  close(): Promise<void>;
}
