/**
 * Lua run inside Redis for {@link RedisQuota}. Each script runs atomically on the server, so any
 * number of replicas checking and reserving at once see one consistent window: no
 * read-then-write race, no partial reservation across scopes.
 *
 * Layout per scope (two keys, given in KEYS as pairs):
 *  - `<prefix><scope>:log`    sorted set; member = reservation id "<ms>-<random>", score = ms.
 *  - `<prefix><scope>:tokens` hash; field per member id = its tokens, plus `#total` = their sum,
 *    kept in step so admission is O(1) instead of summing the window on every request.
 * Time comes from `redis.call('TIME')`, never the caller, so replicas with skewed clocks agree.
 */
import { createHash } from "node:crypto";
import type { Redis } from "ioredis";

/**
 * Shared preamble: server time, and `expire(z, h)`, which drops entries whose minute is over
 * (score ≤ now − window, as in MemoryQuota) and subtracts their tokens from `#total`. Works in
 * chunks because `unpack` of thousands of ids would overflow Lua's C stack.
 * Expects `window` (ms) to be defined before it.
 */
const PRELUDE = `
-- Redis < 5 needs effect replication before writing after a non-deterministic TIME.
if redis.replicate_commands then pcall(redis.replicate_commands) end
local TOTAL = '#total'
local CHUNK = 500
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local scopes = #KEYS / 2

local function expire(z, h)
  while true do
    local old = redis.call('ZRANGEBYSCORE', z, '-inf', now - window, 'LIMIT', 0, CHUNK)
    if #old == 0 then return end
    local values = redis.call('HMGET', h, unpack(old))
    local freed = 0
    for j = 1, #old do freed = freed + (tonumber(values[j]) or 0) end
    redis.call('ZREM', z, unpack(old))
    redis.call('HDEL', h, unpack(old))
    if freed ~= 0 then redis.call('HINCRBY', h, TOTAL, -freed) end
    if #old < CHUNK then return end
  end
end

-- Expires scope i and returns its {requests, tokens}.
local function usageOf(i)
  local z, h = KEYS[2 * i - 1], KEYS[2 * i]
  expire(z, h)
  return redis.call('ZCARD', z), tonumber(redis.call('HGET', h, TOTAL)) or 0
end
`;

/**
 * Waits: how long until the window has room. `requestWait` finds the entry whose expiry brings
 * the count under the limit; `tokenWait` walks oldest-first until enough tokens would have left.
 * A limit of 0 (or a request larger than the whole limit) never fits: one window is reported.
 */
const WAITS = `
local function requestWait(z, count, rpm)
  if rpm == 0 then return window end
  local hit = redis.call('ZRANGE', z, count - rpm, count - rpm, 'WITHSCORES')
  return tonumber(hit[2]) + window - now
end

local function tokenWait(z, h, need)
  local start, freed = 0, 0
  while true do
    local page = redis.call('ZRANGE', z, start, start + CHUNK - 1, 'WITHSCORES')
    if #page == 0 then return window end
    local ids = {}
    for j = 1, #page, 2 do ids[#ids + 1] = page[j] end
    local values = redis.call('HMGET', h, unpack(ids))
    for j = 1, #ids do
      freed = freed + (tonumber(values[j]) or 0)
      if freed >= need then return tonumber(page[2 * j]) + window - now end
    end
    start = start + CHUNK
  end
end
`;

/**
 * Check-and-reserve. KEYS: (log, tokens) per scope. ARGV: window ms, tokens, random suffix,
 * key TTL ms, then (rpm, tpm) per scope with -1 = unlimited.
 * Returns {1, id, 0, 0, 0, usage...} when admitted (usage after recording), or
 * {0, '', retryAfterMs, scopeIndex (1-based), reason (1 requests, 2 tokens), usage...} when not.
 * The longest wait wins (first on ties): the request fits only once every limit allows it.
 */
const RESERVE = `
local window = tonumber(ARGV[1])
${PRELUDE}
${WAITS}
local tokens, suffix, ttl = tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4])
local usage, denial = {}, nil
local function deny(wait, i, reason)
  if denial == nil or wait > denial[1] then denial = {wait, i, reason} end
end
for i = 1, scopes do
  local z, h = KEYS[2 * i - 1], KEYS[2 * i]
  local count, used = usageOf(i)
  usage[2 * i - 1], usage[2 * i] = count, used
  local rpm, tpm = tonumber(ARGV[3 + 2 * i]), tonumber(ARGV[4 + 2 * i])
  if rpm >= 0 and count + 1 > rpm then deny(requestWait(z, count, rpm), i, 1) end
  if tpm >= 0 and used + tokens > tpm then
    deny(tokens > tpm and window or tokenWait(z, h, used + tokens - tpm), i, 2)
  end
end
if denial then return {0, '', denial[1], denial[2], denial[3], unpack(usage)} end
local id = string.format('%d-%s', now, suffix)
for i = 1, scopes do
  local z, h = KEYS[2 * i - 1], KEYS[2 * i]
  redis.call('ZADD', z, now, id)
  redis.call('HSET', h, id, tokens)
  redis.call('HINCRBY', h, TOTAL, tokens)
  -- Idle scopes vanish a second after their last entry leaves the window.
  redis.call('PEXPIRE', z, ttl)
  redis.call('PEXPIRE', h, ttl)
  usage[2 * i - 1], usage[2 * i] = usage[2 * i - 1] + 1, usage[2 * i] + tokens
end
return {1, id, 0, 0, 0, unpack(usage)}
`;

/** Peek: KEYS as for reserve, ARGV: window ms. Returns usage pairs (after expiring). */
const PEEK = `
local window = tonumber(ARGV[1])
${PRELUDE}
local usage = {}
for i = 1, scopes do usage[2 * i - 1], usage[2 * i] = usageOf(i) end
return usage
`;

/**
 * Commit: KEYS: the tokens hash of each scope; ARGV: reservation id, actual tokens. Lowers the
 * entry and `#total` together. An entry already expired (or a key gone) is left alone: it no
 * longer counts, and recreating it would resurrect a key without a TTL.
 */
const COMMIT = `
local actual = tonumber(ARGV[2])
for i = 1, #KEYS do
  local current = tonumber(redis.call('HGET', KEYS[i], ARGV[1]))
  if current and actual < current then
    redis.call('HSET', KEYS[i], ARGV[1], actual)
    redis.call('HINCRBY', KEYS[i], '#total', actual - current)
  end
end
return 0
`;

/** A Lua script run by EVALSHA, falling back to EVAL when the server does not have it cached. */
export class LuaScript {
  readonly sha: string;

  constructor(readonly source: string) {
    this.sha = createHash("sha1").update(source).digest("hex");
  }

  /** Runs the script; a NOSCRIPT (restart, failover, SCRIPT FLUSH) costs one EVAL that re-caches it. */
  async run(redis: Redis, keys: readonly string[], args: readonly (string | number)[]): Promise<unknown> {
    try {
      return await redis.evalsha(this.sha, keys.length, ...keys, ...args);
    } catch (error) {
      if (!(error instanceof Error) || !error.message.startsWith("NOSCRIPT")) throw error;
      return await redis.eval(this.source, keys.length, ...keys, ...args);
    }
  }
}

/** The quota scripts, hashed once per process. */
export const QUOTA_SCRIPTS = {
  reserve: new LuaScript(RESERVE),
  peek: new LuaScript(PEEK),
  commit: new LuaScript(COMMIT),
} as const;
