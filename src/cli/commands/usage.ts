/**
 * `phiserve usage`: metered usage per API key, deployment or UTC day, as a table, JSON or CSV,
 * with a cost estimate from per-1,000-token prices.
 */
import type { UsageGrouping, UsageReportRow } from "../../store/store.ts";
import { CliError } from "../resolve-model.ts";
import { formatTable, withCliStore } from "./keys.ts";

/**
 * Default prices, USD per 1,000 tokens: Azure AI serverless (pay-as-you-go) list prices for
 * Phi-3.5-mini-instruct (input 0.00013, output 0.00052). Prices change and differ by model and
 * region; pass `--price-prompt` / `--price-completion` for your own figures.
 */
export const DEFAULT_PRICE_PROMPT_PER_1K = 0.00013;
/** See {@link DEFAULT_PRICE_PROMPT_PER_1K}. */
export const DEFAULT_PRICE_COMPLETION_PER_1K = 0.00052;

/** Flags of `phiserve usage`. */
export interface UsageFlags {
  db?: string;
  /** Start (inclusive): YYYY-MM-DD (UTC), an ISO 8601 time, or a span back from now such as 7d, 12h, 30m. */
  since?: string;
  /** End (exclusive); a bare YYYY-MM-DD means the end of that UTC day. */
  until?: string;
  by?: UsageGrouping;
  json?: boolean;
  csv?: boolean;
  /** USD per 1,000 prompt tokens. */
  pricePrompt?: number;
  /** USD per 1,000 completion tokens. */
  priceCompletion?: number;
}

/** One report row with its cost estimate. */
export interface PricedUsageRow extends UsageReportRow {
  totalTokens: number;
  costUsd: number;
}

/** `usage`: prints the report; errors go to stderr with exit code 1. */
export async function runUsage(flags: UsageFlags): Promise<void> {
  await withCliStore(flags.db, async (store) => {
    const now = new Date();
    if (flags.json && flags.csv) throw new CliError("Choose one of --json and --csv");
    const by = flags.by ?? "key";
    if (!["key", "deployment", "day"].includes(by)) throw new CliError("--by must be key, deployment or day");
    const since = flags.since === undefined ? undefined : parseTime("--since", flags.since, now, false);
    const until = flags.until === undefined ? undefined : parseTime("--until", flags.until, now, true);
    if (since && until && since >= until) throw new CliError("--since must be before --until");
    const prices = { promptPer1k: price("--price-prompt", flags.pricePrompt, DEFAULT_PRICE_PROMPT_PER_1K), completionPer1k: price("--price-completion", flags.priceCompletion, DEFAULT_PRICE_COMPLETION_PER_1K) };
    const rows = (await store.usageReport({ by, since, until })).map((r) => priceRow(r, prices.promptPer1k, prices.completionPer1k));
    const total = priceRow(sumRows(rows), prices.promptPer1k, prices.completionPer1k);
    if (flags.json) {
      const report = { by, since: since?.toISOString() ?? null, until: until?.toISOString() ?? null, currency: "USD", prices, rows, total };
      process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
    } else if (flags.csv) {
      process.stdout.write(toCsv(by, rows));
    } else {
      process.stdout.write(toTable(by, rows, total));
    }
  });
}

/**
 * Parses a `--since`/`--until` value: `YYYY-MM-DD` (UTC midnight; for an end bound, the next
 * midnight, so the day is included), an ISO 8601 date-time, or `<n>d|h|m` before `now`.
 * @throws CliError for anything else.
 */
export function parseTime(flag: string, value: string, now: Date, endOfDay: boolean): Date {
  const relative = /^(\d+)([dhm])$/.exec(value.trim());
  if (relative) {
    const unitMs = { d: 86_400_000, h: 3_600_000, m: 60_000 }[relative[2] as "d" | "h" | "m"];
    return new Date(now.getTime() - Number(relative[1]) * unitMs);
  }
  if (/^\d{4}-\d{2}-\d{2}$/.test(value)) {
    const day = new Date(`${value}T00:00:00.000Z`);
    if (!Number.isNaN(day.getTime()) && day.toISOString().startsWith(value)) return endOfDay ? new Date(day.getTime() + 86_400_000) : day;
  } else if (/^\d{4}-\d{2}-\d{2}T/.test(value)) {
    const time = new Date(value);
    if (!Number.isNaN(time.getTime())) return time;
  }
  throw new CliError(`${flag} '${value}' is not a date: use YYYY-MM-DD (UTC), an ISO 8601 time, or a span such as 7d, 24h, 30m`);
}

/** Adds total tokens and the estimated cost (USD, rounded to 1e-8) to a report row. */
export function priceRow(row: UsageReportRow, promptPer1k: number, completionPer1k: number): PricedUsageRow {
  const cost = (row.promptTokens / 1000) * promptPer1k + (row.completionTokens / 1000) * completionPer1k;
  return { ...row, totalTokens: row.promptTokens + row.completionTokens, costUsd: Math.round(cost * 1e8) / 1e8 };
}

function sumRows(rows: readonly UsageReportRow[]): UsageReportRow {
  return rows.reduce(
    (sum, r) => ({ ...sum, requests: sum.requests + r.requests, promptTokens: sum.promptTokens + r.promptTokens, completionTokens: sum.completionTokens + r.completionTokens }),
    { group: "TOTAL", requests: 0, promptTokens: 0, completionTokens: 0 },
  );
}

function price(flag: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isFinite(value) || value < 0) throw new CliError(`${flag} must be a non-negative number (USD per 1,000 tokens)`);
  return value;
}

const GROUP_HEADER: Record<UsageGrouping, string> = { key: "PRINCIPAL", deployment: "DEPLOYMENT", day: "DAY (UTC)" };

function toTable(by: UsageGrouping, rows: readonly PricedUsageRow[], total: PricedUsageRow): string {
  if (rows.length === 0) return "No usage recorded in this period.\n";
  const cells = (r: PricedUsageRow): string[] => [r.group, ...[r.requests, r.promptTokens, r.completionTokens, r.totalTokens].map(String), r.costUsd.toFixed(6)];
  const header = [GROUP_HEADER[by], "REQUESTS", "PROMPT TOKENS", "COMPLETION TOKENS", "TOTAL TOKENS", "EST. COST (USD)"];
  return formatTable(header, [...rows.map(cells), cells(total)], new Set([1, 2, 3, 4, 5]));
}

function toCsv(by: UsageGrouping, rows: readonly PricedUsageRow[]): string {
  const lines = [[by, "requests", "prompt_tokens", "completion_tokens", "total_tokens", "cost_usd"].join(",")];
  for (const r of rows) lines.push([csvField(r.group), r.requests, r.promptTokens, r.completionTokens, r.totalTokens, r.costUsd.toFixed(8)].join(","));
  return `${lines.join("\n")}\n`;
}

/** RFC 4180 quoting when needed. */
function csvField(value: string): string {
  return /[",\r\n]/.test(value) ? `"${value.replaceAll('"', '""')}"` : value;
}
