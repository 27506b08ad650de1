/** HTTP plumbing for model downloads: mirror URLs, redirects, range and checksum headers, stalls. */
import { ModelDownloadError } from "./download-errors.ts";
import { normalizeSha256 } from "./model-cache.ts";

/** Origins that a mirror base URL stands in for. */
const HUGGING_FACE_ORIGINS = new Set(["https://huggingface.co", "https://hf.co"]);
const MAX_REDIRECTS = 10;
const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);

/**
 * Swaps the `https://huggingface.co` (or `https://hf.co`) origin of `url` for `baseUrl`, so a
 * mirror or a local test server can stand in for Hugging Face. A path in `baseUrl` is kept as
 * a prefix (`https://mirror.example/hf` + `/org/repo/resolve/main/x.gguf`). Other URLs, and any
 * URL when `baseUrl` is undefined or empty, are returned unchanged.
 *
 * @throws TypeError when `baseUrl` is not an absolute http(s) URL.
 */
export function rewriteDownloadUrl(url: string, baseUrl?: string): string {
  if (baseUrl === undefined || baseUrl.trim() === "") return url;
  const base = new URL(baseUrl.trim());
  if (base.protocol !== "http:" && base.protocol !== "https:") {
    throw new TypeError(`Mirror base URL must be http(s), got ${JSON.stringify(baseUrl)}`);
  }
  const target = new URL(url);
  if (!HUGGING_FACE_ORIGINS.has(target.origin)) return url;
  const prefix = `${base.origin}${base.pathname}`.replace(/\/+$/, "");
  return `${prefix}${target.pathname}${target.search}${target.hash}`;
}

/**
 * The SHA-256 carried by an `ETag`/`X-Linked-Etag` value, or `undefined` when the tag is not
 * a 64-hex digest (weak prefix and quotes are ignored). Hugging Face puts the LFS object's
 * SHA-256 there.
 */
export function sha256FromEtag(value: string | null | undefined): string | undefined {
  if (value === null || value === undefined) return undefined;
  return normalizeSha256(value.trim().replace(/^W\//, "").replace(/^"(.*)"$/, "$1"));
}

/** A parsed `Content-Range: bytes <start>-<end>/<total|*>` header. */
export interface ContentRange {
  start: number;
  end: number;
  total: number | undefined;
}

/** Parses a `Content-Range` response header; `undefined` when absent or malformed. */
export function parseContentRange(value: string | null): ContentRange | undefined {
  const match = /^bytes\s+(\d+)-(\d+)\/(\d+|\*)$/i.exec(value?.trim() ?? "");
  if (match === null) return undefined;
  const [, start, end, total] = match;
  return { start: Number(start), end: Number(end), total: total === "*" || total === undefined ? undefined : Number(total) };
}

/** A non-negative integer `Content-Length`, or `undefined`. */
export function contentLength(response: Response): number | undefined {
  const raw = response.headers.get("content-length");
  if (raw === null || !/^\d+$/.test(raw.trim())) return undefined;
  return Number(raw.trim());
}

/** The final response of a download request and what the redirect chain said about the file. */
export interface OpenedDownload {
  response: Response;
  /** URL of the final response. */
  url: string;
  /** SHA-256 announced by `X-Linked-Etag` on any hop, else by the final `ETag`. */
  announcedSha256: string | undefined;
}

/** Request parameters for {@link openDownload}. */
export interface OpenRequest {
  url: string;
  headers: Record<string, string>;
  signal: AbortSignal;
  fetchImpl: typeof fetch;
  /** Called with each URL before it is requested (keeps the caller's error context current). */
  onHop?: (url: string) => void;
}

function withoutCredentials(headers: Record<string, string>): Record<string, string> {
  const kept: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    const lower = name.toLowerCase();
    if (lower !== "authorization" && lower !== "cookie") kept[name] = value;
  }
  return kept;
}

/**
 * GETs `request.url`, following redirects by hand so the `X-Linked-Etag` of the redirect
 * itself is seen (Hugging Face sends the SHA-256 there, and the CDN behind the redirect
 * does not). Credentials (`Authorization`, `Cookie`) are dropped when a redirect leaves the
 * original origin. Non-redirect responses are returned whatever their status.
 */
export async function openDownload(request: OpenRequest): Promise<OpenedDownload> {
  let url = request.url;
  let headers = request.headers;
  let linked: string | undefined;
  for (let hop = 0; hop <= MAX_REDIRECTS; hop += 1) {
    request.onHop?.(url);
    const response = await request.fetchImpl(url, { headers, signal: request.signal, redirect: "manual" });
    linked ??= sha256FromEtag(response.headers.get("x-linked-etag"));
    const location = response.headers.get("location");
    if (!REDIRECT_STATUSES.has(response.status) || location === null) {
      return { response, url, announcedSha256: linked ?? sha256FromEtag(response.headers.get("etag")) };
    }
    await response.body?.cancel().catch(() => undefined);
    const next = new URL(location, url);
    if (next.protocol !== "http:" && next.protocol !== "https:") {
      throw new ModelDownloadError("HTTP_STATUS", `Refusing redirect from ${url} to ${next.protocol} URL`, { url, status: response.status });
    }
    if (next.origin !== new URL(url).origin) headers = withoutCredentials(headers);
    url = next.href;
  }
  throw new ModelDownloadError("HTTP_STATUS", `Too many redirects fetching ${request.url}`, { url });
}

/** Error used as the abort reason when a transfer stalls; its code makes it a network error. */
export class StallError extends Error {
  override readonly name = "StallError";
  readonly code = "ETIMEDOUT";
  /** @param ms - how long no data arrived. */
  constructor(ms: number) {
    super(`no data received for ${ms} ms`);
  }
}

/**
 * Aborts `controller` with a {@link StallError} when a guarded network wait takes longer than
 * `ms`. Only the waits passed to `guard` are timed, so local work (hashing) never trips it.
 */
export function createStallWatchdog(ms: number, controller: AbortController): { guard<T>(p: Promise<T>): Promise<T> } {
  return {
    async guard<T>(p: Promise<T>): Promise<T> {
      const timer = setTimeout(() => controller.abort(new StallError(ms)), ms);
      try {
        return await p;
      } finally {
        clearTimeout(timer);
      }
    },
  };
}
