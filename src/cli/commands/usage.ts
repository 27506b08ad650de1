/**
 * `phiserve usage`: metered usage per API key, deployment, UTC day or UTC hour, as a table, JSON or CSV, with a
 * cost estimate from per-1,000-token prices, from the database itself or, with `--server URL`, from a running
 * server's admin API (`GET /admin/usage`, which prices each deployment at its own configured price).
 */
import type { UsageGrouping } from "../../store/store.ts";
import { USAGE_GROUPINGS } from "../../store/store.ts";
import type { UsageReportView, UsageRowView } from "../../protocol/admin.schema.ts";
import { DEFAULT_PRICE_COMPLETION_PER_1K, DEFAULT_PRICE_PROMPT_PER_1K } from "../../admin/pricing.ts";
import { parseTimeBound, TIME_BOUND_FORMS } from "../../admin/time-range.ts";
import { buildUsageReport } from "../../admin/usage-report.ts";
import { CliError } from "../resolve-model.ts";
import { formatTable, withTarget, type RemoteFlags } from "./keys.ts";

export { DEFAULT_PRICE_COMPLETION_PER_1K, DEFAULT_PRICE_PROMPT_PER_1K };

/** Flags of `phiserve usage`. */
export interface UsageFlags extends RemoteFlags {
  db?: string;
  /** Start (inclusive): YYYY-MM-DD (UTC), an ISO 8601 time, or a span back from now such as 7d, 12h, 30m. */
  since?: string;
  /** End (exclusive); a bare YYYY-MM-DD means the end of that UTC day. */
  until?: string;
  by?: UsageGrouping;
  json?: boolean;
  csv?: boolean;
  /** USD per 1,000 prompt tokens (local reports; a server prices with its own configuration). */
  pricePrompt?: number;
  /** USD per 1,000 completion tokens. */
  priceCompletion?: number;
}

/** `usage`: prints the report; errors go to stderr with exit code 1. */
export async function runUsage(flags: UsageFlags): Promise<void> {
  const by = flags.by ?? "key";
  await withTarget(
    flags,
    async (store) => {
      const query = checkFlags(flags, by);
      const now = new Date();
      const since = flags.since === undefined ? undefined : parseTime("--since", flags.since, now, false);
      const until = flags.until === undefined ? undefined : parseTime("--until", flags.until, now, true);
      if (since && until && since >= until) throw new CliError("--since must be before --until");
      const prices = { promptPer1k: price("--price-prompt", flags.pricePrompt, DEFAULT_PRICE_PROMPT_PER_1K), completionPer1k: price("--price-completion", flags.priceCompletion, DEFAULT_PRICE_COMPLETION_PER_1K) };
      print(await buildUsageReport(store, { since, until, by: query }, { default: prices, deployments: {} }), flags);
    },
    async (client) => {
      checkFlags(flags, by);
      if (flags.pricePrompt !== undefined || flags.priceCompletion !== undefined) {
        throw new CliError("--price-prompt and --price-completion apply to local reports; a server prices each deployment with its own configuration (docs/ADMIN-API.md)");
      }
      print(await client.usage({ since: flags.since, until: flags.until, by }), flags);
    },
  );
}

function checkFlags(flags: UsageFlags, by: UsageGrouping): UsageGrouping {
  if (flags.json && flags.csv) throw new CliError("Choose one of --json and --csv");
  if (!USAGE_GROUPINGS.includes(by)) throw new CliError(`--by must be ${USAGE_GROUPINGS.join(", ")}`);
  return by;
}

function print(report: UsageReportView, flags: UsageFlags): void {
  if (flags.json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  else if (flags.csv) process.stdout.write(toCsv(report.by, report.rows));
  else process.stdout.write(toTable(report.by, report.rows, report.total));
}

/**
 * Parses a `--since`/`--until` value: `YYYY-MM-DD` (UTC midnight; for an end bound, the next
 * midnight, so the day is included), an ISO 8601 date-time, or `<n>d|h|m` before `now`.
 * @throws CliError for anything else.
 */
export function parseTime(flag: string, value: string, now: Date, endOfDay: boolean): Date {
  const time = parseTimeBound(value, now, endOfDay);
  if (!time) throw new CliError(`${flag} '${value}' is not a date: ${TIME_BOUND_FORMS}`);
  return time;
}

function price(flag: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isFinite(value) || value < 0) throw new CliError(`${flag} must be a non-negative number (USD per 1,000 tokens)`);
  return value;
}

const GROUP_HEADER: Record<UsageGrouping, string> = { key: "PRINCIPAL", deployment: "DEPLOYMENT", day: "DAY (UTC)", hour: "HOUR (UTC)" };

const p50 = (value: { p50: number } | null, digits: number): string => (value === null ? "-" : value.p50.toFixed(digits));

function toTable(by: UsageGrouping, rows: readonly UsageRowView[], total: UsageRowView): string {
  if (rows.length === 0) return "No usage recorded in this period.\n";
  const cells = (r: UsageRowView): string[] => [
    r.group,
    ...[r.requests, r.throttled, r.filtered, r.promptTokens, r.completionTokens, r.totalTokens].map(String),
    p50(r.ttftMs, 0),
    p50(r.tokensPerSecond, 1),
    r.costUsd.toFixed(6),
  ];
  const header = [GROUP_HEADER[by], "REQUESTS", "THROTTLED", "FILTERED", "PROMPT TOKENS", "COMPLETION TOKENS", "TOTAL TOKENS", "TTFT P50 (MS)", "TOKENS/S P50", "EST. COST (USD)"];
  return formatTable(header, [...rows.map(cells), cells(total)], new Set([1, 2, 3, 4, 5, 6, 7, 8, 9]));
}

function toCsv(by: UsageGrouping, rows: readonly UsageRowView[]): string {
  const lines = [[by, "requests", "prompt_tokens", "completion_tokens", "total_tokens", "cost_usd", "throttled", "filtered", "ttft_ms_p50", "ttft_ms_p90", "tokens_per_second_p50"].join(",")];
  for (const r of rows) {
    lines.push([
      csvField(r.group), r.requests, r.promptTokens, r.completionTokens, r.totalTokens, r.costUsd.toFixed(8), r.throttled, r.filtered,
      r.ttftMs?.p50 ?? "", r.ttftMs?.p90 ?? "", r.tokensPerSecond?.p50 ?? "",
    ].join(","));
  }
  return `${lines.join("\n")}\n`;
}

/** RFC 4180 quoting when needed. */
function csvField(value: string): string {
  return /[",\r\n]/.test(value) ? `"${value.replaceAll('"', '""')}"` : value;
}
