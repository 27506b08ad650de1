#!/usr/bin/env node
// Entry point for `npx phiserve` and `npm start`. CommonJS on purpose: its first line runs before Node
// has queued anything on libuv's thread pool (an ES module entry is itself read through the pool), so
// the pool's size can still be chosen: one thread unless UV_THREADPOOL_SIZE is set
// (docs/ENGINE-NOTES.md "One native thread for llama.cpp"). Then the ES module CLI runs (bin/phiserve.js).
process.env.UV_THREADPOOL_SIZE ??= "1";
const { pathToFileURL } = require("node:url");
const { join } = require("node:path");
import(pathToFileURL(join(__dirname, "phiserve.js")).href).catch((error) => {
  process.stderr.write(`phiserve: ${error && error.stack ? error.stack : error}\n`);
  process.exit(1);
});
