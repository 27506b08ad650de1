/**
 * Azure-style rate-limit response headers.
 */
import type { RateLimitState } from "./quota.ts";

/**
 * The `x-ratelimit-*` headers for `state`: whole numbers, never negative. A dimension with no
 * limit (Infinity, e.g. a key with an rpm but no tpm and no deployment tpm) is left out rather
 * than reported as a made-up number.
 */
export function toRateLimitHeaders(state: RateLimitState): Record<string, string> {
  const headers: Record<string, string> = {};
  if (Number.isFinite(state.limitRequests)) {
    headers["x-ratelimit-limit-requests"] = asCount(state.limitRequests);
    headers["x-ratelimit-remaining-requests"] = asCount(state.remainingRequests);
  }
  if (Number.isFinite(state.limitTokens)) {
    headers["x-ratelimit-limit-tokens"] = asCount(state.limitTokens);
    headers["x-ratelimit-remaining-tokens"] = asCount(state.remainingTokens);
  }
  return headers;
}

/** Non-negative integer text; NaN (a bug upstream) reads as 0 rather than "NaN". */
function asCount(value: number): string {
  return String(Number.isNaN(value) ? 0 : Math.max(0, Math.floor(value)));
}
