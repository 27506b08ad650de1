/** Terminal progress display for model downloads. */
import cliProgress from "cli-progress";
import type { DownloadProgress } from "./download-types.ts";
import { formatBytes, formatDuration } from "./format.ts";

const BAR_WIDTH = 30;

/** A progress display fed with {@link DownloadProgress} updates. */
export interface DownloadProgressBar {
  /** Shows the latest progress (cheap: rendering is throttled); `detail` is shown after it, e.g. "3/11 files". */
  update(p: DownloadProgress, detail?: string): void;
  /** Ends the display; safe to call more than once. */
  stop(): void;
}

/** Transfer-rate bookkeeping: speed counts only bytes received since the first update (not a resumed prefix). */
class RateMeter {
  private readonly startedAt = Date.now();
  private baseline: number | undefined;
  latest: DownloadProgress | undefined;
  detail: string | undefined;

  record(p: DownloadProgress, detail?: string): void {
    this.baseline ??= p.receivedBytes;
    this.latest = p;
    this.detail = detail;
  }

  elapsedSeconds(): number {
    return (Date.now() - this.startedAt) / 1000;
  }

  /** Bytes per second, or `undefined` before there is anything to measure. */
  bytesPerSecond(): number | undefined {
    const elapsed = this.elapsedSeconds();
    if (this.latest === undefined || this.baseline === undefined || elapsed < 0.25) return undefined;
    return (this.latest.receivedBytes - this.baseline) / elapsed;
  }
}

function renderLine(label: string, meter: RateMeter): string {
  const p = meter.latest ?? { receivedBytes: 0 };
  const speed = meter.bytesPerSecond();
  const speedText = speed === undefined ? "--/s" : `${formatBytes(speed)}/s`;
  if (p.totalBytes === undefined || p.totalBytes <= 0) {
    return `${label} ${formatBytes(p.receivedBytes)} | ${speedText}`;
  }
  const fraction = Math.min(1, Math.max(0, p.receivedBytes / p.totalBytes));
  const filled = Math.round(fraction * BAR_WIDTH);
  const bar = "█".repeat(filled) + "░".repeat(BAR_WIDTH - filled);
  const remaining = p.totalBytes - p.receivedBytes;
  const eta = speed === undefined || speed <= 0 ? Number.NaN : remaining / speed;
  const percent = `${(fraction * 100).toFixed(1)}%`.padStart(6);
  const sizes = `${formatBytes(p.receivedBytes)}/${formatBytes(p.totalBytes)}`;
  const detail = meter.detail === undefined ? "" : ` | ${meter.detail}`;
  return `${label} ${bar} ${percent} | ${sizes}${detail} | ${speedText} | ETA ${formatDuration(eta)}`;
}

function endLine(label: string, meter: RateMeter): string {
  const p = meter.latest;
  const took = formatDuration(meter.elapsedSeconds());
  if (p === undefined) return `${label}: stopped (${took})\n`;
  const complete = p.totalBytes !== undefined && p.receivedBytes >= p.totalBytes;
  const amount = p.totalBytes === undefined ? formatBytes(p.receivedBytes) : `${formatBytes(p.receivedBytes)} of ${formatBytes(p.totalBytes)}`;
  return `${label}: ${complete ? "downloaded" : "stopped at"} ${amount} in ${took}\n`;
}

/** Plain output for logs and pipes: one line at the start and one at the end, nothing in between. */
function createPlainBar(stream: NodeJS.WriteStream, label: string, meter: RateMeter): DownloadProgressBar {
  stream.write(`${label}: downloading...\n`);
  let stopped = false;
  return {
    update: (p, detail) => meter.record(p, detail),
    stop() {
      if (stopped) return;
      stopped = true;
      stream.write(endLine(label, meter));
    },
  };
}

/**
 * A terminal progress bar for a download (bar, bytes, speed, ETA), drawn with cli-progress on
 * `stream`. When `stream` is not a TTY it prints only a start line now and an end line on
 * `stop()`, so logs stay readable. Speed and ETA count only bytes received in this session,
 * not a resumed prefix. Does not hide the cursor or install signal handlers.
 *
 * @param stream - where to draw, usually `process.stderr`.
 * @param label - what is downloaded, e.g. the model's file name.
 */
export function createDownloadProgressBar(stream: NodeJS.WriteStream, label: string): DownloadProgressBar {
  const meter = new RateMeter();
  if (stream.isTTY !== true) return createPlainBar(stream, label, meter);
  const bar = new cliProgress.SingleBar({
    stream,
    format: () => renderLine(label, meter),
    fps: 8,
    hideCursor: null,
    linewrap: true,
    gracefulExit: false,
  });
  let state: "idle" | "running" | "stopped" = "idle";
  return {
    update(p, detail) {
      if (state === "stopped") return;
      meter.record(p, detail);
      if (state === "idle") bar.start(p.totalBytes ?? 0, p.receivedBytes);
      else bar.update(p.receivedBytes);
      state = "running";
    },
    stop() {
      if (state === "running") bar.stop();
      state = "stopped";
    },
  };
}
