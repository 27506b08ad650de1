/**
 * Vite build of the playground and the dashboard (two pages, shared chunks) into dist/web, which the server
 * serves (src/http/static.ts): the pages at /playground and /dashboard, the hashed assets under /ui/assets/.
 * Run by web/build.js (from scripts/build.js, so `npm install` builds it); docs/PLAYGROUND.md "Build".
 */
import { defineConfig } from "vite";
import { fileURLToPath } from "node:url";

const here = (path: string): string => fileURLToPath(new URL(path, import.meta.url));

export default defineConfig({
  root: here("."),
  base: "/ui/",
  logLevel: "warn",
  // Preact's automatic JSX runtime through Vite's own transformer (no Babel, no framework plugin).
  oxc: { jsx: { runtime: "automatic", importSource: "preact" } },
  resolve: { alias: { react: "preact/compat", "react-dom": "preact/compat" } },
  build: {
    outDir: here("../dist/web"),
    emptyOutDir: true,
    manifest: true,
    target: "es2022",
    // No inline script may be needed (the pages' Content-Security-Policy has no 'unsafe-inline').
    modulePreload: { polyfill: false },
    assetsInlineLimit: 0,
    reportCompressedSize: false,
    rolldownOptions: {
      input: { playground: here("playground/index.html"), dashboard: here("dashboard/index.html") },
    },
  },
});
