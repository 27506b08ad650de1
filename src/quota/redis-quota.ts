/**
 * Quota shared by every replica through Redis: one Lua script checks and reserves across all
 * scopes atomically on the server (see redis-scripts.ts for the data layout), so N replicas
 * admit exactly what one would.
 */
import { randomBytes } from "node:crypto";
import { Redis, type RedisOptions } from "ioredis";
import type { Limit, Quota, RateLimitState, Reservation, ReserveResult } from "./quota.ts";
import {
  NO_OP_RESERVATION,
  UNLIMITED_STATE,
  WINDOW_MS,
  assertTokenCount,
  clampCommit,
  normalizeLimits,
  tightestState,
  type ScopeUsage,
} from "./limits.ts";
import { QUOTA_SCRIPTS } from "./redis-scripts.ts";

/** Default prefix of every key the quota writes. */
export const DEFAULT_QUOTA_KEY_PREFIX = "phiserve:quota:";

/** Options for {@link RedisQuota}. */
export interface RedisQuotaOptions {
  /**
   * Prefix of every key. Under Redis Cluster, put a hash tag in it (e.g. "{phiserve}:quota:") so
   * all scopes of one request live in one slot, as a multi-key script requires.
   */
  keyPrefix?: string | undefined;
  /** Window length; 60 000 ms (the Azure minute). Shorter only to test expiry quickly. */
  windowMs?: number | undefined;
  /** Whether {@link RedisQuota.close} quits the client (true when the quota created it). */
  ownsClient?: boolean | undefined;
}

/** Options for {@link RedisQuota.connect}. */
export interface RedisConnectOptions extends Omit<RedisQuotaOptions, "ownsClient"> {
  /** ioredis settings, over this module's fail-fast defaults. */
  redisOptions?: RedisOptions | undefined;
  /** Connection errors after startup (e.g. to log them). */
  onError?: ((error: Error) => void) | undefined;
}

/**
 * Client settings for the request path: fail a command fast rather than queue it through a long
 * outage (ioredis retries 20 times by default), so a dead Redis surfaces as an error the server
 * can map to 503 instead of requests hanging.
 */
const CLIENT_DEFAULTS: RedisOptions = {
  lazyConnect: true,
  maxRetriesPerRequest: 1,
  connectTimeout: 5_000,
  commandTimeout: 2_000,
};

/** Reply of the reserve script, decoded. */
type ReserveReply =
  | { ok: true; id: string; usage: ScopeUsage[] }
  | { ok: false; retryAfterMs: number; scopeIndex: number; reason: "requests" | "tokens"; usage: ScopeUsage[] };

/**
 * {@link Quota} backed by Redis sorted sets, exact across replicas. Uses Redis server time, so
 * replica clock skew does not matter. A Redis error rejects the call (the quota cannot be
 * enforced); callers decide whether that fails the request.
 */
export class RedisQuota implements Quota {
  private readonly keyPrefix: string;
  private readonly windowMs: number;
  private readonly ownsClient: boolean;

  constructor(
    private readonly redis: Redis,
    options: RedisQuotaOptions = {},
  ) {
    this.keyPrefix = options.keyPrefix ?? DEFAULT_QUOTA_KEY_PREFIX;
    this.windowMs = options.windowMs ?? WINDOW_MS;
    this.ownsClient = options.ownsClient ?? false;
  }

  /**
   * Connects to `url` (redis://, rediss://) and checks the server answers, so a wrong URL fails
   * at startup rather than on the first request. The quota owns (and closes) the client.
   * `onError` receives connection errors after startup (ioredis reconnects by itself; without
   * a handler it prints them to the console).
   */
  static async connect(url: string, options: RedisConnectOptions = {}): Promise<RedisQuota> {
    const { redisOptions, onError, ...quotaOptions } = options;
    const redis = new Redis(url, { ...CLIENT_DEFAULTS, ...redisOptions });
    // The failed first attempt is reported by the rejection below; don't print it twice.
    const quiet = (): void => {};
    redis.on("error", quiet);
    try {
      await redis.connect();
      await redis.ping();
    } catch (error) {
      redis.disconnect();
      throw error;
    } finally {
      redis.off("error", quiet);
    }
    if (onError !== undefined) redis.on("error", onError);
    return new RedisQuota(redis, { ...quotaOptions, ownsClient: true });
  }

