/**
 * Usage reports for `phiserve usage` and `GET /admin/usage` (one table per grouping, with costs), and the
 * time series `GET /admin/usage/series` charts (docs/ADMIN-API.md "Usage"). Costs are summed per deployment
 * (each has its own price), so a report by key or by day asks the store for its groups split by deployment too.
 */
import type { Store, UsageGrouping, UsageStatsRow } from "../store/store.ts";
import type { UsageReportView, UsageRowView, UsageSeriesReportView, UsageSeriesView } from "../protocol/admin.schema.ts";
import { costOf, priceOf, roundUsd, type UsagePrices } from "./pricing.ts";

export type UsageStatsSource = Pick<Store, "usageStats">;

export interface UsageReportQuery {
  since: Date | undefined;
  until: Date | undefined;
  by: UsageGrouping;
}

/** Most buckets one series request may span (a year of hours is 8,760). */
export const MAX_SERIES_BUCKETS = 10_000;

/** The report: one row per group, sorted by group, and the total. */
export async function buildUsageReport(store: UsageStatsSource, query: UsageReportQuery, prices: UsagePrices): Promise<UsageReportView> {
  const window = { since: query.since, until: query.until };
  const [rows, total, costs] = await Promise.all([
    store.usageStats({ ...window, groupBy: [query.by], percentiles: true }),
    store.usageStats({ ...window, groupBy: [], percentiles: true }),
    costsBy(store, window, [query.by], prices),
  ]);
  const views = rows.map((r) => toRowView(r.groups[0]!, r, costs.get(key(r.groups)) ?? 0));
  const totalCost = roundUsd(views.reduce((sum, r) => sum + r.costUsd, 0));
  return {
    by: query.by,
    since: query.since?.toISOString() ?? null,
    until: query.until?.toISOString() ?? null,
    currency: "USD",
    prices: { default: prices.default, deployments: { ...prices.deployments } },
    rows: views,
    total: total[0] ? toRowView("TOTAL", total[0], totalCost) : emptyRow("TOTAL"),
  };
}

export interface UsageSeriesQuery {
  since: Date;
  until: Date;
  bucket: "hour" | "day";
  by: "deployment" | "key" | "none";
}

/**
 * Every bucket of `[since, until)` (the first one starting at or before `since`), and one series per deployment
 * or principal (or one "total") with a value per bucket: zero where nothing was recorded, null percentiles.
 * @throws RangeError when the window spans more than {@link MAX_SERIES_BUCKETS} buckets.
 */
export async function buildUsageSeries(store: UsageStatsSource, query: UsageSeriesQuery, prices: UsagePrices): Promise<UsageSeriesReportView> {
  const buckets = bucketStarts(query.since, query.until, query.bucket);
  const dimensions: UsageGrouping[] = query.by === "none" ? [query.bucket] : [query.bucket, query.by];
  const window = { since: query.since, until: query.until };
  const [rows, costs] = await Promise.all([
    store.usageStats({ ...window, groupBy: dimensions, percentiles: true }),
    costsBy(store, window, dimensions, prices),
  ]);
  const index = new Map(buckets.map((start, i) => [bucketLabel(start, query.bucket), i]));
  const series = new Map<string, UsageSeriesView>();
  for (const row of rows) {
    const slot = index.get(row.groups[0]!);
    if (slot === undefined) continue;
    const name = query.by === "none" ? "total" : row.groups[1]!;
    let line = series.get(name);
    if (!line) series.set(name, (line = emptySeries(name, buckets.length)));
    line.requests[slot] = row.requests;
    line.promptTokens[slot] = row.promptTokens;
    line.completionTokens[slot] = row.completionTokens;
    line.throttled[slot] = row.throttled;
    line.filtered[slot] = row.filtered;
    line.costUsd[slot] = costs.get(key(row.groups)) ?? 0;
    line.ttftMsP50[slot] = row.ttftMs?.p50 ?? null;
    line.ttftMsP90[slot] = row.ttftMs?.p90 ?? null;
    line.tokensPerSecondP50[slot] = row.tokensPerSecond?.p50 ?? null;
  }
  return {
    bucket: query.bucket,
    by: query.by,
    since: query.since.toISOString(),
    until: query.until.toISOString(),
    currency: "USD",
    buckets: buckets.map((b) => b.toISOString()),
    series: [...series.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)),
  };
}

/** Cost per group of `dimensions`: the groups split by deployment, each priced at its deployment's price. */
async function costsBy(store: UsageStatsSource, window: { since: Date | undefined; until: Date | undefined }, dimensions: readonly UsageGrouping[], prices: UsagePrices): Promise<Map<string, number>> {
  const deploymentAt = dimensions.indexOf("deployment");
  const split = deploymentAt >= 0 ? [...dimensions] : [...dimensions, "deployment" as const];
  const rows = await store.usageStats({ ...window, groupBy: split, percentiles: false });
  const at = deploymentAt >= 0 ? deploymentAt : split.length - 1;
  const costs = new Map<string, number>();
  for (const row of rows) {
    const group = key(row.groups.slice(0, dimensions.length));
    const cost = costOf(priceOf(prices, row.groups[at]!), row.promptTokens, row.completionTokens);
    costs.set(group, roundUsd((costs.get(group) ?? 0) + cost));
  }
  return costs;
}

const key = (groups: readonly string[]): string => JSON.stringify(groups);

function toRowView(group: string, row: UsageStatsRow, costUsd: number): UsageRowView {
  return {
    group,
    requests: row.requests,
    promptTokens: row.promptTokens,
    completionTokens: row.completionTokens,
    totalTokens: row.promptTokens + row.completionTokens,
    throttled: row.throttled,
    filtered: row.filtered,
    ttftMs: row.ttftMs,
    tokensPerSecond: row.tokensPerSecond,
    costUsd,
  };
}

function emptyRow(group: string): UsageRowView {
  return { group, requests: 0, promptTokens: 0, completionTokens: 0, totalTokens: 0, throttled: 0, filtered: 0, ttftMs: null, tokensPerSecond: null, costUsd: 0 };
}

function emptySeries(name: string, length: number): UsageSeriesView {
  const zeros = () => new Array<number>(length).fill(0);
  const nulls = () => new Array<number | null>(length).fill(null);
  return { name, requests: zeros(), promptTokens: zeros(), completionTokens: zeros(), throttled: zeros(), filtered: zeros(), costUsd: zeros(), ttftMsP50: nulls(), ttftMsP90: nulls(), tokensPerSecondP50: nulls() };
}

const BUCKET_MS = { hour: 3_600_000, day: 86_400_000 } as const;

/** The start of every UTC hour or day that overlaps `[since, until)`. */
export function bucketStarts(since: Date, until: Date, bucket: "hour" | "day"): Date[] {
  const size = BUCKET_MS[bucket];
  const first = Math.floor(since.getTime() / size) * size;
  const count = Math.max(0, Math.ceil((until.getTime() - first) / size));
  if (count > MAX_SERIES_BUCKETS) throw new RangeError(`the window spans ${count} ${bucket}s; at most ${MAX_SERIES_BUCKETS} per request`);
  return Array.from({ length: count }, (_, i) => new Date(first + i * size));
}

/** The store's label of the bucket starting at `start` (store.ts UsageGrouping: YYYY-MM-DD or YYYY-MM-DDTHH:00Z). */
function bucketLabel(start: Date, bucket: "hour" | "day"): string {
  const iso = start.toISOString();
  return bucket === "day" ? iso.slice(0, 10) : `${iso.slice(0, 13)}:00Z`;
}
