#!/usr/bin/env node
// Runs the compiled CLI in dist/ (plain JavaScript, no TypeScript loader); `npx phiserve` and `npm start`
// come here through bin/phiserve.cjs, which sizes libuv's thread pool first. `npm install` builds it (the `prepare` script); `npm run build` rebuilds it.
// From the sources instead: `npm run dev` (tsx).
import { existsSync } from "node:fs";

const main = new URL("../dist/cli/main.js", import.meta.url);
if (!existsSync(main)) {
  process.stderr.write("phiserve: dist/ is not built; run `npm run build` (or `npm install`) in the phiserve folder first\n");
  process.exit(1);
}
await import(main.href);
