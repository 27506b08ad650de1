/**
 * PostgreSQL implementation of {@link Store} (node-postgres Pool). Migrations run under a
 * session-level `pg_advisory_lock`, so replicas starting together apply each one exactly once;
 * the others wait, then find nothing pending. Tables live in the connection's default schema.
 */
import pg from "pg";
import { mintApiKey } from "../api-keys.ts";
import { loadMigrations, pendingMigrations, type Migration } from "../migrations.ts";
import type { ApiKeyContentSafety, ApiKeyRecord, NewApiKey, Percentiles, Store, UsageEntry, UsageQuery, UsageReportRow, UsageStatsQuery, UsageStatsRow } from "../store.ts";
import { checkGroupBy, checkUsageEntry, roundFigure, timeWindow } from "../usage.ts";

/** Options for {@link PostgresStore.open}. */
export interface PostgresStoreOptions {
  /** Pool size (default 10). */
  max?: number;
  /** Called when an idle pooled connection fails (the pool replaces it); default: a process warning. */
  onError?: (error: Error) => void;
}

interface ApiKeyRow {
  id: string;
  name: string;
  key_hash: string;
  deployments: string[] | null;
  rpm: number | null;
  tpm: number | null;
  content_safety: ApiKeyContentSafety | null;
  admin: boolean;
  created_at: Date;
  revoked_at: Date | null;
}

/** COUNT/SUM come back as int8, which node-postgres leaves as strings. */
interface ReportRow {
  grp: string;
  requests: string;
  prompt: string;
  completion: string;
}

const MIGRATIONS_DIR = new URL("./migrations/", import.meta.url);

/** Advisory lock id for migrations ("phiserve" in ASCII, as a bigint). Advisory locks are per database. */
const MIGRATION_LOCK_ID = "8099839874169992805";

/** SQL for each grouping (fixed strings, never user input). Days are UTC. */
const GROUP_SQL: Record<UsageQuery["by"], string> = {
  key: "principal",
  deployment: "deployment",
  day: "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
  hour: `to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24":00Z"')`,
};

/** A request's output speed once admitted, tokens/s (as the SQLite store computes it). */
const TOKENS_PER_SECOND_SQL =
  "CASE WHEN completion_tokens >= 1 AND duration_ms > queued_ms AND ttft_ms IS NOT NULL THEN completion_tokens * 1000.0::float8 / (duration_ms - queued_ms) END";

/** The percentiles every stats query reports, as `percentile_cont`'s fractions. */
const PERCENTILE_FRACTIONS = "ARRAY[0.5, 0.9, 0.99]::float8[]";

const API_KEY_COLUMNS = "id, name, key_hash, deployments, rpm, tpm, content_safety, admin, created_at, revoked_at";

const INSERT_USAGE_SQL = `INSERT INTO usage (request_id, principal, deployment, model, prompt_tokens, completion_tokens,
    status, stream, completed, queued_ms, duration_ms, ttft_ms, filtered, created_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)`;

/** A {@link Store} over a PostgreSQL database. */
export class PostgresStore implements Store {
  private readonly pool: pg.Pool;

  private constructor(pool: pg.Pool) {
    this.pool = pool;
  }

  /** Creates a pool for `connectionString` (connects lazily). Call {@link PostgresStore.migrate} before use. */
  static open(connectionString: string, options: PostgresStoreOptions = {}): PostgresStore {
    const pool = new pg.Pool({ connectionString, max: options.max ?? 10 });
    const onError = options.onError ?? ((error: Error) => process.emitWarning(`PostgreSQL pool connection failed: ${error.message}`));
    pool.on("error", onError);
    return new PostgresStore(pool);
  }

  /** Applies pending migrations in one transaction while holding the migration advisory lock. */
  async migrate(): Promise<void> {
    const migrations = await loadMigrations(MIGRATIONS_DIR);
    const client = await this.pool.connect();
    let failed = false;
    try {
      await client.query("SELECT pg_advisory_lock($1::bigint)", [MIGRATION_LOCK_ID]);
      try {
        await applyMigrations(client, migrations);
      } finally {
        await client.query("SELECT pg_advisory_unlock($1::bigint)", [MIGRATION_LOCK_ID]);
      }
    } catch (error) {
      failed = true;
      throw error;
    } finally {
      // A failed connection is discarded, which also ends its session and so frees the lock.
      client.release(failed);
    }
  }

  async createApiKey(input: NewApiKey): Promise<{ record: ApiKeyRecord; key: string }> {
    const { record, key } = mintApiKey(input);
    await this.pool.query(`INSERT INTO api_keys (${API_KEY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, NULL)`, [
      record.id, record.name, record.keyHash, record.deployments, record.rpm, record.tpm, record.contentSafety, record.admin, record.createdAt,
    ]);
    return { record, key };
  }

  async listApiKeys(): Promise<ApiKeyRecord[]> {
    const result = await this.pool.query<ApiKeyRow>(`SELECT ${API_KEY_COLUMNS} FROM api_keys ORDER BY created_at, id`);
    return result.rows.map(toApiKeyRecord);
  }

  async revokeApiKey(id: string): Promise<boolean> {
    const result = await this.pool.query("UPDATE api_keys SET revoked_at = COALESCE(revoked_at, now()) WHERE id = $1", [id]);
    return (result.rowCount ?? 0) > 0;
  }

