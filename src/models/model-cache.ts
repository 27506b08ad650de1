/**
 * The on-disk model cache: where model files live and how a complete one is recognised.
 *
 * Layout inside the cache dir, for a file `<name>`:
 * - `<name>`          the model, only ever created by an atomic rename after verification
 *                     (or copied there by the user);
 * - `<name>.sha256`   sidecar in `sha256sum` format (`<hex>  <name>\n`), written after the
 *                     rename; its presence marks the file as complete so later starts never
 *                     re-hash gigabytes;
 * - `<name>.partial`  bytes of an unfinished download, always a prefix of the remote file.
 *
 * A model folder (several files, e.g. ONNX graphs and their weights) is a directory of such files, plus a
 * `<folder>.manifest.json` next to it, written last, listing every file; see {@link findCachedFolder}.
 */
import { readFileSync, statSync } from "node:fs";
import { mkdir, rename, writeFile } from "node:fs/promises";
import path from "node:path";

/** Absolute-or-relative paths of the files that belong to one cached model. */
export interface ModelCachePaths {
  /** The finished model file. */
  file: string;
  /** The unfinished download. */
  partial: string;
  /** The checksum sidecar marking `file` as complete. */
  sidecar: string;
}

const SHA256_HEX = /^[0-9a-f]{64}$/;

/**
 * The default model cache directory.
 *
 * `env.PHISERVE_CACHE_DIR` when set (non-empty); otherwise `<XDG_CACHE_HOME>/phiserve/models`,
 * where `XDG_CACHE_HOME` falls back to `<homeDir>/.cache` when unset, empty or relative
 * (the XDG spec says relative values must be ignored).
 *
 * @param env - the environment to read (pass `process.env`); never read implicitly.
 * @param homeDir - the user's home directory (pass `os.homedir()`).
 */
export function defaultCacheDir(env: NodeJS.ProcessEnv, homeDir: string): string {
  const explicit = env.PHISERVE_CACHE_DIR;
  if (explicit !== undefined && explicit !== "") return explicit;
  const xdg = env.XDG_CACHE_HOME;
  const cacheHome = xdg !== undefined && path.isAbsolute(xdg) ? xdg : path.join(homeDir, ".cache");
  return path.join(cacheHome, "phiserve", "models");
}

/**
 * Throws a `TypeError` unless `fileName` is a plain file name (no directory parts, not `.`/`..`),
 * so a catalog entry can never make the downloader write outside the cache dir.
 */
export function assertPlainFileName(fileName: string): void {
  const plain =
    fileName !== "" &&
    fileName !== "." &&
    fileName !== ".." &&
    !fileName.includes("/") &&
    !fileName.includes("\\") &&
    !fileName.includes("\0");
  if (!plain) throw new TypeError(`Model file name must be a plain file name, got ${JSON.stringify(fileName)}`);
}

/** The paths of the model file, its partial download and its sidecar inside `cacheDir`. */
export function modelCachePaths(cacheDir: string, fileName: string): ModelCachePaths {
  assertPlainFileName(fileName);
  const file = path.join(cacheDir, fileName);
  return { file, partial: `${file}.partial`, sidecar: `${file}.sha256` };
}

/**
 * Normalises a SHA-256 given as hex (any case, surrounding whitespace ignored).
 * @returns the lowercase 64-hex digest, or `undefined` when `value` is not one.
 */
export function normalizeSha256(value: string | undefined): string | undefined {
  const hex = value?.trim().toLowerCase();
  return hex !== undefined && SHA256_HEX.test(hex) ? hex : undefined;
}

/**
 * The digest recorded in a sidecar file, or `undefined` when it is missing or malformed.
 * @param sidecarPath - path of a `<name>.sha256` file.
 */
export function readSidecarSha256(sidecarPath: string): string | undefined {
  let text: string;
  try {
    text = readFileSync(sidecarPath, "utf8");
  } catch {
    return undefined;
  }
  return normalizeSha256(text.trim().split(/\s+/)[0]);
}

/**
 * Writes the sidecar for a verified model file, atomically (temp file + rename), in
 * `sha256sum` format so `sha256sum -c <name>.sha256` works from inside the cache dir.
 */
export async function writeSidecar(paths: ModelCachePaths, sha256: string): Promise<void> {
  const tmp = `${paths.sidecar}.tmp`;
  await mkdir(path.dirname(paths.sidecar), { recursive: true });
  await writeFile(tmp, `${sha256}  ${path.basename(paths.file)}\n`, "utf8");
  await rename(tmp, paths.sidecar);
}

