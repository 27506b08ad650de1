import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
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
  test("uses WAL, records each applied migration once", async () => {
    const path = join(dir, "settings.db");
    for (let i = 0; i < 2; i++) {
      const store = await createStore(`sqlite:${path}`);
      await store.migrate();
      await store.close();
    }
    const db = new Database(path, { readonly: true });
    try {
      assert.equal(db.pragma("journal_mode", { simple: true }), "wal");
      assert.deepEqual(db.prepare("SELECT version FROM schema_migrations ORDER BY version").all(), [{ version: 1 }, { version: 2 }, { version: 3 }]);
    } finally {
      db.close();
    }
  });

  test("a database at schema v1 upgrades in place: its keys keep working with no content-safety override and no admin flag", async () => {
    const path = join(dir, "upgrade-v1.db");
    const v1 = new Database(path);
    try {
      v1.exec(readFileSync(new URL("./migrations/0001_init.sql", import.meta.url), "utf8"));
      v1.exec("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)");
      v1.prepare("INSERT INTO schema_migrations (version, applied_at) VALUES (1, 0)").run();
      v1.prepare("INSERT INTO api_keys (id, name, key_hash, deployments, rpm, tpm, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)")
        .run("key_0123456789ab", "old", "ab".repeat(32), '["phi-4"]', 5, null, 1000);
    } finally {
      v1.close();
    }
    const store = await createStore(`sqlite:${path}`);
    try {
      await store.migrate();
      assert.deepEqual(await store.findApiKeyByHash("ab".repeat(32)), {
        id: "key_0123456789ab", name: "old", keyHash: "ab".repeat(32), deployments: ["phi-4"], rpm: 5, tpm: null,
        contentSafety: null, admin: false, createdAt: new Date(1000), revokedAt: null,
      });
      const { record } = await store.createApiKey({ name: "new", contentSafety: "off" });
      assert.equal((await store.listApiKeys()).find((k) => k.id === record.id)?.contentSafety, "off");
    } finally {
      await store.close();
    }
  });

  test("the database itself refuses a content-safety value other than annotate or off", async () => {
    const path = join(dir, "check.db");
    const store = await createStore(`sqlite:${path}`);
    await store.migrate();
    await store.close();
    const db = new Database(path);
    try {
      const insert = db.prepare("INSERT INTO api_keys (id, name, key_hash, content_safety, created_at) VALUES (?, 'n', ?, ?, 0)");
      assert.throws(() => insert.run("key_a", "h1", "filter"), /CHECK constraint failed/);
      assert.throws(() => insert.run("key_b", "h2", "Off"), /CHECK constraint failed/);
      for (const [i, value] of ["annotate", "off", null].entries()) insert.run(`key_ok${i}`, `ok${i}`, value);
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