  async findApiKeyByHash(keyHash: string): Promise<ApiKeyRecord | undefined> {
    const result = await this.pool.query<ApiKeyRow>(`SELECT ${API_KEY_COLUMNS} FROM api_keys WHERE key_hash = $1`, [keyHash]);
    const row = result.rows[0];
    return row ? toApiKeyRecord(row) : undefined;
  }

  async recordUsage(entry: UsageEntry): Promise<void> {
    const e = checkUsageEntry(entry);
    await this.pool.query(INSERT_USAGE_SQL, [
      e.requestId, e.principal, e.deployment, e.model, e.promptTokens, e.completionTokens, e.status,
      e.stream, e.completed, e.queuedMs, e.durationMs, e.ttftMs ?? null, e.filtered === true, e.createdAt,
    ]);
  }

  /** Totals per group for `since <= createdAt < until`, sorted by group (byte order, as in SQLite). */
  async usageReport(query: UsageQuery): Promise<UsageReportRow[]> {
    const where: string[] = [];
    const params: Date[] = [];
    if (query.since) {
      params.push(query.since);
      where.push(`created_at >= $${params.length}`);
    }
    if (query.until) {
      params.push(query.until);
      where.push(`created_at < $${params.length}`);
    }
    const group = GROUP_SQL[query.by];
    const sql = `SELECT ${group} AS grp, COUNT(*) AS requests,
        COALESCE(SUM(prompt_tokens), 0) AS prompt, COALESCE(SUM(completion_tokens), 0) AS completion
      FROM usage ${where.length > 0 ? `WHERE ${where.join(" AND ")}` : ""}
      GROUP BY ${group} ORDER BY ${group} COLLATE "C"`;
    const result = await this.pool.query<ReportRow>(sql, params);
    return result.rows.map((r) => ({
      group: r.grp,
      requests: Number(r.requests),
      promptTokens: Number(r.prompt),
      completionTokens: Number(r.completion),
    }));
  }

  /** Sums and `percentile_cont` percentiles in one query; rows sorted by the groups in byte order, as in SQLite. */
  async usageStats(query: UsageStatsQuery): Promise<UsageStatsRow[]> {
    const groups = checkGroupBy(query.groupBy).map((g) => GROUP_SQL[g]);
    const { where, params } = timeWindow(query, (i) => `$${i}`, (d) => d);
    const latency = query.percentiles
      ? `percentile_cont(${PERCENTILE_FRACTIONS}) WITHIN GROUP (ORDER BY ttft_ms::float8) AS ttft,
         percentile_cont(${PERCENTILE_FRACTIONS}) WITHIN GROUP (ORDER BY ${TOKENS_PER_SECOND_SQL}) AS tps`
      : "NULL::float8[] AS ttft, NULL::float8[] AS tps";
    const grouping = groups.length > 0 ? `GROUP BY ${groups.join(", ")} ORDER BY ${groups.map((g) => `${g} COLLATE "C"`).join(", ")}` : "";
    const sql = `SELECT ${groups.map((g, i) => `${g} AS g${i}, `).join("")}COUNT(*) AS requests,
        COALESCE(SUM(prompt_tokens), 0) AS prompt, COALESCE(SUM(completion_tokens), 0) AS completion,
        COUNT(*) FILTER (WHERE status = 429) AS throttled, COUNT(*) FILTER (WHERE filtered) AS filtered, ${latency}
      FROM usage ${where} ${grouping}`;
    const result = await this.pool.query<Record<string, unknown>>(sql, params);
    return result.rows.filter((r) => Number(r.requests) > 0).map((r) => ({
      groups: groups.map((_, i) => String(r[`g${i}`])),
      requests: Number(r.requests),
      promptTokens: Number(r.prompt),
      completionTokens: Number(r.completion),
      throttled: Number(r.throttled),
      filtered: Number(r.filtered),
      ttftMs: toPercentiles(r.ttft),
      tokensPerSecond: toPercentiles(r.tps),
    }));
  }

  async close(): Promise<void> {
    if (!this.pool.ended) await this.pool.end();
  }
}

async function applyMigrations(client: pg.PoolClient, migrations: readonly Migration[]): Promise<void> {
  await client.query("BEGIN");
  try {
    await client.query("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())");
    const applied = await client.query<{ version: number }>("SELECT version FROM schema_migrations");
    for (const migration of pendingMigrations(migrations, new Set(applied.rows.map((r) => r.version)))) {
      await client.query(migration.sql);
      await client.query("INSERT INTO schema_migrations (version) VALUES ($1)", [migration.version]);
    }
    await client.query("COMMIT");
  } catch (error) {
    await client.query("ROLLBACK").catch(() => undefined);
    throw error;
  }
}

/** `percentile_cont`'s array (null when the group had no samples) as {@link Percentiles}. */
function toPercentiles(value: unknown): Percentiles | null {
  if (!Array.isArray(value) || value.length !== 3 || value.some((v) => v === null)) return null;
  const [p50, p90, p99] = value.map((v) => roundFigure(Number(v))) as [number, number, number];
  return { p50, p90, p99 };
}

function toApiKeyRecord(row: ApiKeyRow): ApiKeyRecord {
  return {
    id: row.id,
    name: row.name,
    keyHash: row.key_hash,
    deployments: row.deployments,
    rpm: row.rpm,
    tpm: row.tpm,
    contentSafety: row.content_safety,
    admin: row.admin,
    createdAt: row.created_at,
    revokedAt: row.revoked_at,
  };
}