/** True when `filePath` exists and is a regular file. */
export function isRegularFile(filePath: string): boolean {
  try {
    return statSync(filePath).isFile();
  } catch {
    return false;
  }
}

/**
 * The cached model's path when it is present and complete (file plus a valid sidecar).
 *
 * Cheap and synchronous: it never hashes the file. A file without a sidecar (e.g. copied in
 * by hand) is not reported here; `downloadModel` adopts such files after verifying them.
 *
 * @param cacheDir - the model cache directory.
 * @param fileName - the model's file name inside it.
 * @returns the model file's path, or `undefined`.
 */
export function findCachedModel(cacheDir: string, fileName: string): string | undefined {
  let paths: ModelCachePaths;
  try {
    paths = modelCachePaths(cacheDir, fileName);
  } catch {
    return undefined;
  }
  if (!isRegularFile(paths.file)) return undefined;
  return readSidecarSha256(paths.sidecar) === undefined ? undefined : paths.file;
}

/** Which folder of which Hugging Face repo, at which revision, a cached folder holds. */
export interface FolderIdentity {
  /** `owner/name` of the Hugging Face model repo. */
  repo: string;
  /** Branch, tag or commit the files were listed at. */
  revision: string;
  /** Folder inside the repo, `/`-separated, without leading or trailing `/`. */
  path: string;
}

/** One file of a downloaded folder, as recorded in its manifest. */
export interface FolderManifestFile {
  /** Path relative to the folder, `/`-separated. */
  path: string;
  size: number;
  /** SHA-256 of the content (Git LFS files). */
  sha256?: string | undefined;
  /** Git blob id (SHA-1 of `blob <size>\0<content>`), present for every file. */
  gitOid: string;
}

/** The record, written last, that marks a downloaded folder as complete. */
export interface FolderManifest extends FolderIdentity {
  files: FolderManifestFile[];
}

/**
 * Cache paths of a model folder: the folder `<cacheDir>/<owner>--<repo>--<path with / as -->` and, next to it,
 * `<that name>.manifest.json`, which is written only once every file is in place and verified.
 */
export function folderCachePaths(cacheDir: string, folder: FolderIdentity): { dir: string; manifest: string } {
  const name = [...folder.repo.split("/"), ...folder.path.split("/")].filter((part) => part !== "").join("--");
  assertPlainFileName(name);
  const dir = path.join(cacheDir, name);
  return { dir, manifest: `${dir}.manifest.json` };
}

/** The manifest at `manifestPath`, or `undefined` when it is missing or not one. */
export function readFolderManifest(manifestPath: string): FolderManifest | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(manifestPath, "utf8"));
  } catch {
    return undefined;
  }
  if (typeof parsed !== "object" || parsed === null) return undefined;
  const m = parsed as Partial<FolderManifest>;
  const ok =
    typeof m.repo === "string" &&
    typeof m.revision === "string" &&
    typeof m.path === "string" &&
    Array.isArray(m.files) &&
    m.files.every((f: Partial<FolderManifestFile>) => typeof f.path === "string" && typeof f.size === "number" && typeof f.gitOid === "string");
  return ok ? (m as FolderManifest) : undefined;
}

/** True when `manifest` describes `folder` and every file it lists is on disk with its recorded size. */
export function isFolderComplete(dir: string, manifest: FolderManifest, folder: FolderIdentity): boolean {
  const trim = (p: string): string => p.replace(/^\/+|\/+$/g, "");
  if (manifest.repo !== folder.repo || manifest.revision !== folder.revision || trim(manifest.path) !== trim(folder.path)) return false;
  return manifest.files.every((f) => {
    try {
      const s = statSync(path.join(dir, ...f.path.split("/")));
      return s.isFile() && s.size === f.size;
    } catch {
      return false;
    }
  });
}

/**
 * The cached model folder's path when its manifest is there, names the same repo, revision and folder, and
 * every file it lists is present with its recorded size. Cheap and synchronous: it never hashes.
 *
 * @param cacheDir - the model cache directory.
 * @param folder - which repo folder, at which revision.
 * @returns the folder's path, or `undefined`.
 */
export function findCachedFolder(cacheDir: string, folder: FolderIdentity): string | undefined {
  let paths: { dir: string; manifest: string };
  try {
    paths = folderCachePaths(cacheDir, folder);
  } catch {
    return undefined;
  }
  const manifest = readFolderManifest(paths.manifest);
  return manifest !== undefined && isFolderComplete(paths.dir, manifest, folder) ? paths.dir : undefined;
}
