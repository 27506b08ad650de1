/**
 * Model downloader: streams a model file into the cache, resumably and verified.
 *
 * Flow of {@link downloadModel}:
 * 1. a complete cached copy (file + sidecar) is returned without any request; a file without
 *    sidecar (copied in by hand) is hashed and adopted when it verifies;
 * 2. bytes go to `<fileName>.partial`; when one exists the request carries
 *    `Range: bytes=<size>-` and a `206` continues it (the partial is hashed first, then the
 *    hash continues over the new bytes), while a `200` means the server ignored the range and
 *    the file restarts from zero;
 * 3. the finished file must match `source.sha256`, else the SHA-256 announced by the server
 *    (`X-Linked-Etag`/`ETag`), else `source.sizeBytes`; a mismatch deletes the partial;
 * 4. the partial is fsynced, atomically renamed into place, and a `<fileName>.sha256` sidecar
 *    is written.
 * Network failures and aborts keep the partial, so the next call resumes.
 */
import { createHash, type Hash } from "node:crypto";
import { createReadStream } from "node:fs";
import { mkdir, open, rename, rm, stat } from "node:fs/promises";
import { ModelDownloadError, toModelDownloadError } from "./download-errors.ts";
import type { DownloadOptions, DownloadProgress, DownloadSource } from "./download-types.ts";
import {
  contentLength,
  createStallWatchdog,
  openDownload,
  parseContentRange,
  rewriteDownloadUrl,
  type OpenedDownload,
} from "./http-source.ts";
import {
  isRegularFile,
  modelCachePaths,
  normalizeSha256,
  readSidecarSha256,
  writeSidecar,
  type ModelCachePaths,
} from "./model-cache.ts";

export type { DownloadOptions, DownloadProgress, DownloadSource } from "./download-types.ts";
export { rewriteDownloadUrl } from "./http-source.ts";
export { defaultCacheDir, findCachedModel } from "./model-cache.ts";
export { describeDownloadFailure, ModelDownloadError, type ModelDownloadErrorCode } from "./download-errors.ts";
export { createDownloadProgressBar } from "./progress-bar.ts";

const DEFAULT_STALL_TIMEOUT_MS = 60_000;
/** Restarts from zero (range not honoured, 416, ...) allowed within one call. */
const MAX_RESTARTS = 2;
const RESTART = Symbol("restart");

/** Everything one download call works with. */
interface DownloadJob {
  source: DownloadSource;
  paths: ModelCachePaths;
  /** Normalised `source.sha256`. */
  expectedSha256: string | undefined;
  url: string;
  options: DownloadOptions;
  /** Internal signal: the caller's signal or a stall. */
  signal: AbortSignal;
  guard: <T>(p: Promise<T>) => Promise<T>;
  /** The URL being worked on, for error reports. */
  currentUrl: string;
  /** Detaches from the caller's signal. */
  dispose: () => void;
}

/** Where the transfer of one response starts and how big the whole file is. */
interface TransferPlan {
  start: number;
  total: number | undefined;
}

/**
 * Downloads `source` into `<cacheDir>/<fileName>` unless a verified copy is already there.
 *
 * Resumable (`<fileName>.partial` + HTTP Range), verified (SHA-256 from the catalog or the
 * server's `X-Linked-Etag`/`ETag`), atomic (rename into place) and recorded (a
 * `<fileName>.sha256` sidecar, so later starts skip re-hashing).
 *
 * @param source - what to download; `source.url` is rewritten with `options.baseUrl` when set.
 * @param options - cache dir, cancellation, progress, headers, `fetch` override.
 * @returns the path of the verified model file.
 * @throws {@link ModelDownloadError} with code `OFFLINE`, `HTTP_STATUS`, `CHECKSUM_MISMATCH` or
 *   `ABORTED`; file-system errors (e.g. `ENOSPC`) are thrown unchanged; `TypeError` for an
 *   invalid `fileName`, `sha256` or `baseUrl`.
 */
export async function downloadModel(source: DownloadSource, options: DownloadOptions): Promise<string> {
  const job = createJob(source, options);
  try {
    options.signal?.throwIfAborted();
    await mkdir(options.cacheDir, { recursive: true });
    const existing = await reuseExisting(job);
    if (existing !== undefined) return existing;
    for (let restarts = 0; ; restarts += 1) {
      const outcome = await downloadOnce(job, restarts >= MAX_RESTARTS);
      if (outcome !== RESTART) return outcome;
      await rm(job.paths.partial, { force: true });
    }
  } catch (err) {
    throw toModelDownloadError(err, { url: job.currentUrl, signal: options.signal, partialBytes: await fileSize(job.paths.partial) });
  } finally {
    job.dispose();
  }
}

