import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { promisify } from "node:util";
import Database from "better-sqlite3";
import { createStore } from "../create-store.ts";
import { runStoreContract } from "../store.contract.ts";

const dir = mkdtempSync(join(tmpdir(), "phiserve-sqlite-"));
after(() => rmSync(dir, { recursive: true, force: true }));

// A nested path also checks that missing parent folders are created.
runStoreContract("SqliteStore", () => createStore(`sqlite:${join(dir, "nested", "phiserve.db")}`));

describe("SqliteStore file settings", () => {
  test("uses WAL, records the applied migration once", async () => {
    const path = join(dir, "settings.db");
    for (let i = 0; i < 2; i++) {
      const store = await createStore(`sqlite:${path}`);
      await store.migrate();
      await store.close();
    }
    const db = new Database(path, { readonly: true });
    try {
      assert.equal(db.pragma("journal_mode", { simple: true }), "wal");
      assert.deepEqual(db.prepare("SELECT version FROM schema_migrations").all(), [{ version: 1 }]);
    } finally {
      db.close();
    }
  });

  test("several processes migrating and writing the same new file at once all succeed", async () => {
    const path = join(dir, "multi-process.db");
    const script = `
      const { createStore } = await import(${JSON.stringify(new URL("../create-store.ts", import.meta.url).href)});
      const store = await createStore(process.argv[1]);
      await store.migrate();
      for (let i = 0; i < 25; i++) await store.recordUsage({ requestId: "r" + i, principal: "mp", deployment: "d", model: "m",
        promptTokens: 1, completionTokens: 1, status: 200, stream: false, completed: true, queuedMs: 0, durationMs: 0, createdAt: new Date(0) });
      await store.close();`;
    const run = promisify(execFile);
    const args = ["--import", "tsx", "--input-type=module", "--eval", script, `sqlite:${path}`];
    await Promise.all(Array.from({ length: 4 }, () => run(process.execPath, args, { cwd: process.cwd() })));
    const store = await createStore(`sqlite:${path}`);
    try {
      assert.deepEqual(await store.usageReport({ by: "key" }), [{ group: "mp", requests: 100, promptTokens: 100, completionTokens: 100 }]);
    } finally {
      await store.close();
    }
  });
});
