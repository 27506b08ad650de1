/**
 * In-process quota: exact sliding one-minute windows kept as a time-ordered log per scope. Right
 * for a single replica (the default); several replicas need {@link RedisQuota} to share one limit.
 */
import type { Limit, Quota, RateLimitState, Reservation, ReserveResult } from "./quota.ts";
import {
  NO_OP_RESERVATION,
  UNLIMITED_STATE,
  WINDOW_MS,
  assertTokenCount,
  clampCommit,
  longestDenial,
  normalizeLimits,
  tightestState,
  type Denial,
} from "./limits.ts";

/** Options for {@link MemoryQuota}. */
export interface MemoryQuotaOptions {
  /** Clock in milliseconds (inject a fake one in tests). Defaults to `Date.now`. */
  now?: () => number;
  /** Window length; 60 000 ms (the Azure minute) unless a test needs otherwise. */
  windowMs?: number;
}

/** One admitted request in one scope's window. */
interface Entry {
  t: number;
  tokens: number;
  /** False once expired out of the window, so a late commit does not touch the totals. */
  live: boolean;
}

/** A scope's log: entries in time order from `head`, with running totals. */
class ScopeWindow {
  private entries: Entry[] = [];
  private head = 0;
  /** Sum of `tokens` over live entries. */
  tokens = 0;

  get requests(): number {
    return this.entries.length - this.head;
  }

  /** Drops entries whose minute is over (t + window ≤ now, the same rule Redis applies). */
  expire(cutoff: number): void {
    let entry = this.entries[this.head];
    while (entry !== undefined && entry.t <= cutoff) {
      entry.live = false;
      this.tokens -= entry.tokens;
      entry = this.entries[++this.head];
    }
    // Compact now and then rather than shift() per entry (O(n) each).
    if (this.head > 1024 && this.head * 2 > this.entries.length) {
      this.entries = this.entries.slice(this.head);
      this.head = 0;
    }
  }

  add(t: number, tokens: number): Entry {
    // A clock that steps back must not break the time order that expiry relies on.
    const last = this.entries[this.entries.length - 1];
    const entry: Entry = { t: last !== undefined && last.t > t ? last.t : t, tokens, live: true };
    this.entries.push(entry);
    this.tokens += tokens;
    return entry;
  }

  commit(entry: Entry, tokens: number): void {
    if (entry.live) this.tokens += tokens - entry.tokens;
    entry.tokens = tokens;
  }

  /** Time of the `n`-th oldest live entry (1-based). */
  timeOf(n: number): number | undefined {
    return this.entries[this.head + n - 1]?.t;
  }

  /** Time of the oldest entry by which, once expired, at least `need` tokens have left. */
  timeFreeing(need: number): number | undefined {
    let freed = 0;
    for (let i = this.head; i < this.entries.length; i++) {
      const entry = this.entries[i];
      if (entry === undefined) break;
      freed += entry.tokens;
      if (freed >= need) return entry.t;
    }
    return undefined;
  }
}

/**
 * Exact in-memory {@link Quota}: every admitted request is logged with its time and tokens, so
 * `retryAfterMs` is the precise time until enough of the window expires for the request to fit.
 * Operations are synchronous inside, hence atomic in Node's single thread.
 */
export class MemoryQuota implements Quota {
  private readonly windows = new Map<string, ScopeWindow>();
  private readonly now: () => number;
  private readonly windowMs: number;

  constructor(options: MemoryQuotaOptions = {}) {
    this.now = options.now ?? Date.now;
    this.windowMs = options.windowMs ?? WINDOW_MS;
  }

  /** {@inheritDoc Quota.reserve} */
  async reserve(limits: readonly Limit[], tokens: number): Promise<ReserveResult> {
    assertTokenCount(tokens, "tokens");
    const normalized = normalizeLimits(limits);
    if (normalized.length === 0) return { ok: true, reservation: NO_OP_RESERVATION, state: UNLIMITED_STATE };
    const now = this.now();
    const windows = normalized.map((limit) => this.current(limit.scope, now));
    const denial = longestDenial(
      normalized.flatMap((limit, i) => this.denials(limit, windows[i] ?? new ScopeWindow(), tokens, now)),
    );
    if (denial !== undefined) {
      this.forgetEmpty(normalized);
      return { ok: false, ...denial, state: tightestState(normalized, windows) };
    }
    const entries = windows.map((window) => window.add(now, tokens));
    return {
      ok: true,
      reservation: this.reservation(windows, entries, tokens),
      state: tightestState(normalized, windows),
    };
  }

  /** {@inheritDoc Quota.peek} */
  async peek(limits: readonly Limit[]): Promise<RateLimitState | undefined> {
    const normalized = normalizeLimits(limits);
    if (normalized.length === 0) return undefined;
    const now = this.now();
    const windows = normalized.map((limit) => this.current(limit.scope, now));
    this.forgetEmpty(normalized);
    return tightestState(normalized, windows);
  }

  /** Drops all windows. */
  async close(): Promise<void> {
    this.windows.clear();
  }

  /** The scope's window with expired entries removed (created on first use). */
  private current(scope: string, now: number): ScopeWindow {
    let window = this.windows.get(scope);
    if (window === undefined) {
      window = new ScopeWindow();
      this.windows.set(scope, window);
    }
    window.expire(now - this.windowMs);
    return window;
  }

  /** Empty windows are dropped so scopes seen once (e.g. old keys) do not accumulate. */
  private forgetEmpty(limits: readonly Limit[]): void {
    for (const { scope } of limits) {
      if (this.windows.get(scope)?.requests === 0) this.windows.delete(scope);
    }
  }

  /** Why this limit refuses the request now, and until when (empty: it allows it). */
  private denials(limit: Limit, window: ScopeWindow, tokens: number, now: number): Denial[] {
    const { scope, requestsPerMinute: rpm, tokensPerMinute: tpm } = limit;
    const denials: Denial[] = [];
    if (window.requests + 1 > rpm) {
      // The (requests − rpm + 1)-th oldest must leave; with rpm 0 nothing ever will.
      const t = rpm === 0 ? undefined : window.timeOf(window.requests - rpm + 1);
      denials.push({ scope, reason: "requests", retryAfterMs: this.waitUntilExpired(t, now) });
    }
    if (window.tokens + tokens > tpm) {
      // More than the whole window can hold never fits; say "a minute" (callers may reject outright).
      const t = tokens > tpm ? undefined : window.timeFreeing(window.tokens + tokens - tpm);
      denials.push({ scope, reason: "tokens", retryAfterMs: this.waitUntilExpired(t, now) });
    }
    return denials;
  }

  private waitUntilExpired(t: number | undefined, now: number): number {
    return t === undefined ? this.windowMs : t + this.windowMs - now;
  }

  private reservation(windows: ScopeWindow[], entries: Entry[], reserved: number): Reservation {
    let committed = false;
    return {
      commit: async (actualTokens: number): Promise<void> => {
        if (committed) return;
        const actual = clampCommit(actualTokens, reserved);
        committed = true;
        windows.forEach((window, i) => {
          const entry = entries[i];
          if (entry !== undefined) window.commit(entry, actual);
        });
      },
    };
  }
}
