/**
 * SQLite implementation of {@link Store} (better-sqlite3). WAL journal with `synchronous=NORMAL`:
 * a crash or power loss can lose the last commits but never corrupts the file; readers do not
 * block the writer. Several processes may share the file: writers wait up to `busyTimeoutMs`.
 */
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import Database from "better-sqlite3";
import { mintApiKey } from "../api-keys.ts";
import { loadMigrations, pendingMigrations, type Migration } from "../migrations.ts";
import type { ApiKeyContentSafety, ApiKeyRecord, NewApiKey, Store, UsageEntry, UsageQuery, UsageReportRow, UsageStatsQuery, UsageStatsRow } from "../store.ts";
import { checkGroupBy, checkUsageEntry, percentilesOf, timeWindow } from "../usage.ts";

/** Options for {@link SqliteStore.open}. */
export interface SqliteStoreOptions {
  /** How long a statement waits for another connection's write lock (default 5000 ms). */
  busyTimeoutMs?: number;
}

interface ApiKeyRow {
  id: string;
  name: string;
  key_hash: string;
  deployments: string | null;
  rpm: number | null;
  tpm: number | null;
  content_safety: ApiKeyContentSafety | null;
  admin: number;
  created_at: number;
  revoked_at: number | null;
}

const MIGRATIONS_DIR = new URL("./migrations/", import.meta.url);

/** SQL for each grouping (fixed strings, never user input). Days are UTC. */
const GROUP_SQL: Record<UsageQuery["by"], string> = {
  key: "principal",
  deployment: "deployment",
  day: "strftime('%Y-%m-%d', created_at / 1000, 'unixepoch')",
  hour: "strftime('%Y-%m-%dT%H:00Z', created_at / 1000, 'unixepoch')",
};

/** A request's output speed once admitted, tokens/s (store.ts UsageStatsRow.tokensPerSecond). */
const TOKENS_PER_SECOND_SQL =
  "CASE WHEN completion_tokens >= 1 AND duration_ms > queued_ms THEN completion_tokens * 1000.0 / (duration_ms - queued_ms) END";

const API_KEY_COLUMNS = "id, name, key_hash, deployments, rpm, tpm, content_safety, admin, created_at, revoked_at";

const INSERT_USAGE_SQL = `INSERT INTO usage (request_id, principal, deployment, model, prompt_tokens, completion_tokens,
    status, stream, completed, queued_ms, duration_ms, ttft_ms, filtered, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`;

/** A {@link Store} over one SQLite file. */
export class SqliteStore implements Store {
  private readonly db: Database.Database;
  private readonly statements = new Map<string, Database.Statement>();

  private constructor(db: Database.Database) {
    this.db = db;
  }

  /** A prepared statement, compiled once per SQL text (valid once the schema exists). */
  private statement(sql: string): Database.Statement {
    let prepared = this.statements.get(sql);
    if (!prepared) {
      prepared = this.db.prepare(sql);
      this.statements.set(sql, prepared);
    }
    return prepared;
  }

  /**
   * Opens (creating it and its parent folders if needed) the database at `path`; `:memory:` works too.
   * Call {@link SqliteStore.migrate} before use.
   */
  static open(path: string, options: SqliteStoreOptions = {}): SqliteStore {
    if (path !== ":memory:") mkdirSync(dirname(path), { recursive: true });
    const db = new Database(path);
    try {
      db.pragma(`busy_timeout = ${Math.max(0, Math.floor(options.busyTimeoutMs ?? 5000))}`);
      db.pragma("journal_mode = WAL");
      db.pragma("synchronous = NORMAL");
      db.pragma("foreign_keys = ON");
    } catch (error) {
      db.close();
      throw error;
    }
    return new SqliteStore(db);
  }

  /** Applies pending migrations in one IMMEDIATE transaction (other processes wait, then see them applied). */
  async migrate(): Promise<void> {
    const migrations = await loadMigrations(MIGRATIONS_DIR);
    const apply = this.db.transaction((all: Migration[]) => {
      this.db.exec("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)");
      const rows = this.db.prepare("SELECT version FROM schema_migrations").all() as { version: number }[];
      for (const migration of pendingMigrations(all, new Set(rows.map((r) => r.version)))) {
        this.db.exec(migration.sql);
        this.db.prepare("INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)").run(migration.version, Date.now());
      }
    });
    apply.immediate(migrations);
  }

  async createApiKey(input: NewApiKey): Promise<{ record: ApiKeyRecord; key: string }> {
    const { record, key } = mintApiKey(input);
    const deployments = record.deployments ? JSON.stringify(record.deployments) : null;
    this.statement(`INSERT INTO api_keys (${API_KEY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, NULL)`).run(
      record.id, record.name, record.keyHash, deployments, record.rpm, record.tpm, record.contentSafety, record.admin ? 1 : 0, record.createdAt.getTime(),
    );
    return { record, key };
  }

  async listApiKeys(): Promise<ApiKeyRecord[]> {
    const rows = this.statement(`SELECT ${API_KEY_COLUMNS} FROM api_keys ORDER BY created_at, id`).all() as ApiKeyRow[];
    return rows.map(toApiKeyRecord);
  }

