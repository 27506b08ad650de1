import { test } from "node:test";
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { APP_ERROR_CODES } from "./app-error.ts";
import { statusOf, toHttpError } from "./http-mapping.ts";
import { AppError } from "./app-error.ts";

test("docs/ERRORS.md lists every error code with its status and wire code", async () => {
  const doc = await readFile(new URL("../../docs/ERRORS.md", import.meta.url), "utf8");
  const rows = [...doc.matchAll(/^\| ([A-Z_]+) \| (\d{3}) \| `([a-z0-9_]+)` \|/gm)].map((m) => [m[1], Number(m[2]), m[3]]);
  assert.deepEqual(rows.map((r) => r[0]), [...APP_ERROR_CODES]);
  for (const [code, status, wire] of rows) {
    const http = toHttpError(new AppError(code as (typeof APP_ERROR_CODES)[number], "x"));
    assert.equal(http.status, status, String(code));
    assert.equal(statusOf(code as (typeof APP_ERROR_CODES)[number]), status);
    assert.equal(http.headers["x-ms-error-code"], wire);
  }
});

test("unknown throwables become a generic 500, never a 4xx, and leak no detail", () => {
  const http = toHttpError(new TypeError("secret internal detail"));
  assert.equal(http.status, 500);
  assert.doesNotMatch(JSON.stringify(http.body), /secret/);
});
