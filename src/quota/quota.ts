/**
 * Rate limits (Azure serverless: 200,000 tokens/min and 1,000 requests/min per deployment; keys
 * may have their own). Sliding one-minute windows. Tokens are reserved at admission (prompt
 * tokens + max_tokens, or the context remainder) and reconciled with actual usage at the end.
 * In-memory by default; Redis (atomic Lua) so any number of replicas enforce one limit exactly.
 */

export interface Limit {
  /** The bucket, e.g. "deployment:phi-3.5-mini" or "key:key_3f9a". */
  scope: string;
  requestsPerMinute: number;
  tokensPerMinute: number;
}

/** What the response headers report (the tightest of the limits checked). */
export interface RateLimitState {
  limitRequests: number;
  limitTokens: number;
  remainingRequests: number;
  remainingTokens: number;
}

export type ReserveResult =
  | { ok: true; reservation: Reservation; state: RateLimitState }
  | { ok: false; retryAfterMs: number; state: RateLimitState; scope: string; reason: "requests" | "tokens" };

export interface Reservation {
  /** Replaces the reserved tokens with what was actually used (≤ reserved; 0 when nothing ran). */
  commit(actualTokens: number): Promise<void>;
}

export interface Quota {
  /**
   * Atomically checks every limit and, only if all allow it, records one request and `tokens`
   * reserved tokens against each (no partial reservations; no read-then-write races).
   */
  reserve(limits: readonly Limit[], tokens: number): Promise<ReserveResult>;
  /** Current state without reserving (for headers on responses that do not reserve). */
  peek(limits: readonly Limit[]): Promise<RateLimitState | undefined>;
  close(): Promise<void>;
}
