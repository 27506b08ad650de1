/**
 * Picks the quota implementation from configuration.
 */
import type { Quota } from "./quota.ts";
import { MemoryQuota } from "./memory-quota.ts";
import { RedisQuota } from "./redis-quota.ts";

/** Options for {@link createQuota}. */
export interface CreateQuotaOptions {
  /** redis:// or rediss:// URL: share limits across replicas. Absent: in-memory (one replica). */
  redisUrl?: string | undefined;
  /** Key prefix in Redis (default "phiserve:quota:"). */
  keyPrefix?: string | undefined;
  /** Redis connection errors after startup (ioredis reconnects by itself), e.g. to log them. */
  onError?: ((error: Error) => void) | undefined;
}

/**
 * A {@link RedisQuota} when `redisUrl` is set (connected and pinged, so a bad URL fails at
 * startup), else a {@link MemoryQuota}.
 */
export async function createQuota(options: CreateQuotaOptions): Promise<Quota> {
  if (options.redisUrl === undefined || options.redisUrl === "") return new MemoryQuota();
  const { redisUrl, keyPrefix, onError } = options;
  return RedisQuota.connect(redisUrl, {
    keyPrefix,
    onError,
  });
}