  async revokeApiKey(id: string): Promise<boolean> {
    const result = this.statement("UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?").run(Date.now(), id);
    return result.changes > 0;
  }

  async findApiKeyByHash(keyHash: string): Promise<ApiKeyRecord | undefined> {
    const row = this.statement(`SELECT ${API_KEY_COLUMNS} FROM api_keys WHERE key_hash = ?`).get(keyHash) as ApiKeyRow | undefined;
    return row ? toApiKeyRecord(row) : undefined;
  }

  async recordUsage(entry: UsageEntry): Promise<void> {
    const e = checkUsageEntry(entry);
    this.statement(INSERT_USAGE_SQL).run(
      e.requestId, e.principal, e.deployment, e.model, e.promptTokens, e.completionTokens, e.status,
      e.stream ? 1 : 0, e.completed ? 1 : 0, e.queuedMs, e.durationMs, e.ttftMs ?? null, e.filtered ? 1 : 0, e.createdAt.getTime(),
    );
  }

  /** Totals per group for `since <= createdAt < until`, sorted by group (binary order). */
  async usageReport(query: UsageQuery): Promise<UsageReportRow[]> {
    const where: string[] = [];
    const params: number[] = [];
    if (query.since) {
      where.push("created_at >= ?");
      params.push(query.since.getTime());
    }
    if (query.until) {
      where.push("created_at < ?");
      params.push(query.until.getTime());
    }
    const sql = `SELECT ${GROUP_SQL[query.by]} AS grp, COUNT(*) AS requests,
        COALESCE(SUM(prompt_tokens), 0) AS prompt, COALESCE(SUM(completion_tokens), 0) AS completion
      FROM usage ${where.length > 0 ? `WHERE ${where.join(" AND ")}` : ""}
      GROUP BY grp ORDER BY grp`;
    const rows = this.statement(sql).all(...params) as { grp: string; requests: number; prompt: number; completion: number }[];
    return rows.map((r) => ({ group: r.grp, requests: r.requests, promptTokens: r.prompt, completionTokens: r.completion }));
  }

  /**
   * Sums in SQL; percentiles in JavaScript over the window's samples (SQLite has no `percentile_cont`), with the
   * same interpolation as PostgreSQL's. Rows come sorted by the groups in binary order.
   */
  async usageStats(query: UsageStatsQuery): Promise<UsageStatsRow[]> {
    const groups = checkGroupBy(query.groupBy).map((g) => GROUP_SQL[g]);
    const columns = groups.map((sql, i) => `${sql} AS g${i}, `).join("");
    const keys = groups.map((_, i) => `g${i}`).join(", ");
    const grouping = groups.length > 0 ? `GROUP BY ${keys} ORDER BY ${keys}` : "";
    const { where, params } = timeWindow(query, () => "?", (d) => d.getTime());
    const sums = (this.statement(`SELECT ${columns}COUNT(*) AS requests, COALESCE(SUM(prompt_tokens), 0) AS prompt,
        COALESCE(SUM(completion_tokens), 0) AS completion, COALESCE(SUM(status = 429), 0) AS throttled, COALESCE(SUM(filtered), 0) AS filtered
      FROM usage ${where} ${grouping}`).all(...params) as Record<string, string | number>[]).filter((r) => Number(r.requests) > 0);
    const samples = new Map<string, { ttft: number[]; tps: number[] }>();
    if (query.percentiles) {
      const rows = this.statement(`SELECT ${columns}ttft_ms AS ttft, ${TOKENS_PER_SECOND_SQL} AS tps
        FROM usage ${where === "" ? "WHERE" : `${where} AND`} ttft_ms IS NOT NULL`).iterate(...params) as Iterable<Record<string, string | number | null>>;
      for (const row of rows) {
        const key = JSON.stringify(groups.map((_, i) => row[`g${i}`]));
        let entry = samples.get(key);
        if (!entry) samples.set(key, (entry = { ttft: [], tps: [] }));
        entry.ttft.push(Number(row.ttft));
        if (row.tps !== null) entry.tps.push(Number(row.tps));
      }
    }
    return sums.map((r) => {
      const values = groups.map((_, i) => String(r[`g${i}`]));
      const found = samples.get(JSON.stringify(values));
      return {
        groups: values,
        requests: Number(r.requests),
        promptTokens: Number(r.prompt),
        completionTokens: Number(r.completion),
        throttled: Number(r.throttled),
        filtered: Number(r.filtered),
        ttftMs: found ? percentilesOf(found.ttft) : null,
        tokensPerSecond: found ? percentilesOf(found.tps) : null,
      };
    });
  }

  async close(): Promise<void> {
    if (this.db.open) this.db.close();
  }
}

function toApiKeyRecord(row: ApiKeyRow): ApiKeyRecord {
  return {
    id: row.id,
    name: row.name,
    keyHash: row.key_hash,
    deployments: row.deployments === null ? null : (JSON.parse(row.deployments) as string[]),
    rpm: row.rpm,
    tpm: row.tpm,
    contentSafety: row.content_safety,
    admin: row.admin === 1,
    createdAt: new Date(row.created_at),
    revokedAt: row.revoked_at === null ? null : new Date(row.revoked_at),
  };
}
