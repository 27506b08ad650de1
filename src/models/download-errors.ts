/** Download failures: the typed error, how raw errors map onto it, and the human explanation. */
import path from "node:path";
import type { DownloadSource } from "./download-types.ts";
import { formatBytes } from "./format.ts";

/**
 * Why a download failed.
 * - `OFFLINE`: the host could not be reached, or the connection dropped mid-transfer
 *   (the bytes received so far are kept, so the next attempt resumes).
 * - `HTTP_STATUS`: the server answered with a non-success status (see `status`).
 * - `CHECKSUM_MISMATCH`: the finished file's SHA-256 (or size) was not the expected one;
 *   the partial file has been deleted.
 * - `ABORTED`: the caller's `AbortSignal` fired (the partial file is kept).
 */
export type ModelDownloadErrorCode = "OFFLINE" | "HTTP_STATUS" | "CHECKSUM_MISMATCH" | "ABORTED";

/** Facts attached to a {@link ModelDownloadError}. */
export interface ModelDownloadErrorDetails {
  /** The URL that failed (after mirror rewriting and redirects). */
  url: string;
  /** HTTP status, for `HTTP_STATUS`. */
  status?: number | undefined;
  /** Expected digest, for `CHECKSUM_MISMATCH` (absent when only the size was checked). */
  expectedSha256?: string | undefined;
  /** Actual digest, for `CHECKSUM_MISMATCH`. */
  actualSha256?: string | undefined;
  /** Bytes kept in `<fileName>.partial` for the next attempt to resume from. */
  partialBytes?: number | undefined;
  /** The underlying error. */
  cause?: unknown | undefined;
}

/** A failed model download; `code` says why, the other fields give the details. */
export class ModelDownloadError extends Error {
  override readonly name = "ModelDownloadError";
  /** Why the download failed. */
  readonly code: ModelDownloadErrorCode;
  /** The URL that failed. */
  readonly url: string;
  /** HTTP status for `HTTP_STATUS`. */
  readonly status: number | undefined;
  /** Expected digest for `CHECKSUM_MISMATCH`. */
  readonly expectedSha256: string | undefined;
  /** Actual digest for `CHECKSUM_MISMATCH`. */
  readonly actualSha256: string | undefined;
  /** Bytes kept on disk for resuming (0 when nothing is kept). */
  readonly partialBytes: number;

  /** @param code - why; @param message - technical one-liner; @param details - the facts. */
  constructor(code: ModelDownloadErrorCode, message: string, details: ModelDownloadErrorDetails) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.code = code;
    this.url = details.url;
    this.status = details.status;
    this.expectedSha256 = details.expectedSha256;
    this.actualSha256 = details.actualSha256;
    this.partialBytes = details.partialBytes ?? 0;
  }
}

const NETWORK_CODES = new Set([
  "ENOTFOUND", "EAI_AGAIN", "EAI_FAIL", "ECONNREFUSED", "ECONNRESET", "ECONNABORTED", "ETIMEDOUT",
  "EHOSTUNREACH", "EHOSTDOWN", "ENETUNREACH", "ENETDOWN", "EPIPE", "EPROTO",
]);

/** Codes meaning the host could not be reached at all (as opposed to a dropped transfer). */
const CONNECT_CODES = new Set([
  "ENOTFOUND", "EAI_AGAIN", "EAI_FAIL", "ECONNREFUSED", "EHOSTUNREACH", "EHOSTDOWN", "ENETUNREACH", "ENETDOWN",
  "UND_ERR_CONNECT_TIMEOUT",
]);

/** The error, its `cause` chain and any `AggregateError` members, depth-limited. */
function errorChain(err: unknown, depth = 0): unknown[] {
  if (depth > 6 || typeof err !== "object" || err === null) return [];
  const nested: unknown[] = [];
  if ("cause" in err) nested.push(...errorChain(err.cause, depth + 1));
  if (err instanceof AggregateError) for (const e of err.errors) nested.push(...errorChain(e, depth + 1));
  return [err, ...nested];
}

