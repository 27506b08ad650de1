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
  /** True when the key may call the admin API (docs/ADMIN-API.md "Who may call it"). */
  admin: boolean;
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
  /** May call the admin API; default false. */
  admin?: boolean | undefined;
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
  /** Time from arrival to the first output, ms; null or absent when nothing was generated. */
  ttftMs?: number | null | undefined;
  /** True when the content filter blocked the prompt (400) or a completion (`finish_reason: content_filter`). */
  filtered?: boolean | undefined;
  createdAt: Date;
}

/** What usage can be grouped by: principal, deployment, UTC day (YYYY-MM-DD) or UTC hour (YYYY-MM-DDTHH:00Z). */
export type UsageGrouping = "key" | "deployment" | "day" | "hour";

/** Every grouping, in the order help texts list them. */
export const USAGE_GROUPINGS: readonly UsageGrouping[] = Object.freeze(["key", "deployment", "day", "hour"]);

export interface UsageReportRow {
  /** The group's value: principal, deployment, a YYYY-MM-DD day or a YYYY-MM-DDTHH:00Z hour (UTC). */
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

/** Linear-interpolated percentiles (PostgreSQL's `percentile_cont`) of a set of samples. */
export interface Percentiles {
  p50: number;
  p90: number;
  p99: number;
}

/** A usage query over one or more groupings at once (e.g. hour and deployment: a time series per deployment). */
export interface UsageStatsQuery {
  since?: Date | undefined;
  until?: Date | undefined;
  /** Up to three distinct groupings; each row carries one value per grouping, in this order. None: one row over the whole window (none when it holds no usage). */
  groupBy: readonly UsageGrouping[];
  /** Compute the latency percentiles (false: they are null, and the query is cheaper). */
  percentiles: boolean;
}

/** One group of a {@link UsageStatsQuery}. Every recorded request counts in `requests`, throttled and filtered ones too. */
export interface UsageStatsRow {
  /** The group's values, one per `groupBy` entry. */
  groups: string[];
  requests: number;
  promptTokens: number;
  completionTokens: number;
  /** Requests refused with 429 (a rate limit). */
  throttled: number;
  /** Requests whose prompt or completion the content filter blocked. */
  filtered: number;
  /** Time to first token over the requests that produced output, ms; null when none did (or not asked). */
  ttftMs: Percentiles | null;
  /**
   * Output speed per request once admitted: completion tokens / (duration − queue wait), tokens per second (prompt
   * evaluation included), over requests that produced output; null when none (or not asked). Not measured from the
   * first token: with the content filter on, output is released in windows, so the first output can come late.
   */
  tokensPerSecond: Percentiles | null;
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
  /** Totals, throttled and filtered counts and latency percentiles per group, sorted by the groups (byte order). */
  usageStats(query: UsageStatsQuery): Promise<UsageStatsRow[]>;
  close(): Promise<void>;
}
