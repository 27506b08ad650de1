/**
 * Pieces shared by the quota implementations: input validation, limit normalisation and the
 * "tightest limit" state that both report. Kept separate so the in-memory and Redis quotas cannot
 * drift apart on what a limit means or what the headers say.
 */
import type { Limit, RateLimitState, Reservation } from "./quota.ts";

/** The Azure quota window: one minute, sliding. */
export const WINDOW_MS = 60_000;

/** How much of one scope's window is in use (after expiring old entries). */
export interface ScopeUsage {
  /** Requests recorded in the window. */
  requests: number;
  /** Tokens recorded in the window (reserved, or committed where committed). */
  tokens: number;
}

/** Why a reservation was refused, and for how long. */
export interface Denial {
  scope: string;
  reason: "requests" | "tokens";
  retryAfterMs: number;
}

/**
 * Validates limits and merges duplicate scopes (keeping the stricter value of each), so a scope
 * is never charged twice by one request. `Infinity` means "no limit on this dimension" (e.g. an
 * API key with an rpm but no tpm).
 */
export function normalizeLimits(limits: readonly Limit[]): Limit[] {
  const byScope = new Map<string, Limit>();
  for (const limit of limits) {
    assertLimitValue(limit.requestsPerMinute, "requestsPerMinute", limit.scope);
    assertLimitValue(limit.tokensPerMinute, "tokensPerMinute", limit.scope);
    const seen = byScope.get(limit.scope);
    byScope.set(
      limit.scope,
      seen === undefined
        ? { ...limit }
        : {
            scope: limit.scope,
            requestsPerMinute: Math.min(seen.requestsPerMinute, limit.requestsPerMinute),
            tokensPerMinute: Math.min(seen.tokensPerMinute, limit.tokensPerMinute),
          },
    );
  }
  return [...byScope.values()];
}

function assertLimitValue(value: number, field: string, scope: string): void {
  if (value === Infinity) return;
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new RangeError(`${field} of "${scope}" must be a non-negative integer or Infinity, got ${value}`);
  }
}

/** Token counts are whole and non-negative (Redis stores them with HINCRBY). */
export function assertTokenCount(tokens: number, what: string): void {
  if (!Number.isSafeInteger(tokens) || tokens < 0) {
    throw new RangeError(`${what} must be a non-negative integer, got ${tokens}`);
  }
}

/** A commit never raises the count above what was reserved: admission already counted on it. */
export function clampCommit(actualTokens: number, reserved: number): number {
  if (Number.isNaN(actualTokens)) throw new RangeError("actualTokens must be a number, got NaN");
  return Math.min(reserved, Math.max(0, Math.floor(actualTokens)));
}

/**
 * The state the response headers report: for requests and for tokens separately, the limit with
 * the fewest remaining (ties: the smaller limit). Dimensions are picked independently because a
 * deployment may bind on tokens while a key binds on requests; each header pair stays consistent.
 * `usage[i]` belongs to `limits[i]`.
 */
export function tightestState(limits: readonly Limit[], usage: readonly ScopeUsage[]): RateLimitState {
  let requests = { limit: Infinity, remaining: Infinity };
  let tokens = { limit: Infinity, remaining: Infinity };
  limits.forEach((limit, i) => {
    const used = usage[i] ?? { requests: 0, tokens: 0 };
    requests = tighter(requests, limit.requestsPerMinute, used.requests);
    tokens = tighter(tokens, limit.tokensPerMinute, used.tokens);
  });
  return {
    limitRequests: requests.limit,
    limitTokens: tokens.limit,
    remainingRequests: requests.remaining,
    remainingTokens: tokens.remaining,
  };
}

function tighter(
  best: { limit: number; remaining: number },
  limit: number,
  used: number,
): { limit: number; remaining: number } {
  // Never negative: a limit lowered below current use still reports 0, not a debt.
  const remaining = Math.max(0, limit - used);
  if (remaining < best.remaining || (remaining === best.remaining && limit < best.limit)) {
    return { limit, remaining };
  }
  return best;
}

/** The denial that lasts longest: the request fits only once every limit does. */
export function longestDenial(denials: readonly Denial[]): Denial | undefined {
  let longest: Denial | undefined;
  for (const denial of denials) {
    if (longest === undefined || denial.retryAfterMs > longest.retryAfterMs) longest = denial;
  }
  return longest;
}

/** State for an empty limit list: nothing limits, nothing to report. */
export const UNLIMITED_STATE: RateLimitState = Object.freeze({
  limitRequests: Infinity,
  limitTokens: Infinity,
  remainingRequests: Infinity,
  remainingTokens: Infinity,
});

/** For an empty limit list nothing was recorded, so there is nothing to adjust. */
export const NO_OP_RESERVATION: Reservation = Object.freeze({ commit: async (): Promise<void> => {} });
