#!/usr/bin/env node
/**
 * Builds the playground and the dashboard (web/) with Vite into dist/web, then prints each page's
 * JavaScript + CSS gzipped, against the budget of 150 KB (docs/PLAYGROUND.md "Budgets"); over it, the
 * build fails. Called by scripts/build.js after the server's compile (which empties dist/).
 */
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";

const here = dirname(fileURLToPath(import.meta.url));
const outDir = join(here, "..", "dist", "web");
const BUDGET_KB = 150;

let vite;
try {
  vite = await import("vite");
} catch {
  console.warn("phiserve: vite is not installed (devDependencies omitted); the playground is not built");
  process.exit(0);
}

const started = performance.now();
await vite.build({ configFile: join(here, "vite.config.ts"), logLevel: "warn" });

/** @type {Record<string, { file: string; css?: string[]; imports?: string[]; isEntry?: boolean }>} */
const manifest = JSON.parse(readFileSync(join(outDir, ".vite", "manifest.json"), "utf8"));
const gzipKb = (file) => gzipSync(readFileSync(join(outDir, file)), { level: 9 }).length / 1024;

let over = false;
for (const [key, entry] of Object.entries(manifest)) {
  if (!entry.isEntry) continue;
  const files = new Set();
  const visit = (k) => {
    const chunk = manifest[k];
    if (!chunk || files.has(chunk.file)) return;
    files.add(chunk.file);
    for (const css of chunk.css ?? []) files.add(css);
    for (const dep of chunk.imports ?? []) visit(dep);
  };
  visit(key);
  const js = [...files].filter((f) => f.endsWith(".js")).reduce((sum, f) => sum + gzipKb(f), 0);
  const css = [...files].filter((f) => f.endsWith(".css")).reduce((sum, f) => sum + gzipKb(f), 0);
  const total = js + css;
  const page = key.split("/")[0];
  over ||= total > BUDGET_KB;
  console.log(`web: ${page} JS ${js.toFixed(1)} KB + CSS ${css.toFixed(1)} KB = ${total.toFixed(1)} KB gzipped (budget ${BUDGET_KB} KB)${total > BUDGET_KB ? " OVER BUDGET" : ""}`);
}
console.log(`web: built into dist/web in ${((performance.now() - started) / 1000).toFixed(1)} s`);
if (over) process.exit(1);
