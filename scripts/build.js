#!/usr/bin/env node
/**
 * `npm run build`: compiles src/ into dist/ (tsconfig.build.json) and copies the files src/ reads at run
 * time that are not TypeScript (the SQL migrations) next to the compiled modules, so the
 * `new URL("./migrations/", import.meta.url)` lookups work the same from dist/ as from src/.
 * dist/ is emptied first so a deleted or renamed source leaves no stale module behind.
 *
 * Also the `prepare` script, so `npm install` on a fresh clone builds. With devDependencies left out
 * (`npm install --omit=dev`) there is no TypeScript compiler: then it says so and leaves dist/ alone
 * instead of failing the install.
 */
import { spawnSync } from "node:child_process";
import { cpSync, readdirSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const src = join(root, "src");
const dist = join(root, "dist");

let tsc;
try {
  tsc = createRequire(join(root, "package.json")).resolve("typescript/bin/tsc");
} catch {
  if (process.env.npm_lifecycle_event === "prepare") {
    console.warn("phiserve: typescript is not installed (devDependencies omitted); dist/ not built");
    process.exit(0);
  }
  console.error("phiserve build: typescript is not installed; run `npm install` first");
  process.exit(1);
}

rmSync(dist, { recursive: true, force: true });
const result = spawnSync(process.execPath, [tsc, "-p", join(root, "tsconfig.build.json")], { stdio: "inherit" });
if (result.status !== 0) {
  rmSync(dist, { recursive: true, force: true }); // no half-built dist/ that bin/phiserve.js would run
  process.exit(result.status ?? 1);
}

/** Every file under src/ that is neither TypeScript nor a test is a run-time asset. */
function copyAssets(dir) {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) copyAssets(path);
    else if (!/\.(ts|mts|cts)$/.test(entry.name)) cpSync(path, join(dist, relative(src, path)));
  }
}
copyAssets(src);

// The playground and dashboard pages (web/ → dist/web, with their size budget; docs/PLAYGROUND.md "Build").
const web = spawnSync(process.execPath, [join(root, "web", "build.js")], { stdio: "inherit" });
if (web.status !== 0) process.exit(web.status ?? 1);
