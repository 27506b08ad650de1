import { CATALOG } from "../../catalog/phi-models.ts";
import { findCachedModel } from "../../models/downloader.ts";
import { findCachedFolder } from "../../models/model-cache.ts";
import { cacheDirFrom, ensureDownloaded, requireServableModel } from "../resolve-model.ts";
import { exitWithCliError } from "./exit.ts";

export async function runPull(name: string): Promise<void> {
  try {
    const path = await ensureDownloaded(requireServableModel(name), process.env);
    process.stdout.write(`${path}\n`);
  } catch (error) {
    exitWithCliError(error);
  }
}

export async function runModels(flags: { json?: boolean }): Promise<void> {
  const cacheDir = cacheDirFrom(process.env);
  const rows = CATALOG.map((m) => ({
    name: m.id,
    azureName: m.azureName,
    context: m.contextLength,
    engine: m.engine,
    available: m.engineAvailable,
    reason: m.unavailableReason ?? null,
    cached: m.downloadFolder
      ? findCachedFolder(cacheDir, m.downloadFolder) ?? null
      : m.download
        ? findCachedModel(cacheDir, m.download.fileName) ?? null
        : null,
  }));
  if (flags.json) {
    process.stdout.write(`${JSON.stringify({ cacheDir, models: rows }, null, 2)}\n`);
    return;
  }
  const lines = rows.map((r) =>
    [r.name.padEnd(28), r.azureName.padEnd(28), String(r.context).padStart(7), r.engine.padEnd(12), r.available ? (r.cached ? "cached" : "available") : `unavailable: ${r.reason}`].join("  "),
  );
  process.stdout.write(`${["NAME".padEnd(28), "AZURE NAME".padEnd(28), "CONTEXT", "ENGINE".padEnd(12), "STATUS"].join("  ")}\n${lines.join("\n")}\ncache: ${cacheDir}\n`);
}