  /** {@inheritDoc Quota.reserve} */
  async reserve(limits: readonly Limit[], tokens: number): Promise<ReserveResult> {
    assertTokenCount(tokens, "tokens");
    const normalized = normalizeLimits(limits);
    if (normalized.length === 0) return { ok: true, reservation: NO_OP_RESERVATION, state: UNLIMITED_STATE };
    const args: (string | number)[] = [this.windowMs, tokens, randomBytes(8).toString("hex"), this.windowMs + 1_000];
    for (const limit of normalized) args.push(asLimitArg(limit.requestsPerMinute), asLimitArg(limit.tokensPerMinute));
    const reply = decodeReserveReply(
      await QUOTA_SCRIPTS.reserve.run(this.redis, this.keysOf(normalized), args),
      normalized.length,
    );
    const state = tightestState(normalized, reply.usage);
    if (!reply.ok) {
      const scope = normalized[reply.scopeIndex - 1]?.scope;
      if (scope === undefined) throw new Error(`quota script named scope #${reply.scopeIndex} of ${normalized.length}`);
      return { ok: false, retryAfterMs: reply.retryAfterMs, scope, reason: reply.reason, state };
    }
    return { ok: true, reservation: this.reservation(normalized, reply.id, tokens), state };
  }

  /** {@inheritDoc Quota.peek} */
  async peek(limits: readonly Limit[]): Promise<RateLimitState | undefined> {
    const normalized = normalizeLimits(limits);
    if (normalized.length === 0) return undefined;
    const reply = await QUOTA_SCRIPTS.peek.run(this.redis, this.keysOf(normalized), [this.windowMs]);
    return tightestState(normalized, decodeUsage(reply, 0, normalized.length));
  }

  /** Quits the client if this quota created it; a shared client is left to its owner. */
  async close(): Promise<void> {
    if (this.ownsClient) await this.redis.quit();
  }

  /** (log, tokens) key pairs, in limit order, as the scripts expect. */
  private keysOf(limits: readonly Limit[]): string[] {
    return limits.flatMap(({ scope }) => [this.logKey(scope), this.tokensKey(scope)]);
  }

  private logKey(scope: string): string {
    return `${this.keyPrefix}${scope}:log`;
  }

  private tokensKey(scope: string): string {
    return `${this.keyPrefix}${scope}:tokens`;
  }

  private reservation(limits: readonly Limit[], id: string, reserved: number): Reservation {
    let done: Promise<void> | undefined;
    const keys = limits.map(({ scope }) => this.tokensKey(scope));
    return {
      // Only the first call counts; later ones share its outcome.
      commit: (actualTokens: number): Promise<void> => {
        if (done !== undefined) return done;
        let actual: number;
        try {
          actual = clampCommit(actualTokens, reserved);
        } catch (error) {
          return Promise.reject(error); // a bad argument is not "the" commit
        }
        // Committing the full reservation changes nothing: skip the round trip.
        done = actual === reserved ? Promise.resolve() : this.runCommit(keys, id, actual);
        return done;
      },
    };
  }

  private async runCommit(keys: readonly string[], id: string, actual: number): Promise<void> {
    await QUOTA_SCRIPTS.commit.run(this.redis, keys, [id, actual]);
  }
}

/** Redis has no Infinity; the scripts read -1 as "no limit". */
function asLimitArg(value: number): number {
  return value === Infinity ? -1 : value;
}

function decodeReserveReply(reply: unknown, scopes: number): ReserveReply {
  if (!Array.isArray(reply)) throw new Error("quota script returned a non-array reply");
  const [ok, id, retryAfterMs, scopeIndex, reason] = reply as unknown[];
  const usage = decodeUsage(reply, 5, scopes);
  if (ok === 1 && typeof id === "string") return { ok: true, id, usage };
  if (ok === 0 && typeof retryAfterMs === "number" && typeof scopeIndex === "number") {
    return { ok: false, retryAfterMs, scopeIndex, reason: reason === 1 ? "requests" : "tokens", usage };
  }
  throw new Error(`quota script returned an unexpected reply: ${JSON.stringify(reply)}`);
}

/** (requests, tokens) integer pairs from `offset` on, one per scope. */
function decodeUsage(reply: unknown, offset: number, scopes: number): ScopeUsage[] {
  if (!Array.isArray(reply)) throw new Error("quota script returned a non-array reply");
  const usage: ScopeUsage[] = [];
  for (let i = 0; i < scopes; i++) {
    const requests: unknown = reply[offset + 2 * i];
    const tokens: unknown = reply[offset + 2 * i + 1];
    if (typeof requests !== "number" || typeof tokens !== "number") {
      throw new Error(`quota script returned no usage for scope #${i + 1}`);
    }
    usage.push({ requests, tokens });
  }
  return usage;
}
