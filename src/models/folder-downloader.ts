/**
 * Folder downloads: every file of one folder of a Hugging Face repo (an ONNX model is several graphs, their
 * weights, tokenizer and processor configs), each through the resumable, verified single-file downloader.
 *
 * Flow of {@link downloadFolder}:
 * 1. a folder whose manifest names the same repo, revision and folder, with every listed file present at its
 *    size, is returned without any request;
 * 2. otherwise the Hub lists the folder (`GET /api/models/<repo>/tree/<revision>/<path>?recursive=true`, pages
 *    followed through `Link: <…>; rel="next"`): each file's size, Git blob id and, for Git LFS files, SHA-256;
 * 3. each file goes through {@link downloadModel} (`.partial` + Range resume, SHA-256 check, `.sha256` sidecar);
 *    files outside Git LFS have no SHA-256, so their Git blob id is checked instead;
 * 4. the manifest (`<folder>.manifest.json`, next to the folder) is written last, atomically.
 * A cut or failed run keeps the files already finished and the partial of the current one: the next run skips
 * the former without requests and resumes the latter.
 */
import { createHash } from "node:crypto";
import { readFile, rename, rm, writeFile, mkdir } from "node:fs/promises";
import path from "node:path";
import {
  downloadErrorText,
  ModelDownloadError,
  otherErrorText,
  toModelDownloadError,
  type ModelDownloadErrorCode,
} from "./download-errors.ts";
import type { DownloadOptions, DownloadProgress, DownloadSource } from "./download-types.ts";
import { downloadModel } from "./downloader.ts";
import { rewriteDownloadUrl } from "./http-source.ts";
import {
  folderCachePaths,
  isFolderComplete,
  normalizeSha256,
  readFolderManifest,
  type FolderIdentity,
  type FolderManifest,
  type FolderManifestFile,
} from "./model-cache.ts";

export type { FolderIdentity, FolderManifest, FolderManifestFile } from "./model-cache.ts";

/** A catalog entry's folder download: one folder of a Hugging Face model repo at a fixed revision. */
export interface FolderDownloadSource extends FolderIdentity {
  /** Where the repo, folder and revision come from (docs/MODELS.md, "Downloads"). */
  source: string;
}

/** Progress over the whole folder; bytes count every file, finished ones included. */
export interface FolderDownloadProgress extends DownloadProgress {
  /** Files finished (downloaded or found complete). */
  filesDone: number;
  filesTotal: number;
  /** Path (inside the folder) of the file being downloaded, if any. */
  currentFile?: string | undefined;
}

/** How a folder is downloaded: as {@link DownloadOptions}, with folder-wide progress. */
export interface FolderDownloadOptions extends Omit<DownloadOptions, "onProgress"> {
  /** Called when the listing is known, during each transfer and after each file. */
  onProgress?: ((p: FolderDownloadProgress) => void) | undefined;
}

/** One file of a listed folder. */
export interface RemoteFolderFile {
  /** Path relative to the folder, `/`-separated. */
  path: string;
  /** The file's `resolve` URL on huggingface.co (before mirror rewriting). */
  url: string;
  size: number;
  /** SHA-256 of the content, for Git LFS files. */
  sha256: string | undefined;
  /** Git blob id (SHA-1 of `blob <size>\0<content>`). */
  gitOid: string;
}

/** A failed folder download; `cause` is the underlying error, `file` the file it happened on. */
export class FolderDownloadError extends Error {
  override readonly name = "FolderDownloadError";
  /** The {@link ModelDownloadError} code of the cause, when it is one. */
  readonly code: ModelDownloadErrorCode | undefined;

