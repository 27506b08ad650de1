/** Small human-readable formatters shared by the download progress bar and error messages. */

const BYTE_UNITS = ["B", "KiB", "MiB", "GiB", "TiB"] as const;

/** Formats a byte count with binary units, e.g. `1536` → `"1.5 KiB"`, `2.3e9` → `"2.14 GiB"`. */
export function formatBytes(bytes: number): string {
  if (!Number.isFinite(bytes) || bytes < 0) return "? B";
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < BYTE_UNITS.length - 1) {
    value /= 1024;
    unit += 1;
  }
  const digits = unit === 0 ? 0 : value < 10 ? 2 : value < 100 ? 1 : 0;
  return `${value.toFixed(digits)} ${BYTE_UNITS[unit] ?? "B"}`;
}

/** Formats a duration in seconds as `"42s"`, `"3m05s"` or `"1h02m"`; `"--"` when unknown. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return "--";
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  const pad = (n: number): string => String(n).padStart(2, "0");
  if (s < 3600) return `${Math.floor(s / 60)}m${pad(s % 60)}s`;
  return `${Math.floor(s / 3600)}h${pad(Math.floor((s % 3600) / 60))}m`;
}
