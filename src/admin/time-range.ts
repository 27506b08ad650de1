/**
 * Time bounds of usage queries, shared by `phiserve usage` and `GET /admin/usage`: `YYYY-MM-DD` (UTC midnight;
 * as an end bound, the next midnight, so the day is included), an ISO 8601 date-time, or `<n>d|h|m` before now.
 */

/** The time `value` names, or undefined when it is none of the accepted forms. */
export function parseTimeBound(value: string, now: Date, endOfDay: boolean): Date | undefined {
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
  return undefined;
}

/** What a caller is told when a bound does not parse. */
export const TIME_BOUND_FORMS = "use YYYY-MM-DD (UTC), an ISO 8601 time, or a span such as 7d, 24h, 30m";