  /**
   * @param folder - the folder being downloaded.
   * @param file - the file (relative path and its download) that failed; `undefined` when the listing failed.
   * @param cause - what failed.
   */
  constructor(
    readonly folder: FolderIdentity,
    readonly file: { path: string; source: DownloadSource; dir: string; gitOid: string } | undefined,
    cause: unknown,
  ) {
    const what = file === undefined ? `listing ${folderLabel(folder)}` : `${file.path} of ${folderLabel(folder)}`;
    super(`Download failed while ${file === undefined ? "" : "fetching "}${what}: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
    this.code = cause instanceof ModelDownloadError ? cause.code : undefined;
  }
}

const HUB_ORIGIN = "https://huggingface.co";
const DEFAULT_LIST_TIMEOUT_MS = 60_000;
const MAX_LIST_PAGES = 100;
const GIT_OID = /^[0-9a-f]{40}$/;

function folderLabel(folder: FolderIdentity): string {
  return `${folder.repo}/${folder.path}@${folder.revision}`;
}

function encodePath(p: string): string {
  return p.split("/").filter((s) => s !== "").map(encodeURIComponent).join("/");
}

/** The Hub API URL that lists `folder` recursively (on huggingface.co; rewrite it for a mirror). */
export function hubTreeUrl(folder: FolderIdentity): string {
  const sub = folder.path === "" ? "" : `/${encodePath(folder.path)}`;
  return `${HUB_ORIGIN}/api/models/${encodePath(folder.repo)}/tree/${encodeURIComponent(folder.revision)}${sub}?recursive=true`;
}

/** The `resolve` URL of `relativePath` inside `folder` (on huggingface.co). */
export function hubResolveUrl(folder: FolderIdentity, relativePath: string): string {
  const full = folder.path === "" ? relativePath : `${folder.path}/${relativePath}`;
  return `${HUB_ORIGIN}/${encodePath(folder.repo)}/resolve/${encodeURIComponent(folder.revision)}/${encodePath(full)}`;
}

/** The `rel="next"` target of a `Link` header, resolved against `base`. */
function nextPageUrl(link: string | null, base: string): string | undefined {
  for (const part of link?.split(",") ?? []) {
    const match = /<([^>]*)>\s*;.*\brel="?next"?/i.exec(part);
    if (match?.[1] !== undefined) return new URL(match[1], base).href;
  }
  return undefined;
}

/** Validates a listed path and returns it relative to the folder, or throws. */
function relativePathOf(listed: string, folder: FolderIdentity): string {
  const prefix = folder.path === "" ? "" : `${folder.path}/`;
  if (!listed.startsWith(prefix)) throw new Error(`the listing of ${folderLabel(folder)} names ${JSON.stringify(listed)}, outside the folder`);
  const rel = listed.slice(prefix.length);
  const parts = rel.split("/");
  const safe = parts.every((p) => p !== "" && p !== "." && p !== ".." && !p.includes("\\") && !p.includes("\0"));
  if (!safe) throw new Error(`the listing of ${folderLabel(folder)} names an unsafe path ${JSON.stringify(listed)}`);
  return rel;
}

/** Turns one listing entry into a {@link RemoteFolderFile}; `undefined` for folders; throws on a malformed one. */
function toRemoteFile(entry: unknown, folder: FolderIdentity): RemoteFolderFile | undefined {
  const e = (typeof entry === "object" && entry !== null ? entry : {}) as Record<string, unknown>;
  if (e.type === "directory") return undefined;
  const lfs = (typeof e.lfs === "object" && e.lfs !== null ? e.lfs : undefined) as Record<string, unknown> | undefined;
  const size = e.size;
  const oid = typeof e.oid === "string" ? e.oid.toLowerCase() : "";
  const sha256 = lfs === undefined ? undefined : normalizeSha256(typeof lfs.oid === "string" ? lfs.oid : undefined);
  const valid =
    e.type === "file" &&
    typeof e.path === "string" &&
    typeof size === "number" &&
    Number.isSafeInteger(size) &&
    size >= 0 &&
    GIT_OID.test(oid) &&
    (lfs === undefined || (sha256 !== undefined && lfs.size === size));
  if (!valid) throw new Error(`the listing of ${folderLabel(folder)} has an entry phiserve does not understand: ${JSON.stringify(entry).slice(0, 200)}`);
  const rel = relativePathOf(e.path as string, folder);
  return { path: rel, url: hubResolveUrl(folder, rel), size: size as number, sha256, gitOid: oid };
}

/** Combines the caller's signal with a timeout for one listing request. */
function listSignal(outer: AbortSignal | undefined, timeoutMs: number): AbortSignal {
  const timeout = AbortSignal.timeout(timeoutMs);
  return outer === undefined ? timeout : AbortSignal.any([outer, timeout]);
}

/**
 * Lists the files of `folder` through the Hub API (following pages), sorted by path.
 *
 * @throws {@link ModelDownloadError} (`OFFLINE`, `HTTP_STATUS`, `ABORTED`) for transport failures; `Error` for a
 *   listing that is empty or malformed.
 */
export async function listFolderFiles(folder: FolderIdentity, options: Omit<FolderDownloadOptions, "cacheDir">): Promise<RemoteFolderFile[]> {
  const fetchImpl = options.fetchImpl ?? fetch;
  const files: RemoteFolderFile[] = [];
  let url: string | undefined = rewriteDownloadUrl(hubTreeUrl(folder), options.baseUrl);
  for (let page = 0; url !== undefined; page += 1) {
    if (page >= MAX_LIST_PAGES) throw new Error(`the listing of ${folderLabel(folder)} has more than ${MAX_LIST_PAGES} pages`);
    const current: string = url;
    const signal = listSignal(options.signal, options.stallTimeoutMs ?? DEFAULT_LIST_TIMEOUT_MS);
    let body: unknown;
    let response: Response;
    try {
      response = await fetchImpl(current, { headers: { ...options.headers, accept: "application/json" }, signal });
      if (response.status !== 200) {
        await response.body?.cancel().catch(() => undefined);
        throw new ModelDownloadError("HTTP_STATUS", `HTTP ${response.status} ${response.statusText} from ${current}`, { url: current, status: response.status });
      }
      body = await response.json();
    } catch (err) {
      if (err instanceof SyntaxError) throw new Error(`the listing of ${folderLabel(folder)} from ${current} is not JSON`);
      throw toModelDownloadError(err, { url: current, signal: options.signal, partialBytes: 0 });
    }
    if (!Array.isArray(body)) throw new Error(`the listing of ${folderLabel(folder)} from ${current} is not a list of files`);
    for (const entry of body) {
      const file = toRemoteFile(entry, folder);
      if (file !== undefined) files.push(file);
    }
    url = nextPageUrl(response.headers.get("link"), current);
    if (url !== undefined) url = rewriteDownloadUrl(url, options.baseUrl);
  }
  if (files.length === 0) throw new Error(`Hugging Face lists no files in ${folderLabel(folder)}`);
  return files.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

/** Git's blob id of `data`: SHA-1 over `blob <size>\0` and the content. */
export function gitBlobOid(data: Buffer): string {
  return createHash("sha1").update(`blob ${data.length}\0`).update(data).digest("hex");
}

/** True when the file at `filePath` has Git blob id `oid` (files outside Git LFS are small enough to read whole). */
async function hasGitOid(filePath: string, oid: string): Promise<boolean> {
  try {
    return gitBlobOid(await readFile(filePath)) === oid;
  } catch {
    return false;
  }
}

/** Where one file of the folder lives, and its single-file download. */
function fileJob(dir: string, file: RemoteFolderFile): { dir: string; source: DownloadSource } {
  const parts = file.path.split("/");
  const fileName = parts.pop() as string;
  const source: DownloadSource = { url: file.url, fileName, sizeBytes: file.size, ...(file.sha256 === undefined ? {} : { sha256: file.sha256 }) };
  return { dir: path.join(dir, ...parts), source };
}

/** Removes a cached file and its sidecar. */
async function forget(filePath: string): Promise<void> {
  await rm(filePath, { force: true });
  await rm(`${filePath}.sha256`, { force: true });
}

/**
 * Downloads one file of the folder. Files outside Git LFS carry no SHA-256, so a cached copy is checked against
 * the Git blob id first (a stale one from another revision is dropped), and so is the fresh download.
 */
async function downloadFolderFile(file: RemoteFolderFile, job: { dir: string; source: DownloadSource }, options: DownloadOptions): Promise<void> {
  const target = path.join(job.dir, job.source.fileName);
  if (file.sha256 === undefined && !(await hasGitOid(target, file.gitOid))) await forget(target);
  const downloaded = await downloadModel(job.source, { ...options, cacheDir: job.dir });
  if (file.sha256 !== undefined || (await hasGitOid(downloaded, file.gitOid))) return;
  await forget(downloaded);
  throw new ModelDownloadError("CHECKSUM_MISMATCH", `Downloaded ${file.path} does not have Git blob id ${file.gitOid}`, { url: file.url });
}

async function writeManifest(manifestPath: string, manifest: FolderManifest): Promise<void> {
  const tmp = `${manifestPath}.tmp`;
  await writeFile(tmp, `${JSON.stringify(manifest, null, 2)}\n`, "utf8");
  await rename(tmp, manifestPath);
}

function identityOf(folder: FolderIdentity): FolderIdentity {
  return { repo: folder.repo, revision: folder.revision, path: folder.path.replace(/^\/+|\/+$/g, "") };
}

/**
 * Downloads every file of `folder` into `<cacheDir>/<owner>--<repo>--<path…>` unless a complete copy is there.
 *
 * @param folder - repo, revision and folder; URLs are rewritten with `options.baseUrl` when set (listing and files).
 * @param options - cache dir, cancellation, folder-wide progress, headers, `fetch` override, stall timeout.
 * @returns the folder's path.
 * @throws {@link FolderDownloadError} whose `cause` is a {@link ModelDownloadError} (`OFFLINE`, `HTTP_STATUS`,
 *   `CHECKSUM_MISMATCH`, `ABORTED`), a file-system error, or an `Error` for an empty or malformed listing.
 */
export async function downloadFolder(folder: FolderIdentity, options: FolderDownloadOptions): Promise<string> {
  const id = identityOf(folder);
  const paths = folderCachePaths(options.cacheDir, id);
  const existing = readFolderManifest(paths.manifest);
  if (existing !== undefined && isFolderComplete(paths.dir, existing, id)) return paths.dir;
  let files: RemoteFolderFile[];
  try {
    files = await listFolderFiles(id, options);
  } catch (err) {
    throw new FolderDownloadError(id, undefined, err);
  }
  await mkdir(paths.dir, { recursive: true });
  await rm(paths.manifest, { force: true });
  const totalBytes = files.reduce((sum, f) => sum + f.size, 0);
  let doneBytes = 0;
  const report = (filesDone: number, receivedBytes: number, currentFile?: string): void =>
    options.onProgress?.({ receivedBytes, totalBytes, filesDone, filesTotal: files.length, ...(currentFile === undefined ? {} : { currentFile }) });
  report(0, 0);
  for (const [index, file] of files.entries()) {
    const job = fileJob(paths.dir, file);
    const onProgress = (p: DownloadProgress): void => report(index, doneBytes + p.receivedBytes, file.path);
    try {
      await downloadFolderFile(file, job, { ...options, cacheDir: job.dir, onProgress });
    } catch (err) {
      throw new FolderDownloadError(id, { path: file.path, gitOid: file.gitOid, ...job }, err);
    }
    doneBytes += file.size;
    report(index + 1, doneBytes);
  }
  const manifestFiles: FolderManifestFile[] = files.map((f) => ({ path: f.path, size: f.size, ...(f.sha256 === undefined ? {} : { sha256: f.sha256 }), gitOid: f.gitOid }));
  await writeManifest(paths.manifest, { ...id, files: manifestFiles });
  return paths.dir;
}

/**
 * A one-paragraph, human explanation of a failed folder download: what failed (the listing or which file), why,
 * that finished files and the current partial are kept for the next run, and how to use a mirror.
 *
 * @param err - what {@link downloadFolder} threw (any value is accepted).
 * @param folder - the folder being downloaded.
 * @param cacheDir - the cache directory it was downloading into.
 */
export function describeFolderDownloadFailure(err: unknown, folder: FolderIdentity, cacheDir: string): string {
  const id = identityOf(folder);
  const dir = folderCachePaths(cacheDir, id).dir;
  const cause = err instanceof FolderDownloadError ? err.cause : err;
  const file = err instanceof FolderDownloadError ? err.file : undefined;
  let what: string;
  if (file !== undefined && cause instanceof ModelDownloadError && cause.code === "CHECKSUM_MISMATCH" && file.source.sha256 === undefined) {
    what =
      `The downloaded ${file.path} from ${new URL(cause.url).host} did not match the Git blob id the Hub lists for it` +
      ` (${file.gitOid}), so it was deleted: the transfer was corrupted, or the server or mirror holds a different file.`;
  } else if (file !== undefined) {
    what = cause instanceof ModelDownloadError ? downloadErrorText(cause, file.source.fileName, file.dir) : otherErrorText(cause, file.source, file.dir);
  } else {
    const listing = `the file list of ${folderLabel(id)}`;
    const source = { url: hubTreeUrl(id), fileName: listing };
    what = cause instanceof ModelDownloadError ? downloadErrorText(cause, listing, cacheDir) : otherErrorText(cause, source, cacheDir);
  }
  what = `${what.charAt(0).toUpperCase()}${what.slice(1)}`;
  if (cause instanceof ModelDownloadError && cause.code === "ABORTED") return what;
  const kept = file === undefined ? "" : ` Files finished earlier are kept in ${dir} and are not downloaded again.`;
  return (
    `${what}${kept} To download from a mirror, set PHISERVE_MODEL_BASE_URL to a base URL that serves both the Hub's` +
    " file list (/api/models/<repo>/tree/<revision>/<folder>) and the files (/<repo>/resolve/<revision>/<file>)."
  );
}