function createJob(source: DownloadSource, options: DownloadOptions): DownloadJob {
  const paths = modelCachePaths(options.cacheDir, source.fileName);
  const expectedSha256 = normalizeSha256(source.sha256);
  if (source.sha256 !== undefined && expectedSha256 === undefined) {
    throw new TypeError(`sha256 of ${source.fileName} must be 64 hex characters, got ${JSON.stringify(source.sha256)}`);
  }
  const url = rewriteDownloadUrl(source.url, options.baseUrl);
  const controller = new AbortController();
  const outer = options.signal;
  const forward = (): void => controller.abort(outer?.reason);
  if (outer?.aborted === true) forward();
  else outer?.addEventListener("abort", forward, { once: true });
  const watchdog = createStallWatchdog(options.stallTimeoutMs ?? DEFAULT_STALL_TIMEOUT_MS, controller);
  const dispose = (): void => outer?.removeEventListener("abort", forward);
  return { source, paths, expectedSha256, url, options, signal: controller.signal, guard: watchdog.guard, currentUrl: url, dispose };
}

/** Size of `filePath` in bytes; 0 when it does not exist. */
async function fileSize(filePath: string): Promise<number> {
  try {
    return (await stat(filePath)).size;
  } catch {
    return 0;
  }
}

/** Feeds the whole of `filePath` into `hash`, streaming. */
async function hashFileInto(hash: Hash, filePath: string): Promise<void> {
  for await (const chunk of createReadStream(filePath, { highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
}

async function sha256OfFile(filePath: string): Promise<string> {
  const hash = createHash("sha256");
  await hashFileInto(hash, filePath);
  return hash.digest("hex");
}

/** Renames the verified partial into place and records its digest. */
async function finalize(paths: ModelCachePaths, sha256: string): Promise<string> {
  await rm(paths.sidecar, { force: true });
  await rename(paths.partial, paths.file);
  await writeSidecar(paths, sha256);
  return paths.file;
}

/**
 * Returns the model path without any request when the cache can satisfy `job`: a file with
 * a sidecar (matching `source.sha256` when given), a sidecar-less file that verifies (it is
 * then adopted), or a partial that is already complete and verifies against the catalog.
 * Stale or oversized leftovers are cleared on the way.
 */
async function reuseExisting(job: DownloadJob): Promise<string | undefined> {
  const { paths, expectedSha256, source } = job;
  if (isRegularFile(paths.file)) {
    const recorded = readSidecarSha256(paths.sidecar);
    if (recorded !== undefined && (expectedSha256 === undefined || recorded === expectedSha256)) return paths.file;
    const sizeOk = source.sizeBytes === undefined || (await fileSize(paths.file)) === source.sizeBytes;
    if (recorded === undefined && sizeOk) {
      const actual = await sha256OfFile(paths.file);
      if (expectedSha256 === undefined || actual === expectedSha256) {
        await writeSidecar(paths, actual);
        return paths.file;
      }
    }
  }
  const partialSize = await fileSize(paths.partial);
  if (source.sizeBytes === undefined || partialSize < source.sizeBytes) return undefined;
  if (partialSize === source.sizeBytes && expectedSha256 !== undefined) {
    if ((await sha256OfFile(paths.partial)) === expectedSha256) return finalize(paths, expectedSha256);
  }
  await rm(paths.partial, { force: true });
  return undefined;
}

/** Releases a response whose body will not be read (frees the connection). */
async function cancelBody(response: Response): Promise<void> {
  await response.body?.cancel().catch(() => undefined);
}

function requestHeaders(job: DownloadJob, offset: number): Record<string, string> {
  const headers: Record<string, string> = { ...job.options.headers, "accept-encoding": "identity" };
  if (offset > 0) headers.range = `bytes=${offset}-`;
  return headers;
}

function httpStatusError(job: DownloadJob, opened: OpenedDownload): ModelDownloadError {
  const { status, statusText } = opened.response;
  return new ModelDownloadError("HTTP_STATUS", `HTTP ${status} ${statusText} from ${opened.url}`, { url: opened.url, status });
}

/**
 * Decides how to consume a response given `offset` bytes already on disk: a `200` restarts at
 * zero, a `206` must continue exactly at `offset`. `RESTART` asks for a fresh request without
 * a range (unsatisfiable or misplaced range); other statuses throw `HTTP_STATUS`.
 */
function planTransfer(job: DownloadJob, opened: OpenedDownload, offset: number): TransferPlan | typeof RESTART {
  const { response } = opened;
  const length = contentLength(response);
  if (response.status === 200) return { start: 0, total: length ?? job.source.sizeBytes };
  if (response.status === 206) {
    const range = parseContentRange(response.headers.get("content-range"));
    if (range === undefined || range.start !== offset) return RESTART;
    const total = range.total ?? (length === undefined ? job.source.sizeBytes : offset + length);
    return { start: offset, total };
  }
  if (response.status === 416 && offset > 0) return RESTART;
  throw httpStatusError(job, opened);
}

/** One request: opens it, appends (or rewrites) the partial, verifies and finalizes. */
async function downloadOnce(job: DownloadJob, lastTry: boolean): Promise<string | typeof RESTART> {
  const offset = await fileSize(job.paths.partial);
  const opened = await job.guard(
    openDownload({
      url: job.url,
      headers: requestHeaders(job, offset),
      signal: job.signal,
      fetchImpl: job.options.fetchImpl ?? fetch,
      onHop: (url) => (job.currentUrl = url),
    }),
  );
  job.currentUrl = opened.url;
  let plan: TransferPlan | typeof RESTART;
  try {
    plan = planTransfer(job, opened, offset);
    if (plan === RESTART && lastTry) throw httpStatusError(job, opened);
  } catch (err) {
    await cancelBody(opened.response);
    throw err;
  }
  if (plan === RESTART) {
    await cancelBody(opened.response);
    return RESTART;
  }
  const hash = createHash("sha256");
  if (plan.start > 0) await hashFileInto(hash, job.paths.partial);
  const size = await writeBody(job, opened.response, plan, hash);
  if (plan.total !== undefined && size < plan.total) {
    throw new ModelDownloadError("OFFLINE", `Connection to ${opened.url} closed after ${size} of ${plan.total} bytes`, {
      url: opened.url,
      partialBytes: size,
    });
  }
  return verifyAndFinalize(job, hash.digest("hex"), size, opened);
}

/**
 * Streams the response body into the partial file (appending when `plan.start > 0`), feeding
 * `hash` and reporting progress. Each chunk is on disk before the next is read, so after a
 * failure the partial holds exactly the bytes received. Returns the partial's final size.
 */
async function writeBody(job: DownloadJob, response: Response, plan: TransferPlan, hash: Hash): Promise<number> {
  const body = response.body;
  const file = await open(job.paths.partial, plan.start > 0 ? "a" : "w");
  let size = plan.start;
  const report = (): void => job.options.onProgress?.(progressOf(size, plan.total));
  try {
    report();
    if (body === null) return size;
    const reader = body.getReader();
    try {
      for (;;) {
        const { done, value } = await job.guard(reader.read());
        if (done) break;
        hash.update(value);
        await writeAll(file, value);
        size += value.byteLength;
        report();
      }
    } finally {
      await reader.cancel().catch(() => undefined);
    }
    await file.datasync();
    return size;
  } finally {
    await file.close();
  }
}

function progressOf(receivedBytes: number, totalBytes: number | undefined): DownloadProgress {
  return totalBytes === undefined ? { receivedBytes } : { receivedBytes, totalBytes };
}

async function writeAll(file: Awaited<ReturnType<typeof open>>, chunk: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < chunk.byteLength) {
    const { bytesWritten } = await file.write(chunk, offset, chunk.byteLength - offset);
    offset += bytesWritten;
  }
}

/** Checks digest (or size) against what is expected; renames into place or deletes the partial. */
async function verifyAndFinalize(job: DownloadJob, actual: string, size: number, opened: OpenedDownload): Promise<string> {
  const expected = job.expectedSha256 ?? opened.announcedSha256;
  const { sizeBytes } = job.source;
  const bad = expected !== undefined ? actual !== expected : sizeBytes !== undefined && size !== sizeBytes;
  if (!bad) return finalize(job.paths, actual);
  await rm(job.paths.partial, { force: true });
  const what = expected !== undefined ? `SHA-256 ${actual}, expected ${expected}` : `${size} bytes, expected ${sizeBytes}`;
  throw new ModelDownloadError("CHECKSUM_MISMATCH", `Downloaded ${job.source.fileName} has ${what}`, {
    url: opened.url,
    expectedSha256: expected,
    actualSha256: expected === undefined ? undefined : actual,
  });
}
