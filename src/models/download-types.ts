/** Public shapes of the model downloader (kept apart so helpers can share them without cycles). */

/** A model file to download: where from, what to call it in the cache, and how to verify it. */
export interface DownloadSource {
  /** The file's URL, e.g. `https://huggingface.co/<repo>/resolve/main/<file>.gguf`. */
  url: string;
  /** Plain file name (no directories) the model is stored under in the cache dir. */
  fileName: string;
  /** Expected size in bytes, when the catalog knows it. */
  sizeBytes?: number;
  /** Expected SHA-256 (64 hex chars) of the whole file, when the catalog knows it. */
  sha256?: string;
}

/** Download progress; `receivedBytes` counts bytes on disk, including those of a resumed partial. */
export interface DownloadProgress {
  receivedBytes: number;
  /** The whole file's size, when the server (or the catalog) says. */
  totalBytes?: number;
}

/** How {@link DownloadSource}s are downloaded. */
export interface DownloadOptions {
  /** Where model files live (created when missing). */
  cacheDir: string;
  /** Cancels the download; the partial file is kept for a later resume. */
  signal?: AbortSignal | undefined;
  /** Called when the transfer starts and after each chunk written to disk. */
  onProgress?: ((p: DownloadProgress) => void) | undefined;
  /** The `fetch` to use (tests); defaults to the global one. */
  fetchImpl?: typeof fetch | undefined;
  /** Extra request headers, e.g. `Authorization: Bearer <token>` (dropped on cross-origin redirects). */
  headers?: Record<string, string> | undefined;
  /** Mirror base URL that replaces the `https://huggingface.co` origin (see `rewriteDownloadUrl`). */
  baseUrl?: string | undefined;
  /** Give up (as `OFFLINE`, partial kept) when no data arrives for this long; default 60 000 ms. */
  stallTimeoutMs?: number | undefined;
}
