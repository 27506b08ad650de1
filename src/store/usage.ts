/** Usage-entry checks shared by every Store implementation. */
import type { UsageEntry } from "./store.ts";

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
  if (Number.isNaN(entry.createdAt.getTime())) throw new Error("usage.createdAt must be a valid date");
  return { ...entry, queuedMs: Math.round(entry.queuedMs), durationMs: Math.round(entry.durationMs) };
}