function errorCode(err: unknown): string | undefined {
  if (typeof err !== "object" || err === null || !("code" in err)) return undefined;
  return typeof err.code === "string" ? err.code : undefined;
}

/** True for errors from the network: DNS, refused/reset connections, TLS, undici socket errors. */
export function isNetworkError(err: unknown): boolean {
  return errorChain(err).some((e) => {
    const code = errorCode(e);
    if (code !== undefined && (NETWORK_CODES.has(code) || code.startsWith("UND_ERR_"))) return true;
    if (code !== undefined && (code.includes("CERT") || code.startsWith("ERR_TLS") || code.startsWith("ERR_SSL"))) return true;
    return e instanceof TypeError && /^(fetch failed|terminated)$/.test(e.message);
  });
}

/** True when `err` says the host could not be reached (DNS, refused, unreachable, connect timeout). */
export function isConnectFailure(err: unknown): boolean {
  return errorChain(err).some((e) => CONNECT_CODES.has(errorCode(e) ?? ""));
}

/** A short technical reason for a network error, e.g. `"ECONNREFUSED"` or `"getaddrinfo ENOTFOUND host"`. */
export function networkReason(err: unknown): string {
  const chain = errorChain(err);
  const withCode = chain.filter((e) => errorCode(e) !== undefined);
  const deepest = withCode[withCode.length - 1] ?? chain[chain.length - 1];
  if (deepest instanceof Error && deepest.message !== "") return deepest.message;
  return errorCode(deepest) ?? String(err);
}

/** True when `err` is (or wraps) an abort, or `signal` has fired. */
export function isAbort(err: unknown, signal: AbortSignal | undefined): boolean {
  if (signal?.aborted === true) return true;
  return errorChain(err).some((e) => e instanceof Error && (e.name === "AbortError" || errorCode(e) === "ABORT_ERR"));
}

/**
 * Maps whatever a download step threw onto a {@link ModelDownloadError} where one applies:
 * aborts → `ABORTED`, network errors → `OFFLINE`. Other errors (disk full, permissions)
 * are returned unchanged.
 */
export function toModelDownloadError(
  err: unknown,
  context: { url: string; signal: AbortSignal | undefined; partialBytes: number },
): unknown {
  if (err instanceof ModelDownloadError) return err;
  const details = { url: context.url, partialBytes: context.partialBytes, cause: err };
  if (isAbort(err, context.signal)) return new ModelDownloadError("ABORTED", `Download of ${context.url} was aborted`, details);
  if (isNetworkError(err)) {
    return new ModelDownloadError("OFFLINE", `Could not fetch ${context.url}: ${networkReason(err)}`, details);
  }
  return err;
}

function hostOf(url: string): string {
  try {
    return new URL(url).host;
  } catch {
    return url;
  }
}

function alternativesText(source: DownloadSource, cacheDir: string): string {
  return (
    " To use a model file you already have instead, run `phiserve serve --model /path/to/model.gguf`," +
    ` or copy the file to ${path.join(cacheDir, source.fileName)};` +
    " to download from a mirror, set PHISERVE_MODEL_BASE_URL to the mirror's base URL."
  );
}

function resumeText(err: ModelDownloadError, cacheDir: string, fileName: string): string {
  if (err.partialBytes <= 0) return "";
  const partial = `${path.join(cacheDir, fileName)}.partial`;
  return ` The ${formatBytes(err.partialBytes)} received so far are kept in ${partial}; running the same command again resumes from there.`;
}

