/**
 * Turns `--model` into a local file: a path is used as is; a catalog name is looked up, and its
 * GGUF is taken from the cache or downloaded there (resumable, sha256-checked, with progress). A
 * catalog model with a folder download (the ONNX vision models) resolves to that folder instead.
 */
import { existsSync } from "node:fs";
import { homedir } from "node:os";
import { DEFAULT_MODEL_ID, findCatalogModel, type CatalogModel } from "../catalog/phi-models.ts";
import {
  createDownloadProgressBar,
  defaultCacheDir,
  describeDownloadFailure,
  downloadModel,
  findCachedModel,
} from "../models/downloader.ts";
import { describeFolderDownloadFailure, downloadFolder, type FolderDownloadSource } from "../models/folder-downloader.ts";
import { findCachedFolder } from "../models/model-cache.ts";

/** A failure to report to the user as a plain message (no stack). */
export class CliError extends Error {}

export interface ResolvedModel {
  modelPath: string;
  catalogModelId: string | undefined;
}

export function cacheDirFrom(env: NodeJS.ProcessEnv): string {
  return defaultCacheDir(env, homedir());
}

export function isModelPath(spec: string): boolean {
  return spec.endsWith(".gguf") || spec.includes("/") || spec.includes("\\") || existsSync(spec);
}

export async function resolveModel(spec: string | undefined, env: NodeJS.ProcessEnv): Promise<ResolvedModel> {
  const name = spec ?? DEFAULT_MODEL_ID;
  if (isModelPath(name)) {
    if (!existsSync(name)) throw new CliError(`Model file not found: ${name}`);
    return { modelPath: name, catalogModelId: undefined };
  }
  const entry = requireServableModel(name);
  return { modelPath: await ensureDownloaded(entry, env), catalogModelId: entry.id };
}

export function requireServableModel(name: string): CatalogModel {
  const entry = findCatalogModel(name);
  if (!entry) throw new CliError(`Unknown model '${name}'. Run 'phiserve models' for the catalog, or pass a .gguf file path.`);
  if (!entry.engineAvailable) throw new CliError(`${entry.azureName} cannot be served yet: ${entry.unavailableReason ?? "no engine"}.`);
  if (!entry.download && !entry.downloadFolder) throw new CliError(`${entry.azureName} has no download source; pass a local .gguf with --model.`);
  return entry;
}

/** Mirror base URL and Hugging Face token from the environment, as download options. */
function downloadAccess(env: NodeJS.ProcessEnv): { baseUrl: string | undefined; headers: Record<string, string> | undefined } {
  const token = env.HF_TOKEN ?? env.HUGGING_FACE_HUB_TOKEN;
  return { baseUrl: env.PHISERVE_MODEL_BASE_URL || undefined, headers: token ? { authorization: `Bearer ${token}` } : undefined };
}

/** The catalog model's file (or folder, for a folder download), from the cache or downloaded there. */
export async function ensureDownloaded(entry: CatalogModel, env: NodeJS.ProcessEnv): Promise<string> {
  if (entry.downloadFolder) return ensureFolderDownloaded(entry, entry.downloadFolder, env);
  const download = entry.download;
  if (!download) throw new CliError(`${entry.azureName} has no download source.`);
  const cacheDir = cacheDirFrom(env);
  const cached = findCachedModel(cacheDir, download.fileName);
  if (cached) return cached;
  const bar = createDownloadProgressBar(process.stderr, download.fileName);
  try {
    return await downloadModel(download, { cacheDir, onProgress: (p) => bar.update(p), ...downloadAccess(env) });
  } catch (error) {
    throw new CliError(describeDownloadFailure(error, download, cacheDir));
  } finally {
    bar.stop();
  }
}

/** Every file of the catalog model's folder, from the cache or downloaded there (one progress bar for the folder). */
async function ensureFolderDownloaded(entry: CatalogModel, folder: FolderDownloadSource, env: NodeJS.ProcessEnv): Promise<string> {
  const cacheDir = cacheDirFrom(env);
  const cached = findCachedFolder(cacheDir, folder);
  if (cached) return cached;
  let bar: ReturnType<typeof createDownloadProgressBar> | undefined;
  try {
    return await downloadFolder(folder, {
      cacheDir,
      ...downloadAccess(env),
      onProgress: (p) => {
        bar ??= createDownloadProgressBar(process.stderr, `${entry.id} (${p.filesTotal} files)`);
        bar.update(p, `${p.filesDone}/${p.filesTotal} files`);
      },
    });
  } catch (error) {
    throw new CliError(describeFolderDownloadFailure(error, folder, cacheDir));
  } finally {
    bar?.stop();
  }
}
