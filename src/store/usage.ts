/** Usage-entry checks and usage-statistics helpers shared by every Store implementation. */
import type { Percentiles, UsageEntry, UsageGrouping, UsageStatsQuery } from "./store.ts";
import { USAGE_GROUPINGS } from "./store.ts";

/**
 * Validates an entry before it is written: token counts must be non-negative integers, timings
 * finite and non-negative (rounded to whole milliseconds), `createdAt` a valid date.
 * @throws Error describing the first invalid field.
 */
export function checkUsageEntry(entry: UsageEntry): UsageEntry {
  for (const field of ["requestId", "principal", "deployment", "model"] as const) {
    if (typeof entry[field] !== "string" || entry[field].length === 0) throw new Error(`usage.${field} must be a non-empty string`);
  }
  for (const field of ["promptTokens", "completionTokens", "status"] as const) {
    if (!Number.isSafeInteger(entry[field]) || entry[field] < 0) throw new Error(`usage.${field} must be a non-negative integer`);
  }
  for (const field of ["queuedMs", "durationMs"] as const) {
    if (!Number.isFinite(entry[field]) || entry[field] < 0) throw new Error(`usage.${field} must be a non-negative number`);
  }
  const ttft = entry.ttftMs ?? null;
  if (ttft !== null && (!Number.isFinite(ttft) || ttft < 0)) throw new Error("usage.ttftMs must be null or a non-negative number");
  if (Number.isNaN(entry.createdAt.getTime())) throw new Error("usage.createdAt must be a valid date");
  return {
    ...entry,
    queuedMs: Math.round(entry.queuedMs),
    durationMs: Math.round(entry.durationMs),
    ttftMs: ttft === null ? null : Math.round(ttft),
    filtered: entry.filtered === true,
  };
}

/**
 * Checks a stats query's groupings: none (one row over the whole window) to three, each known, none twice.
 * @throws Error naming the problem.
 */
export function checkGroupBy(groupBy: readonly UsageGrouping[]): readonly UsageGrouping[] {
  if (groupBy.length > 3) throw new Error("usage groupBy takes at most three groupings");
  for (const g of groupBy) if (!USAGE_GROUPINGS.includes(g)) throw new Error(`unknown usage grouping '${String(g)}'`);
  if (new Set(groupBy).size !== groupBy.length) throw new Error("usage groupBy names a grouping twice");
  return groupBy;
}

/**
 * Percentiles of `samples` by linear interpolation between the closest ranks, exactly as PostgreSQL's
 * `percentile_cont` computes them (so both stores report the same figures); null for no samples.
 */
export function percentilesOf(samples: readonly number[]): Percentiles | null {
  if (samples.length === 0) return null;
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (fraction: number): number => {
    const position = fraction * (sorted.length - 1);
    const lower = Math.floor(position);
    const upper = Math.ceil(position);
    const low = sorted[lower]!;
    return low + (sorted[upper]! - low) * (position - lower);
  };
  return { p50: roundFigure(at(0.5)), p90: roundFigure(at(0.9)), p99: roundFigure(at(0.99)) };
}

/** Latency figures are reported to 1e-3 (ms or tokens/s): both stores' float arithmetic agrees to far better than that. */
export function roundFigure(value: number): number {
  return Math.round(value * 1000) / 1000;
}

/** The `[since, until)` window of a query as SQL conditions over `created_at`, with the parameter values. */
export function timeWindow<T>(query: Pick<UsageStatsQuery, "since" | "until">, placeholder: (index: number) => string, toParam: (date: Date) => T): { where: string; params: T[] } {
  const conditions: string[] = [];
  const params: T[] = [];
  if (query.since) {
    params.push(toParam(query.since));
    conditions.push(`created_at >= ${placeholder(params.length)}`);
  }
  if (query.until) {
    params.push(toParam(query.until));
    conditions.push(`created_at < ${placeholder(params.length)}`);
  }
  return { where: conditions.length > 0 ? `WHERE ${conditions.join(" AND ")}` : "", params };
}