function httpStatusText(err: ModelDownloadError, fileName: string, host: string): string {
  const status = err.status ?? 0;
  if (status === 401 || status === 403) {
    return `${host} refused to serve ${fileName} (HTTP ${status}): the model may be gated or private and need a Hugging Face access token, or the token sent is not valid for it.`;
  }
  if (status === 404) return `${fileName} was not found at ${err.url} (HTTP 404): the model catalog or the mirror may be out of date.`;
  if (status === 429) return `${host} is rate-limiting downloads of ${fileName} (HTTP 429); wait a little and try again.`;
  if (status >= 500) return `${host} had a server error while serving ${fileName} (HTTP ${status}); try again later.`;
  return `${host} answered HTTP ${status} for ${fileName}, so it could not be downloaded.`;
}

/** What went wrong with `fileName` (no alternatives); `cacheDir` is where its partial lies. */
export function downloadErrorText(err: ModelDownloadError, fileName: string, cacheDir: string): string {
  const host = hostOf(err.url);
  switch (err.code) {
    case "OFFLINE": {
      const reason = networkReason(err.cause ?? err);
      const what = isConnectFailure(err)
        ? `Could not download ${fileName} from ${host} (${reason}): this machine looks offline, or ${host} is blocked by a firewall or proxy.`
        : `The connection to ${host} was lost or stalled while downloading ${fileName} (${reason}): the network may be unstable, this machine may have gone offline, or a proxy may be cutting long transfers.`;
      return `${what}${resumeText(err, cacheDir, fileName)}`;
    }
    case "HTTP_STATUS":
      return `${httpStatusText(err, fileName, host)}${resumeText(err, cacheDir, fileName)}`;
    case "CHECKSUM_MISMATCH": {
      const what = err.expectedSha256 === undefined ? "its expected size" : `its expected SHA-256 (expected ${err.expectedSha256}, got ${err.actualSha256 ?? "?"})`;
      return `The downloaded ${fileName} from ${host} did not match ${what}, so it was deleted: the transfer was corrupted, or the server or mirror holds a different file. Run the command again to retry.`;
    }
    case "ABORTED":
      return `The download of ${fileName} from ${host} was cancelled.${resumeText(err, cacheDir, fileName)}`;
  }
}

/** What went wrong for a failure that is not a {@link ModelDownloadError} (disk full, permissions, other). */
export function otherErrorText(err: unknown, source: DownloadSource, cacheDir: string): string {
  const code = errorCode(err);
  const size = source.sizeBytes === undefined ? "" : ` (${formatBytes(source.sizeBytes)})`;
  if (code === "ENOSPC") {
    return `There is not enough disk space in ${cacheDir} to download ${source.fileName}${size}; free some space, or set PHISERVE_CACHE_DIR to a directory on a larger disk.`;
  }
  if (code === "EACCES" || code === "EPERM" || code === "EROFS") {
    return `Cannot write ${source.fileName} into the model cache ${cacheDir} (${code}); fix the directory's permissions, or set PHISERVE_CACHE_DIR to a writable directory.`;
  }
  const message = err instanceof Error ? err.message : String(err);
  return `Downloading ${source.fileName} from ${hostOf(source.url)} failed: ${message}.`;
}

/**
 * A one-paragraph, human explanation of a failed download: what went wrong, whether the
 * bytes received so far were kept, and what to do instead (serve a local file with
 * `phiserve serve --model /path/to/model.gguf`, copy the file into the cache, or set
 * `PHISERVE_MODEL_BASE_URL` to a mirror).
 *
 * @param err - what `downloadModel` threw (any value is accepted).
 * @param source - the download that failed.
 * @param cacheDir - the cache directory it was downloading into.
 */
export function describeDownloadFailure(err: unknown, source: DownloadSource, cacheDir: string): string {
  const what =
    err instanceof ModelDownloadError
      ? downloadErrorText(err, source.fileName, cacheDir)
      : otherErrorText(err, source, cacheDir);
  const aborted = err instanceof ModelDownloadError && err.code === "ABORTED";
  return aborted ? what : `${what}${alternativesText(source, cacheDir)}`;
}
